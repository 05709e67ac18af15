// Interop: MQTT.js (v4 = 3.1.1 and v5) against our broker: every QoS, retained, will, persistent session, shared
// subscription, MQTT 5.0 properties, WebSocket, TLS and mutual TLS (certificates generated at run time).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { type Broker, createBroker } from '../../packages/broker/src/index.js';
import { makeCertificates, type TestCertificates } from '../../packages/broker/test/support/certs.js';

describe('interop: MQTT.js against the otalink broker', () => {
  let broker: Broker;
  let port = 0;
  let wsPort = 0;
  let certs: TestCertificates | undefined;
  const clients: MqttClient[] = [];
  before(async () => {
    certs = makeCertificates();
    const tls = certs === undefined ? undefined : { cert: certs.serverCert, key: certs.serverKey };
    broker = createBroker({
      listeners: [
        { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        { protocol: 'ws', host: '127.0.0.1', port: 0 },
        ...(certs === undefined || tls === undefined
          ? []
          : [
              { protocol: 'mqtts' as const, host: '127.0.0.1', port: 0, tls },
              {
                protocol: 'mqtts' as const,
                host: '127.0.0.1',
                port: 0,
                tls: { ...tls, ca: certs.ca, requireClientCertificate: true },
              },
              { protocol: 'wss' as const, host: '127.0.0.1', port: 0, tls },
            ]),
      ],
      allowAnonymous: true,
      logger: pino({ level: 'silent' }),
      sysIntervalSeconds: 0,
    });
    await broker.listen();
    port = broker.addresses()[0]!.port;
    wsPort = broker.addresses()[1]!.port;
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker.close();
    certs?.remove();
  });

  async function client(options: IClientOptions & { url?: string } = {}): Promise<MqttClient> {
    const { url = `mqtt://127.0.0.1:${port}`, ...rest } = options;
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...rest });
    clients.push(c);
    return c;
  }

  function nextMessage(
    c: MqttClient,
    timeoutMs = 5000,
  ): Promise<{ topic: string; payload: string; packet: mqtt.IPublishPacket }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message')), timeoutMs);
      c.once('message', (topic, payload, packet) => {
        clearTimeout(timer);
        resolve({ topic, payload: payload.toString(), packet });
      });
    });
  }

  for (const protocolVersion of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      test(`v${protocolVersion} QoS ${qos} round trip`, async () => {
        const topic = `mqttjs/${protocolVersion}/${qos}`;
        const sub = await client({ protocolVersion });
        await sub.subscribeAsync(topic, { qos });
        const pub = await client({ protocolVersion });
        const received = nextMessage(sub);
        await pub.publishAsync(topic, `qos ${qos}`, { qos });
        const m = await received;
        assert.equal(m.payload, `qos ${qos}`);
        assert.equal(m.packet.qos, qos);
      });
    }

    test(`v${protocolVersion} retained message and will`, async () => {
      const topic = `mqttjs/${protocolVersion}/retained`;
      const pub = await client({ protocolVersion });
      await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
      const sub = await client({ protocolVersion });
      const received = nextMessage(sub);
      await sub.subscribeAsync(topic, { qos: 1 });
      const m = await received;
      assert.equal(m.payload, 'kept');
      assert.equal(m.packet.retain, true);

      const willTopic = `mqttjs/${protocolVersion}/will`;
      const watcher = await client({ protocolVersion });
      await watcher.subscribeAsync(willTopic, { qos: 1 });
      const dying = await client({
        protocolVersion,
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      const will = nextMessage(watcher);
      (dying.stream as unknown as { destroy(): void }).destroy();
      assert.equal((await will).payload, 'gone');
    });

    test(`v${protocolVersion} persistent session gets messages sent while offline`, async () => {
      const topic = `mqttjs/${protocolVersion}/persist`;
      const clientId = `mqttjs-persist-${protocolVersion}`;
      const options: IClientOptions = {
        protocolVersion,
        clientId,
        clean: false,
        properties: protocolVersion === 5 ? { sessionExpiryInterval: 300 } : undefined,
      };
      const first = await client(options);
      await first.subscribeAsync(topic, { qos: 1 });
      await first.endAsync();
      const pub = await client({ protocolVersion });
      await pub.publishAsync(topic, 'offline', { qos: 1 });
      const back = mqtt.connect(`mqtt://127.0.0.1:${port}`, { ...options, reconnectPeriod: 0 });
      clients.push(back);
      const m = await nextMessage(back);
      assert.equal(m.payload, 'offline');
    });

    test(`v${protocolVersion} shared subscription`, async () => {
      const a = await client({ protocolVersion });
      const b = await client({ protocolVersion });
      const got: string[] = [];
      for (const c of [a, b]) {
        await c.subscribeAsync(`$share/mj${protocolVersion}/mqttjs/${protocolVersion}/shared`, { qos: 1 });
        c.on('message', (_t, payload) => got.push(payload.toString()));
      }
      const pub = await client({ protocolVersion });
      for (let i = 0; i < 6; i++) await pub.publishAsync(`mqttjs/${protocolVersion}/shared`, `m${i}`, { qos: 1 });
      const deadline = Date.now() + 5000;
      while (got.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual([...got].sort(), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    });
  }

  test('v5 properties: user properties, response topic, correlation data, content type', async () => {
    const sub = await client({ protocolVersion: 5 });
    await sub.subscribeAsync('mqttjs/props', { qos: 1 });
    const pub = await client({ protocolVersion: 5 });
    const received = nextMessage(sub);
    await pub.publishAsync('mqttjs/props', '{}', {
      qos: 1,
      properties: {
        userProperties: { vin: 'WVW123' },
        responseTopic: 'mqttjs/reply',
        correlationData: Buffer.from('c1'),
        contentType: 'application/json',
      },
    });
    const { packet } = await received;
    assert.deepEqual({ ...packet.properties?.userProperties }, { vin: 'WVW123' });
    assert.equal(packet.properties?.responseTopic, 'mqttjs/reply');
    assert.equal(packet.properties?.correlationData?.toString(), 'c1');
    assert.equal(packet.properties?.contentType, 'application/json');
  });

  test('v5 topic aliases from MQTT.js are resolved', async () => {
    const sub = await client({ protocolVersion: 5 });
    await sub.subscribeAsync('mqttjs/alias/topic', { qos: 0 });
    const pub = await client({ protocolVersion: 5, autoUseTopicAlias: true });
    const got: string[] = [];
    sub.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
    for (const p of ['a', 'b', 'c']) await pub.publishAsync('mqttjs/alias/topic', p, { qos: 1 });
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got, ['mqttjs/alias/topic=a', 'mqttjs/alias/topic=b', 'mqttjs/alias/topic=c']);
  });

  test('MQTT.js over WebSocket', async () => {
    const sub = await client({ url: `ws://127.0.0.1:${wsPort}/mqtt`, protocolVersion: 5 });
    await sub.subscribeAsync('mqttjs/ws', { qos: 1 });
    const pub = await client({ protocolVersion: 4 });
    const received = nextMessage(sub);
    await pub.publishAsync('mqttjs/ws', 'over ws', { qos: 1 });
    assert.equal((await received).payload, 'over ws');
  });

  test('MQTT.js over TLS, secure WebSocket and mutual TLS; without a client certificate, or with a stranger one, refused', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const [, , tlsListener, mtlsListener, wssListener] = broker.addresses();
    const ca = certs.ca;
    const sub = await client({ url: `mqtts://localhost:${tlsListener!.port}`, ca, protocolVersion: 5 });
    await sub.subscribeAsync('mqttjs/tls/#', { qos: 2 });
    const me = certs.client('mqttjs-client');
    const mutual = await client({
      url: `mqtts://localhost:${mtlsListener!.port}`,
      ca,
      cert: me.cert,
      key: me.key,
      protocolVersion: 4,
    });
    const secureWs = await client({ url: `wss://localhost:${wssListener!.port}/mqtt`, ca, protocolVersion: 5 });
    let received = nextMessage(sub);
    await mutual.publishAsync('mqttjs/tls/mutual', 'over mtls', { qos: 1 });
    assert.equal((await received).payload, 'over mtls');
    received = nextMessage(sub);
    await secureWs.publishAsync('mqttjs/tls/wss', 'over wss', { qos: 2 });
    assert.equal((await received).payload, 'over wss');
    // A stranger's certificate fails only after MQTT.js's side of the TLS 1.3 handshake: it then sees the line
    // close, with no error, and its connectAsync never settles. Hence the events.
    for (const identity of [{}, { cert: certs.stranger.cert, key: certs.stranger.key }]) {
      const c = mqtt.connect(`mqtts://localhost:${mtlsListener!.port}`, {
        ca,
        ...identity,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      const outcome = await new Promise<string>((resolve) => {
        c.once('connect', () => resolve('connected'));
        c.once('close', () => resolve('closed'));
      });
      await c.endAsync(true);
      assert.equal(outcome, 'closed', 'the mutual TLS listener refuses a client without a certificate of its CA');
    }
  });
});
