// Transports: TLS, mutual TLS with the identity taken from the certificate CN, WebSocket and secure WebSocket
// (subprotocol mqtt), with messages crossing between transports.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { Packet } from '@otalink/mqtt/codec';
import { createWebSocketStream, WebSocket } from 'ws';
import { type Broker, createBroker } from '../src/index.js';
import { makeCertificates, type TestCertificates } from './support/certs.js';
import { connected, RawClient, readSlowly, silent, str, subscribe } from './support/raw-client.js';

// Bounded: a handshake or close that never comes fails the test that waited for it, not the whole file at the
// runner's limit (this file once hung under heavy load; a timeout names the test).
describe('11 TLS and WebSocket', { timeout: 60_000 }, () => {
  let certs: TestCertificates | undefined;
  let broker: Broker;
  const port = (protocol: string, index = 0) => broker.addresses().filter((a) => a.protocol === protocol)[index]!.port;
  const seen: Array<string | undefined> = [];

  before(async () => {
    certs = makeCertificates();
    if (certs === undefined) return;
    const tls = { cert: certs.serverCert, key: certs.serverKey };
    broker = createBroker({
      listeners: [
        { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls },
        {
          protocol: 'mqtts',
          host: '127.0.0.1',
          port: 0,
          tls: { ...tls, ca: certs.ca, requireClientCertificate: true, identityFromCertificate: true },
        },
        { protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
        { protocol: 'wss', host: '127.0.0.1', port: 0, tls },
      ],
      allowAnonymous: false,
      authenticate: (request) => (request.username === 'user' ? { ok: true } : { ok: false, reasonCode: 0x86 }),
      authorize: (client, _action, topic) => {
        seen.push(client.username);
        return client.username === 'user' || topic.startsWith(`cars/${client.username}/`);
      },
      logger: silent,
      sysIntervalSeconds: 0,
    });
    await broker.listen();
  });
  after(async () => {
    if (certs === undefined) return;
    await broker.close();
    certs.remove();
  });

  async function tlsClient(portNumber: number, client?: { cert: string; key: string }): Promise<RawClient> {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: portNumber,
      ca: certs!.ca,
      servername: 'localhost',
      ...client,
    });
    await once(socket, 'secureConnect');
    return new RawClient(socket, 5);
  }

  test('MQTT over TLS: connect, subscribe, and receive a message published over plain TCP', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const client = await tlsClient(port('mqtts'));
    assert.equal((await client.handshake({ clientId: 'tls-1', username: 'user' })).reasonCode, 0);
    await subscribe(client, 'cross/t', 0);
    const plain = await connected(port('mqtt'), { version: 4, clientId: 'plain-1', username: 'user' });
    plain.send({
      type: 'publish',
      topic: 'cross/t',
      payload: new TextEncoder().encode('over tls'),
      qos: 0,
      retain: false,
      dup: false,
    });
    assert.equal(str((await client.expect('publish')).payload), 'over tls');
    client.end();
    plain.end();
  });

  test('mutual TLS: no client certificate, or one from another CA, never gets to MQTT', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    for (const identity of [undefined, certs.stranger]) {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: port('mqtts', 1),
        ca: certs.ca,
        servername: 'localhost',
        ...identity,
      });
      socket.on('error', () => {});
      // TLS 1.3 may finish the client side of the handshake before the server rejects the certificate; either
      // way the connection dies without a CONNACK.
      socket.on('secureConnect', () =>
        socket.write(new Uint8Array([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 1, 0x61])),
      );
      let data = 0;
      socket.on('data', (chunk: Buffer) => {
        data += chunk.length;
      });
      await new Promise((resolve) => socket.on('close', resolve));
      assert.equal(data, 0);
    }
  });

  test('mutual TLS: the certificate CN is the identity for authorization', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const client = await tlsClient(port('mqtts', 1), certs.client('vehicle-42'));
    // No user name and anonymous access off: the verified certificate is the credential.
    assert.equal((await client.handshake({ clientId: 'car' })).reasonCode, 0);
    client.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topicFilter: 'cars/vehicle-42/cmd', qos: 0 },
        { topicFilter: 'cars/vehicle-43/cmd', qos: 0 },
      ],
    });
    assert.deepEqual((await client.expect('suback')).reasonCodes, [0, 0x87]);
    assert.equal(seen.at(-1), 'vehicle-42');
    client.end();
  });

  test('mutual TLS with identities from certificates: a certificate without a CN is refused, whatever user name it sends', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const client = await tlsClient(port('mqtts', 1), certs.client('/O=otalink fleet/OU=no common name'));
    // 'user' would pass the authenticate hook: the listener takes identities from certificates only.
    const connack = await client.handshake({ clientId: 'no-cn', username: 'user', password: new Uint8Array([1]) });
    assert.equal(connack.reasonCode, 0x87);
    await client.expectClose();
  });

  test('MQTT over WebSocket with subprotocol mqtt, both ways with TCP', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const ws = new WebSocket(`ws://127.0.0.1:${port('ws')}/mqtt`, 'mqtt');
    await once(ws, 'open');
    assert.equal(ws.protocol, 'mqtt');
    const client = new RawClient(createWebSocketStream(ws), 4);
    assert.equal((await client.handshake({ clientId: 'ws-1', username: 'user' })).reasonCode, 0);
    await subscribe(client, 'ws/in', 1);
    const plain = await connected(port('mqtt'), { version: 5, clientId: 'plain-ws', username: 'user' });
    await subscribe(plain, 'ws/out', 1);
    plain.send({
      type: 'publish',
      topic: 'ws/in',
      payload: new TextEncoder().encode('to ws'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
    });
    await plain.expect('puback');
    const m = await client.expect('publish');
    assert.equal(str(m.payload), 'to ws');
    client.send({ type: 'puback', packetId: m.packetId! });
    client.send({
      type: 'publish',
      topic: 'ws/out',
      payload: new TextEncoder().encode('from ws'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 2,
    });
    await client.expect('puback');
    assert.equal(str((await plain.expect('publish')).payload), 'from ws');
    client.end();
    plain.end();
  });

  test('WebSocket: a message larger than twice the maximum packet size is refused before it is buffered (1009)', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const ws = new WebSocket(`ws://127.0.0.1:${port('ws')}/mqtt`, 'mqtt');
    await once(ws, 'open');
    const client = new RawClient(createWebSocketStream(ws), 4);
    assert.equal((await client.handshake({ clientId: 'ws-big', username: 'user' })).reasonCode, 0);
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    // 3 MiB of PINGREQs in one message: each packet is tiny, the message is not (ws's own default allows 100 MiB).
    ws.send(Buffer.alloc(3 << 20, Buffer.from([0xc0, 0x00])));
    assert.equal(await closed, 1009);
  });

  test('WebSocket: another path or subprotocol is refused', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    for (const [path, protocol] of [
      ['/other', 'mqtt'],
      ['/mqtt', 'chat'],
    ] as const) {
      const ws = new WebSocket(`ws://127.0.0.1:${port('ws')}${path}`, protocol);
      const failed = await new Promise<boolean>((resolve) => {
        ws.on('open', () => resolve(false));
        ws.on('error', () => resolve(true));
      });
      assert.ok(failed, `${path} ${protocol} was accepted`);
      ws.terminate();
    }
    // The ws client above fails the upgrade itself when no subprotocol comes back; a raw one sees the server's answer.
    for (const [offer, status] of [
      ['chat', '400'],
      ['MQTT', '400'],
      ['chat, mqtt', '101'],
    ] as const) {
      const socket = netConnect(port('ws'), '127.0.0.1');
      await once(socket, 'connect');
      socket.write(
        'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
          `Sec-WebSocket-Protocol: ${offer}\r\n\r\n`,
      );
      const [head] = (await once(socket, 'data')) as [Buffer];
      assert.equal(head.toString('latin1').split(' ')[1], status, offer);
      socket.destroy();
    }
  });

  test('MQTT over secure WebSocket', async (t) => {
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const ws = new WebSocket(`wss://localhost:${port('wss')}/`, 'mqtt', { ca: certs.ca });
    await once(ws, 'open');
    const client = new RawClient(createWebSocketStream(ws), 5);
    assert.equal((await client.handshake({ clientId: 'wss-1', username: 'user' })).reasonCode, 0);
    client.send({ type: 'pingreq' });
    await client.expect('pingresp');
    client.end();
  });
});

/** `promise`, or a failure naming `what` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('11 transport handshakes are bounded by the CONNECT timeout', { timeout: 120_000 }, () => {
  test('a silent socket on the TLS and WebSocket listeners is closed; an upgraded WebSocket stays open', async (t) => {
    const certs = makeCertificates();
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const scenario = async () => {
      const tls = { cert: certs.serverCert, key: certs.serverKey };
      const broker = createBroker({
        listeners: [
          { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls },
          { protocol: 'ws', host: '127.0.0.1', port: 0 },
        ],
        allowAnonymous: true,
        limits: { connectTimeoutMs: 400 },
        logger: silent,
        sysIntervalSeconds: 0,
      });
      await broker.listen();
      try {
        const [secure, ws] = broker.addresses();
        for (const port of [secure!.port, ws!.port]) {
          const socket = netConnect({ host: '127.0.0.1', port });
          socket.on('error', () => {});
          // Read whatever the server says before it closes (the WebSocket listener's HTTP server may answer a silent
          // socket with 408 before our handshake timer destroys it): unread data would hold back 'end' and 'close'.
          socket.resume();
          const started = Date.now();
          const closed = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 10_000);
            socket.on('close', () => {
              clearTimeout(timer);
              resolve(true);
            });
          });
          socket.destroy();
          assert.ok(closed, `a silent socket on port ${port} was still open after 10 s`);
          assert.ok(Date.now() - started < 5000);
        }
        const webSocket = new WebSocket(`ws://127.0.0.1:${ws!.port}/`, 'mqtt');
        await within(once(webSocket, 'open'), 10_000, 'the WebSocket upgrade');
        const client = new RawClient(createWebSocketStream(webSocket), 4);
        assert.equal((await client.handshake({ clientId: 'long-lived', keepalive: 0 })).reasonCode, 0);
        await new Promise((resolve) => setTimeout(resolve, 1200));
        client.send({ type: 'pingreq' });
        await client.expect('pingresp');
        client.end();
      } finally {
        await broker.close();
      }
    };
    try {
      await scenario();
    } finally {
      certs.remove();
    }
  });
});

// The send timeout over TLS reads the write queue of the TCP connection under the TLS stream (send-watch.ts): a
// reader that takes one large message slowly is not cut, one that stops reading is.
describe('11 send timeout over TLS', { timeout: 60_000 }, () => {
  test('a slow TLS reader taking one 12 MiB message for longer than send_timeout is not cut; a stopped one is', async (t) => {
    const certs = makeCertificates();
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const broker = createBroker({
      listeners: [
        { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } },
      ],
      allowAnonymous: true,
      logger: silent,
      sysIntervalSeconds: 0,
      limits: { sendTimeoutMs: 1000, maxPacketSize: 16 << 20 },
    });
    await broker.listen();
    const [plainPort, tlsPort] = broker.addresses().map((a) => a.port) as [number, number];
    const timers: NodeJS.Timeout[] = [];
    const clients: RawClient[] = [];
    try {
      const reader = async (clientId: string): Promise<RawClient> => {
        const socket = tlsConnect({ host: '127.0.0.1', port: tlsPort, ca: certs.ca, servername: 'localhost' });
        await once(socket, 'secureConnect');
        const client = new RawClient(socket, 5);
        clients.push(client);
        assert.equal((await client.handshake({ clientId, keepalive: 0 })).reasonCode, 0);
        await subscribe(client, `big/${clientId}`, 0);
        return client;
      };
      const slow = await reader('slow');
      const stopped = await reader('stopped');
      stopped.socket.pause();
      // A read every 200 ms: the message's one write takes seconds, its bytes taken all along.
      timers.push(readSlowly(slow, 200));
      const publisher = await connected(plainPort, { version: 5, clientId: 'big-publisher' });
      const size = 12 << 20;
      const big = (topic: string) =>
        ({ type: 'publish', topic, payload: new Uint8Array(size), qos: 0, retain: false, dup: false }) as const;
      publisher.send(big('big/slow'));
      publisher.send(big('big/stopped'));
      const started = Date.now();
      const message = await slow.expect('publish', 30_000);
      const took = Date.now() - started;
      assert.equal(message.payload.length, size);
      assert.ok(took > 1500, `the slow read lasted longer than the timeout (${took} ms)`);
      for (let i = 0; i < 200 && broker.stats.sendTimeouts === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(broker.stats.sendTimeouts, 1, 'the stopped reader, and only it, was cut');
      publisher.end();
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const client of clients) client.socket.destroy();
      await broker.close();
      certs.remove();
    }
  });
});

test('shutdown: a 5.0 client over WebSocket gets DISCONNECT 0x8B and a close frame, as one over TCP does', async () => {
  const broker = createBroker({
    listeners: [
      { protocol: 'ws', host: '127.0.0.1', port: 0 },
      { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
    ],
    allowAnonymous: true,
    logger: silent,
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const [wsAddress, tcpAddress] = broker.addresses();
  const ws = new WebSocket(`ws://127.0.0.1:${wsAddress!.port}/mqtt`, 'mqtt');
  await once(ws, 'open');
  const closeCode = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
  const overWs = new RawClient(createWebSocketStream(ws), 5);
  assert.equal((await overWs.handshake({ clientId: 'ws-shutdown' })).reasonCode, 0);
  const overTcp = await connected(tcpAddress!.port, { version: 5, clientId: 'tcp-shutdown' });
  await broker.close();
  const disconnects = (packets: Packet[]) => packets.map((p) => p.type === 'disconnect' && p.reasonCode);
  assert.deepEqual(disconnects(await overTcp.expectClose()), [0x8b]);
  // The listener's close ended the WebSocket clients' sockets before their DISCONNECT went out.
  assert.notEqual(await closeCode, 1006, 'a close frame, not a cut socket');
  assert.deepEqual(disconnects(overWs.received), [0x8b]);
  overWs.socket.destroy();
});
