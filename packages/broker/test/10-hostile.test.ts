// Hostile input against the live broker: malformed packets (each closes only its own connection, with the right
// 5.0 reason code, while another client keeps being served), slow-loris sockets, oversized packets, garbage and
// a flood of connects.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { encode } from '@otalink/mqtt';
import { connected, delay, RawClient, startBroker, str, subscribe, type TestBroker } from './support/raw-client.js';

interface Case {
  name: string;
  /** Bytes after a successful CONNECT, per version. */
  v4: number[];
  v5: number[];
  /** 5.0 DISCONNECT reason code expected before the close. */
  reason: number;
}

const a = 0x61;
const cases: Case[] = [
  { name: 'reserved packet type 0', v4: [0x00, 0x00], v5: [0x00, 0x00], reason: 0x81 },
  { name: 'PUBLISH with QoS 3', v4: [0x36, 5, 0, 1, a, 0, 1], v5: [0x36, 6, 0, 1, a, 0, 1, 0], reason: 0x81 },
  { name: 'QoS 0 PUBLISH with DUP', v4: [0x38, 3, 0, 1, a], v5: [0x38, 4, 0, 1, a, 0], reason: 0x81 },
  {
    name: 'QoS 1 PUBLISH with packet id 0',
    v4: [0x32, 5, 0, 1, a, 0, 0],
    v5: [0x32, 6, 0, 1, a, 0, 0, 0],
    reason: 0x81,
  },
  {
    name: 'PUBLISH topic with a wildcard',
    v4: [0x30, 5, 0, 3, a, 0x2f, 0x2b],
    v5: [0x30, 6, 0, 3, a, 0x2f, 0x2b, 0],
    reason: 0x90,
  },
  {
    name: 'PUBLISH topic with invalid UTF-8',
    v4: [0x30, 4, 0, 2, 0xc3, 0x28],
    v5: [0x30, 5, 0, 2, 0xc3, 0x28, 0],
    reason: 0x81,
  },
  {
    name: 'remaining length longer than 4 bytes',
    v4: [0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
    v5: [0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
    reason: 0x81,
  },
  { name: 'PUBREL with flags 0', v4: [0x60, 2, 0, 1], v5: [0x60, 2, 0, 1], reason: 0x81 },
  { name: 'SUBSCRIBE with flags 0', v4: [0x80, 6, 0, 1, 0, 1, a, 0], v5: [0x80, 7, 0, 1, 0, 0, 1, a, 0], reason: 0x81 },
  { name: 'SUBSCRIBE without filters', v4: [0x82, 2, 0, 1], v5: [0x82, 3, 0, 1, 0], reason: 0x82 },
  {
    name: 'SUBSCRIBE with a # in the middle',
    v4: [0x82, 8, 0, 1, 0, 3, 0x23, 0x2f, a, 0],
    v5: [0x82, 9, 0, 1, 0, 0, 3, 0x23, 0x2f, a, 0],
    reason: 0x8f,
  },
  { name: 'PINGREQ with a body', v4: [0xc0, 1, 0], v5: [0xc0, 1, 0], reason: 0x81 },
  { name: 'CONNACK from a client', v4: [0x20, 2, 0, 0], v5: [0x20, 3, 0, 0, 0], reason: 0x82 },
  {
    name: 'PUBLISH with an unknown property',
    v4: [0x30, 0x03, 0, 1, a],
    v5: [0x30, 7, 0, 1, a, 2, 0x7f, 0, 0],
    reason: 0x81,
  },
  {
    name: 'second CONNECT',
    v4: [0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 1, a],
    v5: [0x10, 14, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 2, 0, 60, 0, 0, 1, a],
    reason: 0x82,
  },
  { name: 'remaining length 0 encoded as 80 00', v4: [0xc0, 0x80, 0x00], v5: [0xc0, 0x80, 0x00], reason: 0x81 },
  {
    name: 'PUBLISH topic with U+0000',
    v4: [0x30, 5, 0, 3, a, 0, a],
    v5: [0x30, 6, 0, 3, a, 0, a, 0],
    reason: 0x81,
  },
  {
    name: 'SUBSCRIBE with reserved subscription option bits',
    v4: [0x82, 6, 0, 1, 0, 1, a, 0x04],
    v5: [0x82, 7, 0, 1, 0, 0, 1, a, 0x40],
    reason: 0x81,
  },
  {
    name: 'SUBSCRIBE with retain handling 3',
    v4: [0x82, 6, 0, 1, 0, 1, a, 0x30],
    v5: [0x82, 7, 0, 1, 0, 0, 1, a, 0x30],
    reason: 0x82,
  },
  {
    name: 'SUBSCRIBE with no local on a shared subscription',
    v4: [0x82, 15, 0, 1, 0, 10, ...Buffer.from('$share/g/a'), 0x04],
    v5: [0x82, 16, 0, 1, 0, 0, 10, ...Buffer.from('$share/g/a'), 0x04],
    reason: 0x82,
  },
  {
    name: 'SUBSCRIBE with an empty share name',
    v4: [0x82, 14, 0, 1, 0, 9, ...Buffer.from('$share//a'), 0],
    v5: [0x82, 15, 0, 1, 0, 0, 9, ...Buffer.from('$share//a'), 0],
    reason: 0x8f,
  },
  { name: 'UNSUBSCRIBE without filters', v4: [0xa2, 2, 0, 1], v5: [0xa2, 3, 0, 1, 0], reason: 0x82 },
  {
    name: 'PUBLISH with a duplicated property (3.1.1: QoS 2 with packet id 0)',
    v4: [0x34, 5, 0, 1, a, 0, 0],
    v5: [0x30, 14, 0, 1, a, 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1],
    reason: 0x82,
  },
  { name: 'PUBREL with an invalid reason code', v4: [0x62, 3, 0, 1, 0x10], v5: [0x62, 3, 0, 1, 0x10], reason: 0x82 },
];

describe('10 hostile input', () => {
  let b: TestBroker;
  let n = 0;
  before(async () => {
    b = await startBroker({ limits: { connectTimeoutMs: 500, maxPacketSize: 64 * 1024 } });
  });
  after(() => b.close());

  for (const version of [4, 5] as const) {
    for (const c of cases) {
      if (version === 4 && c.name === 'PUBLISH with an unknown property') continue; // 3.1.1 has no properties
      test(`MQTT ${version}: ${c.name} closes only that connection${version === 5 ? ` with 0x${c.reason.toString(16)}` : ''}`, async () => {
        const bystander = await connected(b.port, { version, clientId: `bystander-${++n}` });
        await subscribe(bystander, 'still/served', 0);
        const hostile = await connected(b.port, { version, clientId: `hostile-${++n}` });
        hostile.writeRaw(version === 5 ? c.v5 : c.v4);
        const packets = await hostile.expectClose();
        if (version === 5) {
          assert.deepEqual(
            packets.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
            [c.reason],
          );
        } else {
          assert.deepEqual(packets, []);
        }
        bystander.send({ type: 'pingreq' });
        await bystander.expect('pingresp');
        b.broker.publish({ topic: 'still/served', payload: 'yes' });
        assert.equal(str((await bystander.expect('publish')).payload), 'yes');
        bystander.end();
      });
    }
  }

  test('slow loris: a CONNECT trickling in is cut off at the CONNECT timeout', async () => {
    const client = await RawClient.open(b.port, 4);
    const connect = [0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 1, a];
    const started = Date.now();
    let i = 0;
    while (!client.closed && i < connect.length - 1) {
      client.writeRaw([connect[i++]!]);
      await delay(100);
    }
    await client.closedPromise;
    assert.ok(client.closed);
    assert.ok(i < connect.length - 1, 'the whole CONNECT got through');
    assert.ok(Date.now() - started < 5000);
  });

  test('an oversized CONNECT is refused from its header', async () => {
    const client = await RawClient.open(b.port, 4);
    client.writeRaw([0x10, 0xff, 0xff, 0xff, 0x7f]);
    assert.deepEqual(await client.expectClose(), []);
  });

  test('random garbage never takes the broker down', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 50; i++) {
      const client = await RawClient.open(b.port, 4);
      const bytes = Array.from({ length: 1 + (random() % 64) }, () => random() & 0xff);
      client.writeRaw(bytes);
      await Promise.race([client.closedPromise, delay(20)]);
      client.end();
    }
    const ok = await connected(b.port, { version: 5, clientId: 'after-garbage' });
    ok.send({ type: 'pingreq' });
    await ok.expect('pingresp');
    ok.end();
  });

  test('a flood of connects beyond the limit is refused and bounded', async () => {
    const flood = await startBroker({ limits: { maxConnections: 50, connectTimeoutMs: 1000 } });
    try {
      const sockets: Socket[] = [];
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const socket = netConnect({ host: '127.0.0.1', port: flood.port });
          socket.on('error', () => {});
          sockets.push(socket);
          await once(socket, 'connect');
          socket.write(
            encode({ type: 'connect', protocolVersion: 4, clientId: `flood-${i}`, clean: true, keepalive: 60 }, 4),
          );
          const [chunk] = (await Promise.race([once(socket, 'data'), delay(5000).then(() => [undefined])])) as [
            Buffer | undefined,
          ];
          return chunk === undefined ? 'none' : chunk[3] === 0 ? 'accepted' : 'refused';
        }),
      );
      const accepted = outcomes.filter((o) => o === 'accepted').length;
      const refused = outcomes.filter((o) => o === 'refused').length;
      assert.equal(accepted, 50);
      assert.equal(refused, 150);
      assert.ok(flood.broker.stats.connectionsRejected >= 150);
      for (const socket of sockets) socket.destroy();
      await delay(100);
      const ok = await connected(flood.port, { version: 4, clientId: 'after-flood' });
      ok.end();
    } finally {
      await flood.close();
    }
  });
});
