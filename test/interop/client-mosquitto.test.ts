// The otalink client against a real Mosquitto: every QoS in both protocol versions, retained and will messages,
// persistent sessions, TLS and mutual TLS (certificates generated at run time), a broker killed and restarted
// mid-stream, a client process killed with SIGKILL and restarted on the same file store, and messages whose Message
// Expiry Interval runs while they wait in the client's store.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { makeCertificates } from '../../packages/broker/test/support/certs.js';
import { connect, type Message, MqttClient, openFileStore } from '../../packages/mqtt/src/client/index.js';
import type { TransportFactory } from '../../packages/mqtt/src/client/transport.js';
import { tcpTransport } from '../../packages/mqtt/src/client/transports/tcp.js';
import type { ProtocolVersion } from '../../packages/mqtt/src/codec/packets.js';
import { Mosquitto } from '../../packages/mqtt/test/client/mosquitto.js';
import { requireProgram } from '../support/system.js';

const fast = { initialDelayMs: 20, maxDelayMs: 250 };
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const version of [4, 5] as ProtocolVersion[]) {
  describe(`otalink client ↔ mosquitto, MQTT ${version === 5 ? '5.0' : '3.1.1'}`, () => {
    test('every QoS both ways, retained messages, wills', async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const broker = await Mosquitto.start(binary);
      const clients: MqttClient[] = [];
      try {
        const sub = await connect({ url: broker.url, protocolVersion: version, reconnect: false });
        clients.push(sub);
        const granted = await sub.subscribe(['it/#', 'will/#'], { qos: 2 });
        assert.deepEqual(granted.reasonCodes, [2, 2]);
        const got: Message[] = [];
        sub.on('message', (m) => got.push(m));
        const pub = await connect({ url: broker.url, protocolVersion: version, reconnect: false });
        clients.push(pub);
        for (const qos of [0, 1, 2] as const) {
          assert.equal((await pub.publish(`it/${qos}`, `q${qos}`, { qos })).reasonCode, 0);
        }
        await until(() => got.length === 3, 5000, 'three messages');
        assert.deepEqual(
          got.map((m) => [m.topic, m.qos, text(m.payload)]),
          [
            ['it/0', 0, 'q0'],
            ['it/1', 1, 'q1'],
            ['it/2', 2, 'q2'],
          ],
        );
        await pub.publish('it/retained', 'kept', { qos: 1, retain: true });
        const late = await connect({ url: broker.url, protocolVersion: version, reconnect: false });
        clients.push(late);
        const retained = late.messages();
        await late.subscribe('it/retained', { qos: 1 });
        const first = (await retained.next()).value as Message;
        assert.deepEqual([first.topic, first.retain, text(first.payload)], ['it/retained', true, 'kept']);
        await pub.publish('it/retained', '', { qos: 1, retain: true });
        // A will, published when the connection dies without DISCONNECT.
        const doomed = await connect({
          url: broker.url,
          protocolVersion: version,
          reconnect: false,
          will: { topic: 'will/v', payload: 'gone', qos: 1 },
        });
        await doomed.end({ force: true });
        await until(() => got.some((m) => m.topic === 'will/v'), 5000, 'the will');
      } finally {
        for (const c of clients) await c.end({ force: true });
        await broker.stop();
      }
    });

    test('mqtts:// with the CA; mutual TLS with a client certificate; refused without one, or with a stranger one', async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const certs = makeCertificates();
      if (certs === undefined) return t.skip('openssl CLI not installed');
      const m = await Mosquitto.start(binary, { tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca } });
      const clients: MqttClient[] = [];
      try {
        const open = async (port: number, tls: { cert?: string; key?: string }) => {
          const c = await connect(`mqtts://localhost:${port}`, {
            protocolVersion: version,
            reconnect: false,
            connectTimeoutMs: 5000,
            tls: { ca: certs.ca, ...tls },
          });
          clients.push(c);
          return c;
        };
        const sub = await open(m.tlsPort, {});
        const topic = `otalink/tls/${version}`;
        await sub.subscribe(topic, { qos: 2 });
        const got: string[] = [];
        sub.on('message', (msg) => got.push(text(msg.payload)));
        const me = certs.client(`otalink-${version}`);
        const mutual = await open(m.mutualTlsPort, { cert: me.cert, key: me.key });
        await mutual.publish(topic, 'over mutual tls', { qos: 1 });
        await mutual.publish(topic, 'exactly once', { qos: 2 });
        await until(() => got.length === 2, 5000, 'both messages over TLS');
        assert.deepEqual(got, ['over mutual tls', 'exactly once']);
        for (const identity of [{}, { cert: certs.stranger.cert, key: certs.stranger.key }]) {
          await assert.rejects(open(m.mutualTlsPort, identity), (err: Error) => {
            assert.match(err.message, /certificate|closed|alert|socket/i);
            return true;
          });
        }
      } finally {
        await Promise.all(clients.map((c) => c.end({ force: true })));
        await m.stop();
        certs.remove();
      }
    });

    test('persistent session: messages queued while the subscriber was away arrive on its return', async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const broker = await Mosquitto.start(binary);
      try {
        const opts = { url: broker.url, protocolVersion: version, clientId: `persist-${version}`, clean: false };
        const first = await connect({ ...opts, clean: true });
        await first.end();
        const sub = await connect(opts);
        await sub.subscribe('away/#', { qos: 1 });
        await sub.end();
        const pub = await connect({ url: broker.url, protocolVersion: version });
        await Promise.all([1, 2, 3].map((i) => pub.publish('away/x', `m${i}`, { qos: 1 })));
        await pub.end();
        const back = await connect(opts);
        assert.equal(back.connack?.sessionPresent, true);
        const stream = back.messages();
        const seen: string[] = [];
        for await (const m of stream) {
          seen.push(text(m.payload));
          if (seen.length === 3) break;
        }
        assert.deepEqual(seen, ['m1', 'm2', 'm3']);
        await back.end();
      } finally {
        await broker.stop();
      }
    });

    test('manualAck: an ack waits for earlier ones; unacknowledged and held messages come back after reconnect', async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const broker = await Mosquitto.start(binary);
      const clients: MqttClient[] = [];
      try {
        const opts = {
          url: broker.url,
          protocolVersion: version,
          clientId: `manual-${version}`,
          clean: false,
          manualAck: true,
          reconnect: false as const,
        };
        const sub = await connect(opts);
        clients.push(sub);
        await sub.subscribe('manual/#', { qos: 2 });
        const got: Message[] = [];
        sub.on('message', (m) => got.push(m));
        const pub = await connect({ url: broker.url, protocolVersion: version, reconnect: false });
        clients.push(pub);
        for (const [i, qos] of [1, 1, 2, 2].entries()) await pub.publish(`manual/${i}`, `m${i}`, { qos: qos as 1 | 2 });
        await until(() => got.length === 4, 5000, 'four messages');
        // manual/0 is acknowledged on the wire; manual/1 (QoS 1) and manual/3 (QoS 2) stay unacknowledged, so the
        // acks of manual/2 and the marker are held behind manual/1 (arrival order) and never reach mosquitto.
        got[2]?.ack();
        got[0]?.ack();
        await pub.publish('manual/marker', 'after the acks', { qos: 1 });
        await until(() => got.length === 5, 5000, 'the marker');
        got[4]?.ack();
        assert.deepEqual([sub.unackedCount, sub.heldAckCount], [2, 2]);
        await sub.end();
        const back = await connect(opts);
        clients.push(back);
        assert.equal(back.connack?.sessionPresent, true);
        const again: Message[] = [];
        back.on('message', (m) => again.push(m));
        await until(() => again.length >= 4, 5000, 'the redelivery');
        await pub.publish('manual/end', 'end', { qos: 1 });
        await until(() => again.length >= 5, 5000, 'the end marker');
        assert.deepEqual(
          again.map((m) => [m.topic, m.qos]),
          [
            ['manual/1', 1],
            ['manual/2', 2],
            ['manual/3', 2],
            ['manual/marker', 1],
            ['manual/end', 1],
          ],
          'the unacknowledged ones and those whose ack was held come back, in order; manual/0 does not',
        );
        for (const m of again) m.ack();
        await until(() => back.unackedCount === 0, 5000, 'the acks');
      } finally {
        for (const c of clients) await c.end({ force: true });
        await broker.stop();
      }
    });

    if (version === 5) {
      test('a caller topicAlias and automatic aliases share one table: no message misrouted', async (t) => {
        const binary = requireProgram(t, 'mosquitto');
        if (!binary) return;
        const broker = await Mosquitto.start(binary);
        const clients: MqttClient[] = [];
        try {
          const sub = await connect({ url: broker.url, reconnect: false });
          clients.push(sub);
          await sub.subscribe('hijack/#', { qos: 1 });
          const got: Message[] = [];
          sub.on('message', (m) => got.push(m));
          const pub = await connect({ url: broker.url, reconnect: false });
          clients.push(pub);
          assert.ok(pub.serverLimits.topicAliasMaximum > 0, 'mosquitto allows topic aliases');
          await pub.publish('hijack/b', '1', { qos: 1 });
          await pub.publish('hijack/a', '2', { qos: 1, properties: { topicAlias: 1 } });
          await pub.publish('hijack/b', '3', { qos: 1 });
          await pub.publish('hijack/a', '4', { qos: 1 });
          await until(() => got.length === 4, 5000, 'four messages');
          assert.deepEqual(
            got.map((m) => `${m.topic}=${text(m.payload)}`),
            ['hijack/b=1', 'hijack/a=2', 'hijack/b=3', 'hijack/a=4'],
          );
        } finally {
          for (const c of clients) await c.end({ force: true });
          await broker.stop();
        }
      });

      test('5.0 properties reach the other side; assigned client id; topic aliases accepted', async (t) => {
        const binary = requireProgram(t, 'mosquitto');
        if (!binary) return;
        const broker = await Mosquitto.start(binary);
        try {
          const sub = await connect({ url: broker.url });
          assert.ok(sub.clientId.length > 0, 'the server assigned a client id');
          const stream = (await sub.subscribe('props/#', { qos: 1 })).messages();
          const pub = await connect({ url: broker.url });
          const properties = {
            contentType: 'application/json',
            responseTopic: 'reply/here',
            correlationData: new Uint8Array([1, 2, 3]),
            userProperties: [['vin', 'WVW123'] as [string, string]],
            messageExpiryInterval: 60,
          };
          for (let i = 0; i < 3; i++) await pub.publish('props/a', `{"i":${i}}`, { qos: 1, properties });
          for (let i = 0; i < 3; i++) {
            const m = (await stream.next()).value as Message;
            assert.equal(m.properties?.contentType, 'application/json');
            assert.equal(m.properties?.responseTopic, 'reply/here');
            assert.deepEqual([...(m.properties?.correlationData ?? [])], [1, 2, 3]);
            assert.deepEqual(m.properties?.userProperties, [['vin', 'WVW123']]);
            assert.equal(text(m.payload), `{"i":${i}}`);
          }
          await pub.end();
          await sub.end();
        } finally {
          await broker.stop();
        }
      });

      test('messages queued through a broker outage and a client restart go out with what is left of their expiry', async (t) => {
        const binary = requireProgram(t, 'mosquitto');
        if (!binary) return;
        const broker = await Mosquitto.start(binary, { persistence: true });
        const dir = mkdtempSync(join(tmpdir(), 'otalink-expiry-'));
        try {
          const sub = await connect({ url: broker.url, clientId: 'expiry-sub', clean: false, reconnect: fast });
          await sub.subscribe('expiry/#', { qos: 1 });
          const received: Message[] = [];
          sub.on('message', (m) => received.push(m));
          const first = await connect({
            url: broker.url,
            clientId: 'expiry-pub',
            clean: false,
            reconnect: fast,
            store: await openFileStore(join(dir, 'store.log')),
          });
          await broker.kill('SIGTERM');
          await until(() => first.state !== 'connected', 5_000, 'the publisher to notice the outage');
          // Queued while the broker is away: each is in the store, none on the wire.
          const queuedAt = Date.now();
          const outcomes = [
            first.publish('expiry/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } }),
            first.publish('expiry/long', 'long', { qos: 1, properties: { messageExpiryInterval: 3600 } }),
            first.publish('expiry/none', 'none', { qos: 1 }),
          ].map((p) => p.catch((error: unknown) => error));
          await first.end({ force: true }); // the process ends; its store keeps the three
          for (const outcome of await Promise.all(outcomes)) {
            assert.equal((outcome as { code?: string }).code, 'MQTT_ERR_CLIENT_CLOSED');
          }
          await new Promise((r) => setTimeout(r, 1_200));
          await broker.run();
          await until(() => sub.state === 'connected', 10_000, 'the subscriber to come back');
          const errors: Error[] = [];
          const second = new MqttClient({
            url: broker.url,
            clientId: 'expiry-pub',
            clean: false,
            reconnect: fast,
            store: await openFileStore(join(dir, 'store.log')),
          });
          second.on('error', (error) => errors.push(error));
          await second.start();
          await until(() => received.length === 2, 10_000, `two messages (have ${received.length})`);
          assert.deepEqual(
            received.map((m) => text(m.payload)),
            ['long', 'none'],
          );
          const left = received[0]!.properties?.messageExpiryInterval ?? 0;
          // What is left after the time it waited (seconds on a loaded machine), rounded by the client and the broker.
          const waited = Math.ceil((Date.now() - queuedAt) / 1000);
          assert.ok(left >= 3600 - waited - 1 && left <= 3599, `the long one has what is left of its hour: ${left}`);
          assert.equal(received[1]!.properties?.messageExpiryInterval, undefined);
          assert.deepEqual(
            errors.map((e) => (e as { code?: string }).code),
            ['MQTT_ERR_MESSAGE_EXPIRED'],
            'the restored message that expired is reported, not sent',
          );
          assert.match(errors[0]!.message, /expiry\/short/);
          await new Promise((r) => setTimeout(r, 100));
          assert.equal(received.length, 2, 'nothing else arrives');
          await second.end();
          await sub.end();
        } finally {
          rmSync(dir, { recursive: true, force: true });
          await broker.stop();
        }
      });
    }
  });
}

for (const qos of [1, 2] as const) {
  test(`mosquitto stopped and restarted mid-stream (persistence on): QoS ${qos} nothing lost${qos === 2 ? ', nothing doubled' : ''}`, async (t) => {
    const binary = requireProgram(t, 'mosquitto');
    if (!binary) return;
    const broker = await Mosquitto.start(binary, { persistence: true });
    const total = 400;
    try {
      const sub = await connect({
        url: broker.url,
        clientId: `restart-sub-${qos}`,
        clean: false,
        reconnect: fast,
        keepalive: 5,
      });
      await sub.subscribe('restart/#', { qos });
      const received: string[] = [];
      // Stopped from the handler of the 50th message, so the stream is cut mid-way however fast the client is
      // (polling for 50 received let a fast publisher finish all 400 first).
      let stopped: Promise<void> | undefined;
      sub.on('message', (m) => {
        received.push(text(m.payload));
        if (received.length === 50) stopped = broker.kill('SIGTERM'); // Mosquitto saves its persistence file
      });
      const pub = await connect({
        url: broker.url,
        clientId: `restart-pub-${qos}`,
        clean: false,
        reconnect: fast,
        keepalive: 5,
        maxInflight: 10,
      });
      const results = Array.from({ length: total }, (_, i) => pub.publish('restart/s', `m${i}`, { qos }));
      await until(() => stopped !== undefined, 10_000, 'the stream to start');
      await stopped;
      await new Promise((r) => setTimeout(r, 200));
      await broker.run();
      await Promise.all(results);
      await until(
        () => new Set(received).size === total,
        20_000,
        `all ${total} messages (have ${new Set(received).size})`,
      );
      if (qos === 2) assert.equal(received.length, total, 'QoS 2: nothing doubled');
      await pub.end();
      await sub.end();
    } finally {
      await broker.stop();
    }
  });
}

// 'default': the child gives no store option and runs in a directory of its own with no $OTALINK_MQTT_STORE_DIR,
// as an application started without configuration would: its store is .otalink-mqtt/<id>@<host>_<port>.log there.
for (const [qos, store] of [
  [1, 'file'],
  [2, 'file'],
  [2, 'default'],
] as const) {
  const how = store === 'file' ? 'on the same file store' : 'with no store option (its default file store)';
  test(`client process killed with SIGKILL and restarted ${how}: QoS ${qos}`, async (t) => {
    const binary = requireProgram(t, 'mosquitto');
    if (!binary) return;
    const broker = await Mosquitto.start(binary);
    const dir = mkdtempSync(join(tmpdir(), 'otalink-kill9-'));
    const total = 1500;
    const fixture = new URL('../../packages/mqtt/test/client/fixtures/store-publisher.ts', import.meta.url).pathname;
    const clientId = `kill9-${store}-${qos}`;
    const { OTALINK_MQTT_STORE_DIR: _, ...env } = process.env;
    const run = (count: number) =>
      spawn(
        process.execPath,
        [
          '--import',
          // By URL: the child's working directory (dir) has no node_modules to find 'tsx' in.
          import.meta.resolve('tsx'),
          fixture,
          broker.url,
          store === 'file' ? join(dir, 'store.log') : 'default',
          clientId,
          String(count),
          String(qos),
          '5',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, env },
      );
    try {
      const sub = await connect({
        url: broker.url,
        clientId: `kill9-sub-${store}-${qos}`,
        clean: false,
        reconnect: fast,
      });
      await sub.subscribe('kill9/#', { qos });
      const received: string[] = [];
      sub.on('message', (m) => received.push(text(m.payload)));
      const first = run(total);
      let out = '';
      first.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      let err = '';
      first.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
      });
      await until(() => out.includes('stored') && received.length >= 100, 30_000, `the child to stream (${err})`);
      const exited = new Promise((r) => first.once('exit', r));
      first.kill('SIGKILL');
      await exited;
      const atKill = new Set(received).size;
      assert.ok(atKill < total, 'killed in the middle of the stream');
      const second = run(0);
      let out2 = '';
      second.stdout?.on('data', (d: Buffer) => {
        out2 += d.toString();
      });
      // 'close', not 'exit': its last output line may not have been read at 'exit'.
      const code = await new Promise<number | null>((r) => second.once('close', r));
      assert.equal(code, 0, out2);
      assert.match(out2, /drained/);
      if (store === 'default') {
        const expected = `store ${join(dir, '.otalink-mqtt', `${clientId}@127.0.0.1_${broker.port}.log`)}\n`;
        assert.ok(out.startsWith(expected), out.slice(0, 200));
        assert.ok(out2.startsWith(expected), out2);
      }
      await until(() => new Set(received).size === total, 15_000, `all ${total} (have ${new Set(received).size})`);
      if (qos === 2) assert.equal(received.length, total, 'QoS 2: nothing doubled');
      await sub.end();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await broker.stop();
    }
  });
}

test('3.1.1: a stored message mosquitto closes the line over (retained, retain_available false) is given up after 5 connections, and the ones behind it go', async (t) => {
  const binary = requireProgram(t, 'mosquitto');
  if (!binary) return;
  const broker = await Mosquitto.start(binary, { config: ['retain_available false'] });
  const dir = mkdtempSync(join(tmpdir(), 'otalink-poison-'));
  const storePath = join(dir, 'store.log');
  const clients: MqttClient[] = [];
  const publisher = async (poisonStrikes?: number) => {
    const client = new MqttClient({
      url: broker.url,
      protocolVersion: 4,
      clientId: 'poison-pub',
      clean: false,
      reconnect: fast,
      store: await openFileStore(storePath),
      ...(poisonStrikes === undefined ? {} : { poisonStrikes }),
    });
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    let connects = 0;
    client.on('connected', () => connects++);
    clients.push(client);
    await client.start();
    return { client, errors, connects: () => connects };
  };
  try {
    const sub = await connect({ url: broker.url, protocolVersion: 4, reconnect: false });
    clients.push(sub);
    await sub.subscribe('poison/#', { qos: 1 });
    const got: string[] = [];
    sub.on('message', (m) => got.push(m.topic));
    // As MQTT.js and Paho do (poisonStrikes 0): the line closes at the retained one on every connection, and the
    // message behind it never goes.
    const looping = await publisher(0);
    const outcomes = [
      looping.client.publish('poison/before', 'a', { qos: 1 }),
      looping.client.publish('poison/retained', 'b', { qos: 1, retain: true }),
      looping.client.publish('poison/after', 'c', { qos: 1 }),
    ].map((p) => p.catch((error: unknown) => error));
    await until(() => looping.connects() >= 8, 15_000, `connections closing over and over (${looping.connects()})`);
    await looping.client.end({ force: true });
    const [before, retained, after] = await Promise.all(outcomes);
    assert.equal((before as { reasonCode?: number }).reasonCode, 0);
    assert.equal((retained as { code?: string }).code, 'MQTT_ERR_CLIENT_CLOSED');
    assert.equal((after as { code?: string }).code, 'MQTT_ERR_CLIENT_CLOSED');
    assert.deepEqual(got, ['poison/before']);
    // The default, on the same store after a restart: the restored message has no promise, so it is an 'error'.
    const restarted = await publisher();
    await until(() => got.length === 2, 15_000, `the message behind it (have ${got.join(', ')})`);
    assert.deepEqual(got, ['poison/before', 'poison/after']);
    assert.deepEqual(
      restarted.errors.map((e) => (e as { code?: string }).code),
      ['MQTT_ERR_POISON_MESSAGE'],
    );
    assert.match(restarted.errors[0]!.message, /on 5 connections in a row/);
    assert.equal(restarted.connects(), 6, 'five closed over it, the sixth carries the rest');
    await restarted.client.end();
    const left = await (await openFileStore(storePath)).list();
    assert.deepEqual(left, [], 'the store is empty');
  } finally {
    for (const client of clients) await client.end({ force: true });
    rmSync(dir, { recursive: true, force: true });
    await broker.stop();
  }
});

test('3.1.1: a burst of 100 QoS 2 publishes to a default Mosquitto all arrive (it silently drops those beyond its 20 in flight), and QoS 1 ones behind QoS 2 too', async (t) => {
  const binary = requireProgram(t, 'mosquitto');
  if (!binary) return;
  const broker = await Mosquitto.start(binary);
  const clients: MqttClient[] = [];
  try {
    const sub = await connect({ url: broker.url, protocolVersion: 4, reconnect: false });
    clients.push(sub);
    await sub.subscribe('burst/#', { qos: 2 });
    const got = new Set<string>();
    sub.on('message', (m) => got.add(text(m.payload)));
    const pub = await connect({ url: broker.url, protocolVersion: 4, reconnect: false });
    clients.push(pub);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => pub.publish('burst/t', `m${i}`, { qos: 2 })),
    );
    assert.ok(results.every((r) => r.reasonCode === 0));
    await until(() => got.size === 100, 10_000, `100 messages (got ${got.size})`);
    // QoS 1 behind 20 QoS 2: Mosquitto counts the QoS 2 awaiting PUBREL against the same 20 and drops a QoS 1
    // message that finds them full ("quota exceeded"), with a plain PUBACK. Rounds of 20 QoS 2 and 5 QoS 1.
    const mixed: Array<Promise<unknown>> = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20; i++) mixed.push(pub.publish('burst/a', `r${round}-2-${i}`, { qos: 2 }));
      for (let i = 0; i < 5; i++) mixed.push(pub.publish('burst/b', `r${round}-1-${i}`, { qos: 1 }));
    }
    await Promise.all(mixed);
    await until(() => got.size === 225, 10_000, `225 messages (got ${got.size})`);
  } finally {
    for (const c of clients) await c.end({ force: true });
    await broker.stop();
  }
});

test('a client process stalled past its ping timeout, with the PINGRESP arrived meanwhile, keeps its line', async (t) => {
  const binary = requireProgram(t, 'mosquitto');
  if (!binary) return;
  const broker = await Mosquitto.start(binary);
  let stalls = 0;
  // Once a PINGREQ (0xC0 0x00) is written, the process is busy for 700 ms (a long GC, the application's own work):
  // Mosquitto, another process, answers meanwhile, and the PINGRESP waits in the socket past the 300 ms timeout.
  const stalling: TransportFactory = async (target, handlers) => {
    const inner = await tcpTransport(target, handlers);
    return {
      write(chunk) {
        const written = inner.write(chunk);
        if (chunk.length === 2 && chunk[0] === 0xc0 && stalls < 3) {
          stalls++;
          setImmediate(() => {
            const until = performance.now() + 700;
            while (performance.now() < until) {}
          });
        }
        return written;
      },
      end: () => inner.end(),
      destroy: () => inner.destroy(),
    };
  };
  const client = await connect({ url: broker.url, keepalive: 1, pingTimeoutMs: 300, transport: stalling });
  const offline: unknown[] = [];
  client.on('offline', (reason) => offline.push(reason));
  try {
    await until(() => stalls === 3, 10_000, 'three pings, each followed by a stall');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(offline, [], 'the line was taken for dead');
    assert.equal(client.state, 'connected');
  } finally {
    await client.end({ force: true });
    await broker.stop();
  }
});
