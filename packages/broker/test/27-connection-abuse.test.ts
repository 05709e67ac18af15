// Connection-level abuse against a live broker: clients that never read, trickle packets, go silent, or break the
// transport (TLS, WebSocket) in ways the protocol tests do not. Output held for a connection is measured through a
// spy on Connection.flush (this file's process only): what the socket has not handed to the kernel.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { encode } from '@otalink/mqtt';
import { createWebSocketStream, WebSocket } from 'ws';
import { Connection } from '../src/connection.js';
import { createBroker } from '../src/index.js';
import { makeCertificates } from './support/certs.js';
import { connected, delay, RawClient, silent, startBroker, subscribe, text } from './support/raw-client.js';

/** The most output any one connection held after a flush since the last reset. */
let heldMax = 0;
const flush = Connection.prototype.flush;
Connection.prototype.flush = function (this: Connection): void {
  flush.call(this);
  const held = this.socket.writableLength;
  if (held > heldMax) heldMax = held;
};

const MiB = 1024 * 1024;

/** Writes `chunk` over and over until `done()` or `ms` pass, waiting (bounded) whenever the socket is backed up. */
async function flood(client: RawClient, chunk: () => Uint8Array, ms: number, done: () => boolean): Promise<number> {
  let writes = 0;
  const until = Date.now() + ms;
  while (Date.now() < until && !done() && !client.closed) {
    writes++;
    if (!client.socket.write(chunk())) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          client.socket.off('drain', done);
          resolve();
        };
        const timer = setTimeout(done, 100);
        client.socket.once('drain', done);
      });
    } else {
      await delay(0);
    }
  }
  return writes;
}

describe('27 connection abuse', { timeout: 60_000 }, () => {
  test('a publisher that never reads its PUBACKs stops being read: the output held for it stays bounded', async () => {
    const b = await startBroker();
    try {
      const client = await connected(b.port, { version: 4, clientId: 'no-reader' });
      // Count raw bytes instead of decoding (millions of PUBACKs); nothing is read until the flood is over.
      client.socket.removeAllListeners('data');
      let received = 0;
      client.socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      client.socket.pause();
      const one = encode(
        { type: 'publish', topic: 'a', payload: new Uint8Array(0), qos: 1, retain: false, dup: false, packetId: 1 },
        4,
      );
      const PER_WRITE = 10_000;
      const batch = Buffer.concat(Array.from({ length: PER_WRITE }, () => one));
      heldMax = 0;
      const writes = await flood(
        client,
        () => batch,
        4000,
        () => heldMax > 7 * MiB,
      );
      assert.ok(heldMax <= 6 * MiB, `${(heldMax / MiB).toFixed(1)} MiB held for one client`);
      // Others are still served meanwhile.
      const other = await connected(b.port, { version: 5, clientId: 'other' });
      other.send({ type: 'pingreq' });
      await other.expect('pingresp');
      other.end();
      // Once it reads, it gets every acknowledgement: reading resumed, nothing was lost.
      client.socket.resume();
      const expected = writes * PER_WRITE * 4;
      const deadline = Date.now() + 15_000;
      while (received < expected && Date.now() < deadline && !client.closed) await delay(20);
      assert.equal(received, expected);
      client.end();
    } finally {
      await b.close();
    }
  });

  test('a QoS 1 subscriber that never reads but acknowledges packet ids blindly cannot inflate its output', async () => {
    const b = await startBroker();
    try {
      b.broker.publish({ topic: 'big/r', payload: new Uint8Array(256 * 1024), qos: 1, retain: true });
      const client = await connected(b.port, { version: 4, clientId: 'blind' });
      await subscribe(client, 'big/#', 1);
      client.socket.pause();
      heldMax = 0;
      let id = 1;
      const round = (): Uint8Array => {
        const packets: Uint8Array[] = [];
        for (let i = 0; i < 200; i++) {
          packets.push(encode({ type: 'puback', packetId: id }, 4));
          id = id === 0xffff ? 1 : id + 1;
        }
        packets.push(encode({ type: 'subscribe', packetId: 7, subscriptions: [{ topicFilter: 'big/#', qos: 1 }] }, 4));
        return Buffer.concat(packets);
      };
      await flood(client, round, 3000, () => heldMax > 64 * MiB);
      // Bounded by the pause threshold plus what one turn may queue (TURN_OUTPUT_BYTES, 8 MiB).
      assert.ok(heldMax <= 20 * MiB, `${(heldMax / MiB).toFixed(1)} MiB held for one client`);
      client.end();
    } finally {
      await b.close();
    }
  });

  test('slow loris after CONNECT: a packet trickling in byte by byte is cut off by keepalive', async () => {
    const b = await startBroker({ limits: { connectTimeoutMs: 500 } });
    try {
      const client = await connected(b.port, { version: 5, clientId: 'loris', keepalive: 1 });
      // A PUBLISH of 200 bytes, its header at once, then one byte every 300 ms: never whole within 1.5 s.
      const publish = encode(
        { type: 'publish', topic: 'loris', payload: new Uint8Array(190), qos: 0, retain: false, dup: false },
        5,
      );
      client.writeRaw(publish.subarray(0, 2));
      const started = Date.now();
      let at = 2;
      while (!client.closed && Date.now() - started < 6000 && at < publish.length) {
        client.writeRaw(publish.subarray(at, ++at));
        await delay(300);
      }
      assert.ok(client.closed, 'still open after 6 s of a partial packet with keepalive 1 s');
      const packets = client.received.splice(0);
      assert.deepEqual(
        packets.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
        [0x8d],
      );
    } finally {
      await b.close();
    }
  });

  test('TLS: a socket that never completes the handshake is closed at the CONNECT timeout', async (t) => {
    const certs = makeCertificates();
    if (certs === undefined) return t.skip('openssl CLI not installed');
    const broker = createBroker({
      listeners: [
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } },
      ],
      allowAnonymous: true,
      limits: { connectTimeoutMs: 500 },
      logger: silent,
      sysIntervalSeconds: 0,
    });
    await broker.listen();
    try {
      const port = broker.addresses()[0]!.port;
      // Nothing at all, and the first bytes of a ClientHello.
      for (const bytes of [[], [0x16, 0x03, 0x01, 0x00, 0x80, 0x01]]) {
        const socket = netConnect({ host: '127.0.0.1', port });
        socket.on('error', () => {});
        await once(socket, 'connect');
        if (bytes.length > 0) socket.write(Uint8Array.from(bytes));
        const closed = once(socket, 'close');
        const timedOut = delay(3000).then(() => 'timeout');
        assert.notEqual(await Promise.race([closed, timedOut]), 'timeout');
        socket.destroy();
      }
      // A connection made before a certificate reload (SIGHUP) keeps working; TLS 1.2 renegotiation asked by the
      // client is refused, before and after the reload (the option is part of the context the reload replaces).
      const open = async (clientId: string) => {
        const tls = tlsConnect({
          host: '127.0.0.1',
          port,
          ca: certs.ca,
          servername: 'localhost',
          maxVersion: 'TLSv1.2',
        });
        tls.on('error', () => {});
        await once(tls, 'secureConnect');
        const client = new RawClient(tls, 5);
        assert.equal((await client.handshake({ clientId })).reasonCode, 0);
        return { tls, client };
      };
      const renegotiate = (tls: ReturnType<typeof tlsConnect>) =>
        new Promise<string>((resolve) => {
          if (!tls.renegotiate({}, (error) => resolve(error ? 'refused' : 'renegotiated'))) resolve('refused locally');
          setTimeout(() => resolve('no answer'), 1000);
        });
      const before = await open('before-reload');
      assert.equal(
        broker.updateTls([
          { protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } },
        ]),
        1,
      );
      before.client.send({ type: 'pingreq' });
      await before.client.expect('pingresp');
      assert.notEqual(await renegotiate(before.tls), 'renegotiated');
      const after = await open('after-reload');
      assert.notEqual(await renegotiate(after.tls), 'renegotiated');
      before.client.end();
      after.client.end();
    } finally {
      await broker.close();
      certs.remove();
    }
  });

  describe('WebSocket', () => {
    async function wsBroker(options: { connectTimeoutMs?: number } = {}) {
      const broker = createBroker({
        listeners: [{ protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' }],
        allowAnonymous: true,
        limits: { connectTimeoutMs: options.connectTimeoutMs ?? 10_000 },
        logger: silent,
        sysIntervalSeconds: 0,
      });
      await broker.listen();
      return { broker, url: `ws://127.0.0.1:${broker.addresses()[0]!.port}/mqtt` };
    }

    /** A raw client over a WebSocket to `url`, once a CONNACK accepted it. */
    async function wsClient(url: string, version: 4 | 5, connect: { clientId: string; keepalive?: number }) {
      const ws = new WebSocket(url, 'mqtt');
      await once(ws, 'open');
      const client = new RawClient(createWebSocketStream(ws), version);
      assert.equal((await client.handshake(connect)).reasonCode, 0);
      return { ws, client };
    }

    test('a text frame instead of binary closes the connection [MQTT-6.0.0-1]; its packet is not acted on', async () => {
      const { broker, url } = await wsBroker();
      try {
        const { ws, client } = await wsClient(url, 4, { clientId: 'text' });
        await subscribe(client, 'tx', 0);
        // A PUBLISH to itself in a text frame (every byte ASCII, so valid UTF-8): not routed, the connection closes.
        const publish = encode(
          { type: 'publish', topic: 'tx', payload: text('hi'), qos: 0, retain: false, dup: false },
          4,
        );
        const closed = once(ws, 'close');
        ws.send(Buffer.from(publish).toString('latin1'));
        assert.notEqual(await Promise.race([closed, delay(3000).then(() => 'timeout')]), 'timeout');
        assert.deepEqual(client.received, []);
      } finally {
        await broker.close();
      }
    });

    test('WebSocket pings are answered; only MQTT packets count for keepalive', async () => {
      const { broker, url } = await wsBroker();
      try {
        const { ws, client } = await wsClient(url, 5, { clientId: 'pinger', keepalive: 1 });
        let pongs = 0;
        ws.on('pong', () => pongs++);
        let closed = false;
        ws.on('close', () => {
          closed = true;
        });
        const started = Date.now();
        while (!closed && Date.now() - started < 5000) {
          ws.ping();
          await delay(200);
        }
        assert.ok(pongs > 0);
        assert.ok(closed, 'WebSocket pings kept an MQTT connection with keepalive 1 s open');
        const last = client.received.at(-1);
        assert.equal(last?.type === 'disconnect' ? last.reasonCode : last?.type, 0x8d);
      } finally {
        await broker.close();
      }
    });

    test('an upgrade that never sends a frame is closed at the CONNECT timeout; huge headers are refused', async () => {
      const { broker, url } = await wsBroker({ connectTimeoutMs: 500 });
      try {
        const ws = new WebSocket(url, 'mqtt');
        ws.on('error', () => {});
        await once(ws, 'open');
        const closed = once(ws, 'close');
        assert.notEqual(await Promise.race([closed, delay(3000).then(() => 'timeout')]), 'timeout');
        const big = new WebSocket(url, 'mqtt', { headers: { 'x-big': 'a'.repeat(64 * 1024) } });
        const outcome = await new Promise<string>((resolve) => {
          big.on('open', () => resolve('open'));
          big.on('error', (e) => resolve(`error ${e.message}`));
          big.on('unexpected-response', (_q, r) => resolve(`status ${r.statusCode}`));
        });
        console.log('huge headers:', outcome);
        assert.notEqual(outcome, 'open');
      } finally {
        await broker.close();
      }
    });
  });

  test('half-close after CONNECT: the packets sent are answered, then the connection closes', async () => {
    const b = await startBroker();
    try {
      const client = await RawClient.open(b.port, 5);
      const bytes = Buffer.concat([
        encode({ type: 'connect', protocolVersion: 5, clientId: 'half', clean: true, keepalive: 60 }, 5),
        encode({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'half/t', qos: 1 }] }, 5),
        encode({ type: 'pingreq' }, 5),
      ]);
      client.socket.end(bytes);
      const packets = await client.expectClose(3000);
      assert.deepEqual(
        packets.map((p) => p.type),
        ['connack', 'suback', 'pingresp'],
      );
    } finally {
      await b.close();
    }
  });

  /** What `promise` resolves to, or undefined after `ms` (the timer cleared either way: none is left running). */
  async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One CONNECT, accepted, over `protocol`; throws if the connection is refused, closed or not answered. */
  async function connectAfterEmfile(protocol: 'mqtt' | 'ws', port: number): Promise<void> {
    if (protocol === 'mqtt') {
      const client = await RawClient.open(port, 4);
      try {
        assert.equal((await client.handshake({ clientId: 'after-emfile' })).reasonCode, 0);
      } finally {
        client.end();
      }
      return;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, 'mqtt');
    ws.on('error', () => {});
    try {
      const open = once(ws, 'open').then(
        () => true,
        () => false,
      );
      assert.ok((await within(open, 3000)) === true, 'the WebSocket upgrade failed');
      const client = new RawClient(createWebSocketStream(ws), 4);
      assert.equal((await client.handshake({ clientId: 'after-emfile' })).reasonCode, 0);
    } finally {
      ws.terminate();
    }
  }

  for (const protocol of ['mqtt', 'ws'] as const) {
    test(`${protocol}: out of file descriptors (EMFILE) on accept neither crashes nor stops the broker`, async () => {
      const script = new URL('./support/broker-process.ts', import.meta.url).pathname;
      const config = JSON.stringify({ protocol, limits: { connectTimeoutMs: 60_000 }, sysIntervalSeconds: 0 });
      const child = spawn(
        'bash',
        ['-c', `ulimit -n 64 && exec "${process.execPath}" --import tsx "${script}" '${config}'`],
        {
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      try {
        // Bounded generously: a child's start-up (node and tsx) takes seconds on a loaded machine.
        const started = await within(once(createInterface({ input: child.stdout! }), 'line'), 30_000);
        assert.ok(started !== undefined, 'the broker process did not say its port within 30 s');
        const { port } = JSON.parse(started[0] as string) as { port: number };
        const sockets: Socket[] = [];
        for (let i = 0; i < 100; i++) {
          const socket = netConnect({ host: '127.0.0.1', port });
          socket.on('error', () => {});
          sockets.push(socket);
        }
        await delay(1000);
        assert.equal(child.exitCode, null, 'the broker exited');
        for (const socket of sockets) socket.destroy();
        // The broker gets its descriptors back as it sees those sockets close, later on a loaded machine; until then
        // a new connection may still be turned away. It must be served again, within a generous bound.
        const deadline = Date.now() + 15_000;
        for (let attempt = 1; ; attempt++) {
          await delay(300);
          try {
            await connectAfterEmfile(protocol, port);
            break;
          } catch (error) {
            if (Date.now() > deadline) throw new Error(`no connection served after ${attempt} attempts: ${error}`);
          }
        }
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
