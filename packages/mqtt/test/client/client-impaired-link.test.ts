// The client behind a proxy that drops, stalls or half-opens the link: keepalive notices a silent line, the
// client reconnects, and nothing published meanwhile is lost.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { connect } from '../../src/client/index.js';
import { encode } from '../../src/codec/index.js';
import { FakeBroker } from './fake-broker.js';
import { ImpairingProxy } from './proxy.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function setup() {
  const broker = await FakeBroker.start();
  const proxy = await ImpairingProxy.start(broker.port);
  const client = await connect({
    url: proxy.url,
    clientId: 'impaired',
    clean: false,
    keepalive: 1,
    pingTimeoutMs: 400,
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    connectTimeoutMs: 1000,
  });
  const reasons: string[] = [];
  client.on('offline', (e) => reasons.push((e as { code?: string }).code ?? e.message));
  return {
    broker,
    proxy,
    client,
    reasons,
    async close() {
      await client.end({ force: true });
      await proxy.close();
      await broker.close();
    },
  };
}

describe('impaired link', () => {
  for (const mode of ['stall', 'half-open'] as const) {
    test(`${mode}: keepalive detects the silent line; messages sent into it arrive after reconnect`, async () => {
      const s = await setup();
      try {
        s.proxy.mode = mode;
        const sent = [s.client.publish('l', 'a', { qos: 1 }), s.client.publish('l', 'b', { qos: 2 })];
        const offline = new Promise<void>((resolve) => s.client.once('offline', () => resolve()));
        await offline;
        assert.deepEqual(s.reasons, ['MQTT_ERR_KEEPALIVE_TIMEOUT']);
        s.proxy.mode = 'pass';
        await Promise.all(sent);
        assert.ok(s.proxy.connections >= 2);
        assert.deepEqual(new Set(s.broker.delivered.map((p) => text(p.payload))), new Set(['a', 'b']));
        assert.equal(s.broker.delivered.filter((p) => p.qos === 2).length, 1, 'QoS 2 delivered once');
      } finally {
        await s.close();
      }
    });
  }

  test('drop: the client sees the close at once and reconnects', async () => {
    const s = await setup();
    try {
      const back = new Promise<void>((resolve) => s.client.once('connected', () => resolve()));
      s.proxy.drop();
      await back;
      assert.deepEqual(s.reasons, ['MQTT_ERR_CONNECTION_CLOSED']);
      await s.client.publish('l', 'after', { qos: 1 });
    } finally {
      await s.close();
    }
  });

  test('no PINGREQ while the line is busy both ways', async () => {
    // A PUBLISH and its PUBACK every ~200 ms keep the line busy only while the machine keeps up: a process stalled
    // for most of the 1 s keepalive leaves the line idle that long, and a PINGREQ is then right. A round with such a
    // gap proves nothing either way and is run again.
    for (let round = 1; ; round++) {
      const s = await setup();
      try {
        let last = Date.now();
        let longestGap = 0;
        const deadline = last + 2500;
        while (Date.now() < deadline) {
          await s.client.publish('busy', 'x', { qos: 1 });
          await new Promise((r) => setTimeout(r, 200));
          longestGap = Math.max(longestGap, Date.now() - last);
          last = Date.now();
        }
        const pings = s.broker.connections.flatMap((c) => c.received).filter((p) => p.type === 'pingreq');
        if (longestGap < 800) {
          assert.equal(pings.length, 0);
          return;
        }
        assert.ok(round < 3, `three rounds with a gap of ${longestGap} ms or so: the machine is too loaded to judge`);
      } finally {
        await s.close();
      }
    }
  });

  test('a client that only publishes QoS 0 notices a line that went silent (it hears nothing back otherwise)', async () => {
    const s = await setup();
    try {
      const offline = new Promise<void>((resolve) => s.client.once('offline', () => resolve()));
      s.proxy.mode = 'stall';
      let stop = false;
      void offline.then(() => {
        stop = true;
      });
      // Keepalive 1 s and a 400 ms ping timeout: well within 5 s, or never.
      const deadline = Date.now() + 5000;
      while (!stop && Date.now() < deadline) {
        s.client.publish('telemetry', 'x', { qos: 0 }).catch(() => {});
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(s.reasons, ['MQTT_ERR_KEEPALIVE_TIMEOUT'], 'still "connected" 5 s into a silent line');
    } finally {
      await s.close();
    }
  });

  test('a slow line: a PINGRESP waiting behind a large message still arriving is not overdue while its bytes come in', async () => {
    // A raw server: CONNACK, then at the first PINGREQ a 24 KB PUBLISH trickled over ~2.4 s (a weak cellular link),
    // its PINGRESP after it. The ping timeout is 400 ms: counted from the PINGREQ, it cut the line (and the resend
    // of the message on a persistent session was cut again, for ever).
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      let pinged = false;
      socket.on('data', (chunk: Buffer) => {
        if (chunk[0] === 0x10) socket.write(encode({ type: 'connack', sessionPresent: false, reasonCode: 0 }, 4));
        if (chunk.includes(0xc0) && !pinged) {
          pinged = true;
          const bytes = encode(
            {
              type: 'publish',
              topic: 'big',
              payload: new Uint8Array(24_000).fill(1),
              qos: 0,
              retain: false,
              dup: false,
            },
            4,
          );
          let offset = 0;
          const trickle = setInterval(() => {
            if (socket.destroyed) return clearInterval(trickle);
            socket.write(bytes.subarray(offset, offset + 200));
            offset += 200;
            if (offset < bytes.length) return;
            clearInterval(trickle);
            socket.write(encode({ type: 'pingresp' }, 4));
          }, 20);
        }
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const client = await connect({
      url: `mqtt://127.0.0.1:${port}`,
      protocolVersion: 4,
      keepalive: 1,
      pingTimeoutMs: 400,
      reconnect: false,
      store: false,
    });
    try {
      const reasons: string[] = [];
      client.on('offline', (e) => reasons.push((e as { code?: string }).code ?? e.message));
      const got = new Promise<number>((resolve, reject) => {
        client.once('message', (m) => resolve(m.payload.length));
        client.once('closed', (reason) => reject(reason ?? new Error('closed')));
      });
      assert.equal(await got, 24_000);
      assert.deepEqual(reasons, []);
      assert.equal(client.state, 'connected');
    } finally {
      await client.end({ force: true });
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  test('keepalive goes on when the system clock is set back (an NTP or GNSS fix)', async () => {
    const s = await setup();
    const realNow = Date.now;
    try {
      const conn = s.broker.latest!;
      Date.now = () => realNow() - 3_600_000;
      await new Promise((r) => setTimeout(r, 2500));
      Date.now = realNow;
      assert.ok(
        conn.received.some((p) => p.type === 'pingreq'),
        'no PINGREQ in 2.5 s with keepalive 1 s',
      );
      assert.deepEqual(s.reasons, []);
    } finally {
      Date.now = realNow;
      await s.close();
    }
  });
});
