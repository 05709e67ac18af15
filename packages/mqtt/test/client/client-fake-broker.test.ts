import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { type ClientOptions, connect, MemoryStore, type Message, type MqttClient } from '../../src/client/index.js';
import type { MessageStore } from '../../src/client/store/store.js';
import type { TransportFactory } from '../../src/client/transport.js';
import { tcpTransport } from '../../src/client/transports/tcp.js';
import { encode } from '../../src/codec/encoder.js';
import type { MqttError } from '../../src/codec/errors.js';
import type { ConnackProperties, ProtocolVersion, PublishPacket, SubscribePacket } from '../../src/codec/packets.js';
import { FakeBroker, type FakeBrokerScript, withSilentServer } from './fake-broker.js';

const fast = { initialDelayMs: 10, maxDelayMs: 50 };
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

async function withBroker(
  fn: (broker: FakeBroker) => Promise<void>,
  script: ConstructorParameters<typeof Object>[0] = {},
): Promise<void> {
  const broker = await FakeBroker.start(script as never);
  try {
    await fn(broker);
  } finally {
    await broker.close();
  }
}

function options(broker: FakeBroker, extra: Partial<ClientOptions> = {}): ClientOptions {
  return { url: broker.url, reconnect: fast, connectTimeoutMs: 5000, ...extra };
}

/** A script whose CONNACK accepts, announcing these limits of the server. */
const acceptWith = (properties: ConnackProperties): FakeBrokerScript => ({
  connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: 0, properties }),
});

/** The PUBLISH packets the latest connection received as sent: topic aliases not resolved. */
const sentPublishes = (broker: FakeBroker): PublishPacket[] =>
  broker.latest!.received.filter((p): p is PublishPacket => p.type === 'publish');

const pub = (topic: string, qos: 0 | 1 | 2, packetId?: number, dup = false): PublishPacket => ({
  type: 'publish',
  topic,
  payload: new TextEncoder().encode(topic),
  qos,
  retain: false,
  dup,
  packetId,
});

for (const version of [4, 5] as ProtocolVersion[]) {
  describe(`MQTT ${version === 5 ? '5.0' : '3.1.1'} against the fake broker`, () => {
    test('publish at every QoS resolves on its ack', async () => {
      await withBroker(async (broker) => {
        const client = await connect(options(broker, { protocolVersion: version }));
        assert.equal(client.state, 'connected');
        for (const qos of [0, 1, 2] as const) {
          const result = await client.publish(`t/${qos}`, `m${qos}`, { qos });
          assert.equal(result.reasonCode, 0);
        }
        await broker.until(() => broker.publishes.length === 3);
        assert.deepEqual(
          broker.publishes.map((p) => [p.topic, p.qos, text(p.payload)]),
          [
            ['t/0', 0, 'm0'],
            ['t/1', 1, 'm1'],
            ['t/2', 2, 'm2'],
          ],
        );
        await client.end();
        assert.equal(client.state, 'closed');
      });
    });

    test('a subscription iterator ends once its filters are unsubscribed, after what it had buffered', async () => {
      await withBroker(async (broker) => {
        const client = await connect(options(broker, { protocolVersion: version }));
        try {
          const both = await client.subscribe(['a/#', 'b/#'], { qos: 1 });
          const other = await client.subscribe('c/#', { qos: 1 });
          const all = client.messages();
          const fromBoth = both.messages();
          const fromOther = other.messages();
          const conn = broker.latest!;
          const payload = new Uint8Array(0);
          conn.send({ type: 'publish', topic: 'a/1', payload, qos: 0, retain: false, dup: false });
          await broker.until(() => fromBoth.pending === 1);
          // One of its two filters undone: 'b/#' still brings messages, so the stream goes on.
          await client.unsubscribe('a/#');
          conn.send({ type: 'publish', topic: 'b/1', payload, qos: 0, retain: false, dup: false });
          await broker.until(() => fromBoth.pending === 2);
          await both.unsubscribe();
          const drained = (async () => {
            const got: string[] = [];
            for await (const m of fromBoth) got.push(m.topic); // ends instead of waiting for the client to close
            return got;
          })();
          let timer: ReturnType<typeof setTimeout> | undefined;
          const stuck = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('the stream did not end after UNSUBACK')), 2000);
          });
          assert.deepEqual(await Promise.race([drained, stuck]), ['a/1', 'b/1']);
          clearTimeout(timer);
          assert.equal(fromOther.pending, 0);
          conn.send({ type: 'publish', topic: 'c/1', payload, qos: 0, retain: false, dup: false });
          assert.equal((await fromOther.next()).value?.topic, 'c/1', "another subscription's stream goes on");
          assert.equal((await all.next()).value?.topic, 'a/1', 'client.messages() is no subscription of its own');
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test("a subscription's iterator passes on messages of its granted filters only; with none granted it ends", async () => {
      await withBroker(async (broker) => {
        broker.script = {
          suback: (packet) => packet.subscriptions.map((s) => (s.topicFilter.startsWith('no/') ? 0x80 : 1)),
        };
        const client = await connect(options(broker, { protocolVersion: version }));
        try {
          const mixed = await client.subscribe(['yes/#', 'no/#'], { qos: 1 });
          const refused = await client.subscribe('no/more', { qos: 1 });
          const other = await client.subscribe('no/+/x', { qos: 1 });
          assert.deepEqual(mixed.reasonCodes, [1, 0x80]);
          const fromMixed = mixed.messages();
          const fromRefused = refused.messages();
          const ended = await Promise.race([fromRefused.next().then((r) => r.done), delay(2000).then(() => 'waiting')]);
          assert.equal(ended, true, 'nothing was granted: the stream ends at once');
          const conn = broker.latest!;
          const payload = new Uint8Array(0);
          // 'no/a/x' comes for another reason (here: the server sent it anyway); 'no/#' was refused to `mixed`.
          conn.send({ type: 'publish', topic: 'no/a/x', payload, qos: 0, retain: false, dup: false });
          conn.send({ type: 'publish', topic: 'yes/1', payload, qos: 0, retain: false, dup: false });
          const first = await Promise.race([fromMixed.next().then((r) => r.value?.topic), delay(2000)]);
          assert.equal(first, 'yes/1', "only the granted filter's message");
          assert.equal(other.reasonCodes[0], 0x80);
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test('incoming messages: events, client iterator and per-subscription iterator; QoS 2 once', async () => {
      await withBroker(async (broker) => {
        const client = await connect(options(broker, { protocolVersion: version }));
        const sub = await client.subscribe(['a/#', 'b/+'], { qos: 2 });
        assert.deepEqual(sub.reasonCodes, [2, 2]);
        const all = client.messages();
        const onlyA = sub.messages();
        const seen: string[] = [];
        client.on('message', (m) => seen.push(m.topic));
        const conn = broker.latest!;
        conn.send(pub('a/1', 0));
        conn.send(pub('a/2', 1, 5));
        conn.send(pub('a/3', 2, 6));
        conn.send(pub('a/3', 2, 6, true)); // a repeat before PUBREL: PUBREC again, no second delivery
        conn.send({ type: 'pubrel', packetId: 6 });
        conn.send(pub('c/1', 0));
        await broker.until(() => conn.received.some((p) => p.type === 'pubcomp'));
        assert.deepEqual(seen, ['a/1', 'a/2', 'a/3', 'c/1']);
        assert.equal(conn.received.filter((p) => p.type === 'pubrec').length, 2);
        assert.ok(conn.received.some((p) => p.type === 'puback' && p.packetId === 5));
        const firstFour: string[] = [];
        for await (const m of all) {
          firstFour.push(m.topic);
          if (firstFour.length === 4) break;
        }
        assert.deepEqual(firstFour, ['a/1', 'a/2', 'a/3', 'c/1']);
        assert.equal((await onlyA.next()).value?.topic, 'a/1');
        assert.deepEqual(await sub.unsubscribe(), version === 5 ? [0, 0] : []);
        await client.end();
        assert.equal((await onlyA.next()).value?.topic, 'a/2', 'buffered messages remain readable');
      });
    });

    // Reading cannot pause while a PUBACK is awaited (it is behind the messages): before, an iterator nobody read
    // then buffered without bound.
    test('an iterator behind while a publish awaits its ack: QoS 1/2 acks wait until read, QoS 0 dropped at twice the mark', async () => {
      await withBroker(async (broker) => {
        broker.script = { onPublish: (p) => (p.topic === 'out' ? 'ignore' : 'ack') };
        const client = await connect(options(broker, { protocolVersion: version, highWaterMark: 4 }));
        try {
          const stream = client.messages();
          void client.publish('out', 'x', { qos: 1 }).catch(() => {});
          await broker.until(() => broker.publishes.length === 1);
          const conn = broker.latest!;
          for (let i = 0; i < 6; i++) conn.send(pub(`q0/${i}`, 0));
          conn.send(pub('q1/a', 1, 11));
          conn.send(pub('q2/b', 2, 12));
          conn.send(pub('q1/c', 1, 13));
          for (let i = 6; i < 10; i++) conn.send(pub(`q0/${i}`, 0));
          await until(() => client.droppedCount === 4, 'four QoS 0 messages dropped');
          assert.equal(stream.dropped, 4);
          assert.equal(client.bufferedCount, 9, 'six QoS 0, then the three held QoS 1/2');
          assert.equal(client.readingPaused, false, 'a PUBACK is awaited: reading goes on');
          const acks = () =>
            conn.received
              .filter((p) => p.type === 'puback' || p.type === 'pubrec')
              .map((p) => (p as { packetId: number }).packetId);
          await delay(50);
          assert.deepEqual(acks(), [], 'no ack before the consumer reads its message');
          const read: string[] = [];
          for (let i = 0; i < 7; i++) read.push((await stream.next()).value!.topic);
          await broker.until(() => acks().length === 1);
          assert.deepEqual(acks(), [11], 'the first QoS 1 message read: its PUBACK');
          read.push((await stream.next()).value!.topic);
          read.push((await stream.next()).value!.topic);
          await broker.until(() => acks().length === 3);
          assert.deepEqual(acks(), [11, 12, 13], 'in arrival order');
          assert.deepEqual(read, ['q0/0', 'q0/1', 'q0/2', 'q0/3', 'q0/4', 'q0/5', 'q1/a', 'q2/b', 'q1/c']);
          conn.send({ type: 'pubrel', packetId: 12 });
          await broker.until(() => conn.received.some((p) => p.type === 'pubcomp'));
          // Caught up: messages are acknowledged on arrival again.
          conn.send(pub('q1/d', 1, 14));
          await broker.until(() => acks().length === 4);
          assert.equal((await stream.next()).value!.topic, 'q1/d');
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test('a transport that cannot pause (a browser WebSocket): reading goes on, a consumer behind stays bounded', async () => {
      await withBroker(async (broker) => {
        // TCP without pause/resume, as a browser's WebSocket is.
        const transport: TransportFactory = async (target, handlers) => {
          const tcp = await tcpTransport(target, handlers);
          return { write: (chunk) => tcp.write(chunk), end: () => tcp.end(), destroy: () => tcp.destroy() };
        };
        const client = await connect(options(broker, { protocolVersion: version, highWaterMark: 4, transport }));
        try {
          const stream = client.messages();
          const conn = broker.latest!;
          for (let i = 0; i < 20; i++) conn.send(pub(`q0/${i}`, 0));
          for (let i = 1; i <= 3; i++) conn.send(pub(`q1/${i}`, 1, i));
          conn.send(pub('last', 0));
          await until(() => client.droppedCount === 13, 'QoS 0 dropped past twice the mark');
          assert.equal(client.readingPaused, false);
          assert.equal(stream.pending, 11, 'eight QoS 0 and the three QoS 1, held');
          assert.equal(client.unackedCount, 3);
          const got: string[] = [];
          for (let i = 0; i < 11; i++) got.push((await stream.next()).value!.topic);
          await broker.until(() => conn.received.filter((p) => p.type === 'puback').length === 3);
          assert.deepEqual(got.slice(8), ['q1/1', 'q1/2', 'q1/3']);
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test('an iterator that ends (its subscription undone) lets go of the acks it held; what it buffered stays readable', async () => {
      await withBroker(async (broker) => {
        broker.script = { onPublish: (p) => (p.topic === 'out' ? 'ignore' : 'ack') };
        const client = await connect(options(broker, { protocolVersion: version, highWaterMark: 1 }));
        try {
          const sub = await client.subscribe('a/#', { qos: 1 });
          const stream = sub.messages();
          void client.publish('out', 'x', { qos: 1 }).catch(() => {});
          await broker.until(() => broker.publishes.length === 1);
          const conn = broker.latest!;
          conn.send(pub('a/0', 0));
          conn.send(pub('a/1', 1, 5));
          await until(() => client.bufferedCount === 2, 'both buffered');
          assert.equal(client.unackedCount, 1, 'a/1 held');
          await sub.unsubscribe();
          await broker.until(() => conn.received.some((p) => p.type === 'puback' && p.packetId === 5));
          assert.equal(client.unackedCount, 0);
          conn.send(pub('b/1', 1, 6));
          await broker.until(() => conn.received.some((p) => p.type === 'puback' && p.packetId === 6));
          assert.deepEqual(
            [(await stream.next()).value?.topic, (await stream.next()).value?.topic, (await stream.next()).done],
            ['a/0', 'a/1', true],
          );
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test('an ack held across a lost session does not acknowledge the new message that reuses its packet id', async () => {
      await withBroker(async (broker) => {
        broker.script = {
          onPublish: (p) => (p.topic === 'out' ? 'ignore' : 'ack'),
          // The second connection finds no session: the server forgot the first message (id 5).
          connack: (_c, present) => ({
            type: 'connack',
            sessionPresent: broker.connections.length === 2 ? false : present,
            reasonCode: 0,
          }),
        };
        const client = await connect(
          options(broker, { protocolVersion: version, highWaterMark: 1, clean: false, clientId: `reuse-${version}` }),
        );
        try {
          const stream = client.messages();
          void client.publish('out', 'x', { qos: 1 }).catch(() => {});
          await broker.until(() => broker.publishes.length === 1);
          broker.latest!.send(pub('fill', 0));
          broker.latest!.send(pub('m1', 1, 5));
          await until(() => client.bufferedCount === 2, 'm1 held');
          broker.latest!.drop();
          await broker.until(() => broker.connections.length === 2 && broker.publishes.length === 2);
          broker.latest!.send(pub('m2', 1, 5));
          await until(() => client.bufferedCount === 3, 'm2 held');
          broker.latest!.drop();
          await broker.until(() => broker.connections.length === 3 && broker.publishes.length === 3);
          const third = broker.latest!;
          third.send({ ...pub('m2', 1, 5), dup: true });
          await delay(50);
          assert.equal(client.bufferedCount, 3, 'the resend of m2 is not delivered again');
          const acks = () => third.received.filter((p) => p.type === 'puback').length;
          assert.equal((await stream.next()).value!.topic, 'fill');
          assert.equal((await stream.next()).value!.topic, 'm1');
          await delay(50);
          assert.equal(acks(), 0, "m1's token does not acknowledge m2");
          assert.equal((await stream.next()).value!.topic, 'm2');
          await broker.until(() => acks() === 1);
        } finally {
          await client.end({ force: true });
        }
      });
    });

    test('a held QoS 2 message is recorded at once: after a restart its resend is not delivered again', async () => {
      // Exactly once to the application: a 'message' listener took it on arrival, whatever an iterator still held
      // when the process stopped.
      await withBroker(async (broker) => {
        broker.script = { onPublish: (p) => (p.topic === 'out' ? 'ignore' : 'ack') };
        const store = new MemoryStore();
        const opts = {
          protocolVersion: version,
          highWaterMark: 1,
          clean: false,
          clientId: `restart-${version}`,
          store,
        };
        const first = await connect(options(broker, opts));
        const seen: string[] = [];
        first.on('message', (m) => seen.push(m.topic));
        const stream = first.messages();
        void first.publish('out', 'x', { qos: 1 }).catch(() => {});
        await broker.until(() => broker.publishes.length === 1);
        broker.latest!.send(pub('fill', 0));
        broker.latest!.send(pub('q2', 2, 7));
        await until(() => first.bufferedCount === 2, 'q2 held');
        assert.ok(!broker.latest!.received.some((p) => p.type === 'pubrec'), 'its PUBREC waits for the iterator');
        await first.end({ force: true }); // the process stops before its iterator read q2
        assert.equal(stream.pending, 2);
        const second = await connect(options(broker, opts));
        try {
          second.on('message', (m) => seen.push(m.topic));
          await broker.until(() => broker.connections.length === 2);
          broker.latest!.send({ ...pub('q2', 2, 7), dup: true });
          await broker.until(() => broker.latest!.received.some((p) => p.type === 'pubrec'));
          await delay(50);
          assert.deepEqual(seen, ['fill', 'q2'], 'q2 once');
        } finally {
          await second.end({ force: true });
        }
      });
    });

    test('messages held for a consumer across reconnects: a resend is not delivered again, and is acknowledged once read', async () => {
      await withBroker(async (broker) => {
        broker.script = { onPublish: (p) => (p.topic === 'out' ? 'ignore' : 'ack') };
        const client = await connect(
          options(broker, { protocolVersion: version, highWaterMark: 1, clean: false, clientId: `held-${version}` }),
        );
        try {
          const seen: string[] = [];
          client.on('message', (m) => seen.push(m.topic));
          const stream = client.messages();
          void client.publish('out', 'x', { qos: 1 }).catch(() => {});
          await broker.until(() => broker.publishes.length === 1);
          const acks = (conn: NonNullable<FakeBroker['latest']>) =>
            conn.received
              .filter((p) => p.type === 'puback' || p.type === 'pubrec')
              .map((p) => `${p.type} ${p.packetId}`);
          const first = broker.latest!;
          first.send(pub('fill', 0));
          first.send(pub('q1', 1, 6));
          first.send(pub('q2', 2, 7));
          await until(() => client.bufferedCount === 3, 'all three buffered');
          await delay(50);
          assert.deepEqual(acks(first), [], 'the acks wait for the consumer');
          first.drop();
          await broker.until(() => broker.connections.length === 2 && broker.publishes.length === 2);
          const second = broker.latest!;
          second.send({ ...pub('q1', 1, 6), dup: true });
          second.send({ ...pub('q2', 2, 7), dup: true });
          await delay(100);
          assert.equal(client.bufferedCount, 3, 'the resends are not buffered again');
          assert.deepEqual(acks(second), [], 'and their acks still wait for the copies the consumer holds');
          assert.equal((await stream.next()).value!.topic, 'fill');
          assert.equal((await stream.next()).value!.topic, 'q1');
          await broker.until(() => acks(second).length === 1);
          assert.equal((await stream.next()).value!.topic, 'q2');
          await broker.until(() => acks(second).length === 2);
          assert.deepEqual(acks(second), ['puback 6', 'pubrec 7'], 'acknowledged once read, on the new connection');
          second.send({ type: 'pubrel', packetId: 7 });
          await broker.until(() => second.received.some((p) => p.type === 'pubcomp'));
          assert.deepEqual(seen, ['fill', 'q1', 'q2'], 'each delivered once');

          // Read after the line was lost and before the resend came: the resend is acknowledged at once, not delivered.
          second.send(pub('fill2', 0));
          second.send(pub('q1b', 1, 8));
          await until(() => client.bufferedCount === 2, 'both buffered');
          second.drop();
          await broker.until(() => broker.connections.length === 3 && client.state === 'connected');
          assert.equal((await stream.next()).value!.topic, 'fill2');
          assert.equal((await stream.next()).value!.topic, 'q1b');
          const third = broker.latest!;
          await delay(50);
          assert.deepEqual(acks(third), [], 'its ack belonged to the lost connection');
          third.send({ ...pub('q1b', 1, 8), dup: true });
          await broker.until(() => acks(third).length === 1);
          assert.deepEqual(acks(third), ['puback 8']);
          // A new message with an id that was held before, once the resends are over, is new.
          third.send(pub('new', 1, 9));
          await broker.until(() => acks(third).length === 2);
          assert.equal((await stream.next()).value!.topic, 'new');
          assert.deepEqual(seen, ['fill', 'q1', 'q2', 'fill2', 'q1b', 'new']);
        } finally {
          await client.end({ force: true });
        }
      });
    });
  });
}

describe('MQTT 3.1.1: what only 5.0 can say', () => {
  test('end() with a reason code closes without DISCONNECT (the server publishes the will); properties are refused', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { protocolVersion: 4, reconnect: false }));
      await assert.rejects(client.end({ properties: { sessionExpiryInterval: 0 } }), {
        code: 'MQTT_ERR_INVALID_OPTION',
      });
      assert.equal(client.state, 'connected');
      const line = broker.latest!;
      const closed = once(line.socket, 'close');
      await client.end({ reasonCode: 0x04 });
      await closed;
      assert.deepEqual(
        line.received.map((p) => p.type),
        ['connect'],
        'no DISCONNECT: to a 3.1.1 server that is what publishes the will',
      );
      const plain = await connect(options(broker, { protocolVersion: 4, reconnect: false }));
      const second = broker.latest!;
      await plain.end();
      await broker.until(() => second.received.some((p) => p.type === 'disconnect'));
    });
  });

  test('No Local, Retain As Published and Retain Handling are refused rather than dropped', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { protocolVersion: 4 }));
      for (const [filters, opts] of [
        ['a', { noLocal: true }],
        ['a', { retainAsPublished: true }],
        ['a', { retainHandling: 2 }],
        [[{ topicFilter: 'a', qos: 0, noLocal: true }], {}],
      ] as const) {
        await assert.rejects(client.subscribe(filters as never, opts as never), (err: MqttError) => {
          assert.equal(err.code, 'MQTT_ERR_INVALID_OPTION');
          assert.match(err.message, /MQTT 5\.0 subscription option/);
          return true;
        });
      }
      assert.ok(!broker.latest!.received.some((p) => p.type === 'subscribe'), 'nothing was sent');
      await client.subscribe('a', { qos: 1, noLocal: false, retainHandling: 0 });
      await client.end();
    });
  });
});

describe('dependability against the fake broker', () => {
  test('reconnect after the line drops: QoS 1 resent with DUP and same id, nothing lost', async () => {
    let dropped = false;
    await withBroker(async (broker) => {
      broker.script = {
        onPublish: (p) => {
          if (!dropped && text(p.payload) === 'm5') {
            dropped = true;
            return 'drop';
          }
          return dropped ? 'ack' : 'ignore';
        },
      };
      const client = await connect(options(broker, { clean: false, clientId: 'dup-test' }));
      const states: string[] = [];
      client.on('state', (s) => states.push(s));
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.publish('t', `m${i}`, { qos: 1 })));
      assert.equal(results.length, 10);
      const resent = broker.publishes.filter((p) => p.dup);
      assert.ok(resent.length >= 6, `resent ${resent.length}`);
      const firstIds = new Map(broker.publishes.filter((p) => !p.dup).map((p) => [text(p.payload), p.packetId]));
      for (const p of resent) {
        // Messages after m5 were on the wire when the line dropped; the broker never read them.
        const first = firstIds.get(text(p.payload));
        if (first !== undefined) assert.equal(p.packetId, first, 'a resend keeps its id');
      }
      const got = new Set(broker.delivered.map((p) => text(p.payload)));
      assert.equal(got.size, 10);
      assert.deepEqual(states.slice(0, 3), ['offline', 'reconnecting', 'connecting']);
      assert.ok(states.includes('connected'));
      await client.end();
    });
  });

  test('a line the server resets: offline with MQTT_ERR_CONNECTION_CLOSED naming the server, ECONNRESET as cause', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
      broker.latest?.socket.resetAndDestroy();
      const reason = (await offline) as MqttError;
      assert.equal(reason.code, 'MQTT_ERR_CONNECTION_CLOSED');
      assert.equal(
        reason.message,
        `the connection to ${broker.url} was lost: the server reset the connection (ECONNRESET)`,
      );
      assert.equal((reason.cause as { code?: unknown }).code, 'ECONNRESET');
      await client.end({ force: true });
    });
  });

  test('acks read together with a malformed packet: the acks settle their publishes, then the line closes', {
    timeout: 10_000,
  }, async () => {
    await withBroker(async (broker) => {
      broker.script = { onPublish: () => 'ignore' };
      const client = await connect(options(broker, { reconnect: false, protocolVersion: 5 }));
      const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
      const published = [client.publish('t', 'a', { qos: 1 }), client.publish('t', 'b', { qos: 1 })];
      const third = client.publish('t', 'c', { qos: 1 });
      third.catch(() => {});
      await broker.until(() => broker.publishes.length === 3);
      const [a, b] = broker.publishes.map((p) => p.packetId!);
      // Two PUBACKs and, in the same write, a PUBACK whose remaining length is 1 (it needs at least 2).
      broker.latest?.socket.write(
        Buffer.concat([
          encode({ type: 'puback', packetId: a! }, 5),
          encode({ type: 'puback', packetId: b! }, 5),
          Buffer.from([0x40, 0x01, 0x00]),
        ]),
      );
      assert.deepEqual(
        (await Promise.all(published)).map((r) => r.reasonCode),
        [0, 0],
      );
      assert.equal(((await offline) as MqttError).code, 'MQTT_ERR_LENGTH_MISMATCH');
      await client.end({ force: true });
    });
  });

  test('QoS 2 exactly once across a drop between PUBREC and PUBCOMP', async () => {
    let drops = 0;
    await withBroker(async (broker) => {
      broker.script = { onPubrel: () => (drops++ < 3 ? 'drop' : 'ack') };
      const client = await connect(options(broker, { clean: false, clientId: 'qos2-test' }));
      const results = await Promise.all([1, 2, 3, 4].map((i) => client.publish('q2', `m${i}`, { qos: 2 })));
      assert.equal(results.length, 4);
      assert.ok(drops >= 3);
      assert.deepEqual(broker.delivered.map((p) => text(p.payload)).sort(), ['m1', 'm2', 'm3', 'm4']);
      await client.end();
    });
  });

  test('PUBCOMP 0x92 after our resent PUBREL (the server lost the session): the publish completes with 0x92', async () => {
    await withBroker(async (broker) => {
      let pubrels = 0;
      broker.script = {
        onPubrel: (packetId, conn) => {
          pubrels++;
          if (pubrels === 1) return 'drop'; // PUBREC arrived; the line goes before PUBCOMP
          // A server that claims the session but lost the packet id (e.g. restarted from an older snapshot).
          conn.send({ type: 'pubcomp', packetId, reasonCode: 0x92 });
          return 'ignore';
        },
      };
      const client = await connect(options(broker, { clean: false, clientId: 'pubcomp-92' }));
      const result = await client.publish('lost/session', 'm', { qos: 2 });
      assert.equal(result.reasonCode, 0x92, 'resolved, with the reason code visible');
      assert.equal(pubrels, 2, 'PUBREL resent after the reconnect');
      assert.equal(broker.connections.length, 2);
      assert.deepEqual(client.pendingCount, { inflight: 0, queued: 0 });
      // The session goes on: the freed packet id and the window work for the next message.
      assert.equal((await client.publish('lost/next', 'n', { qos: 1 })).reasonCode, 0);
      await client.end();
    });
  });

  test('manualAck: PUBACK/PUBREC go out on ack(), in arrival order, once each, held ones in one write', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { manualAck: true }));
      const got: Message[] = [];
      client.on('message', (m) => got.push(m));
      const conn = broker.latest!;
      const publish = (packetId: number | undefined, qos: 0 | 1 | 2) =>
        conn.send({
          type: 'publish',
          topic: `m/${packetId ?? 0}`,
          payload: new Uint8Array([1]),
          qos,
          retain: false,
          dup: false,
          ...(packetId === undefined ? {} : { packetId }),
        });
      publish(1, 1);
      publish(2, 1);
      publish(3, 2);
      publish(undefined, 0);
      await until(() => got.length === 4, 'four deliveries');
      await delay(50);
      const acks = () => conn.received.filter((p) => p.type === 'puback' || p.type === 'pubrec');
      assert.deepEqual(acks(), [], 'nothing acknowledged before ack()');
      assert.equal(client.unackedCount, 3);
      const [m1, m2, m3, m0] = got as [Message, Message, Message, Message];
      m0.ack(); // QoS 0: nothing to send
      m3.ack();
      m2.ack();
      await delay(50);
      assert.deepEqual(acks(), [], 'held: message 1 came first and is not acknowledged');
      assert.deepEqual([client.unackedCount, client.heldAckCount], [1, 2]);
      const chunksBefore = conn.chunks;
      m1.ack();
      m1.ack();
      m3.ack();
      await broker.until(() => acks().length >= 3, 5000, 'three acks');
      await delay(50);
      assert.deepEqual(
        acks().map((p) => `${p.type}:${p.type === 'puback' || p.type === 'pubrec' ? p.packetId : ''}`),
        ['puback:1', 'puback:2', 'pubrec:3'],
        'in arrival order, each once',
      );
      assert.equal(conn.chunks - chunksBefore, 1, 'the released acks in one write');
      assert.equal(client.unackedCount, 0);
      assert.deepEqual(
        Object.keys(m1),
        ['topic', 'payload', 'qos', 'retain', 'dup', 'packetId'],
        'ack is not enumerable',
      );
      await client.end();
    });
  });

  test('the in-flight window follows Receive Maximum, on first send and on replay after reconnect', async () => {
    let ack = false;
    await withBroker(async (broker) => {
      broker.script = {
        connack: (_c, present) => ({
          type: 'connack',
          sessionPresent: present,
          reasonCode: 0,
          properties: { receiveMaximum: 4 },
        }),
        onPublish: () => (ack ? 'ack' : 'ignore'),
      };
      const client = await connect(options(broker, { clean: false, clientId: 'window' }));
      const all = Promise.all(Array.from({ length: 20 }, (_, i) => client.publish('w', `m${i}`, { qos: 1 })));
      await broker.until(() => broker.publishes.length === 4);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(broker.publishes.length, 4, 'no more than Receive Maximum unacknowledged');
      assert.deepEqual(client.pendingCount, { inflight: 4, queued: 16 });
      ack = true;
      broker.dropAll();
      const replayConn = () => broker.connections[1];
      await broker.until(() => replayConn() !== undefined && replayConn()!.received.length > 1);
      // The replay starts with a whole window at once: 4 DUP publishes back to back.
      const replay = replayConn()!.received.filter((p) => p.type === 'publish') as PublishPacket[];
      assert.ok(replay.length >= 4);
      assert.deepEqual(
        replay.slice(0, 4).map((p) => p.dup),
        [true, true, true, true],
      );
      await all;
      assert.equal(new Set(broker.delivered.map((p) => text(p.payload))).size, 20);
      await client.end();
    });
  });

  test('a full window against a Nagle server (next acks held until we write): a refill held for a batch goes out within a moment, then batching stops', async () => {
    await withBroker(async (broker) => {
      broker.script = {
        connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 20 } }),
        onPublish: () => 'ignore',
      };
      const client = await connect(options(broker, { reconnect: false }));
      const all = Promise.all(Array.from({ length: 40 }, (_, i) => client.publish('w', `m${i}`, { qos: 1 })));
      await broker.until(() => broker.publishes.length === 20, 5000, 'a full window');
      // As Mosquitto with Nagle on: one PUBACK goes out, the rest wait until the client sends something back.
      const first = broker.publishes[0]!;
      broker.latest!.send({ type: 'puback', packetId: first.packetId!, reasonCode: 0 });
      await broker.until(() => broker.publishes.length === 21, 2000, 'the freed slot refilled');
      assert.equal(client.pendingCount.inflight, 20, 'still no more than Receive Maximum unacknowledged');
      for (let sent = 1; sent < 40; sent++) {
        await broker.until(() => broker.publishes.length >= Math.min(40, sent + 20), 2000, `publish ${sent + 20}`);
        broker.latest!.send({ type: 'puback', packetId: broker.publishes[sent]!.packetId!, reasonCode: 0 });
      }
      await all;
      assert.deepEqual(
        broker.publishes.map((p) => text(p.payload)),
        Array.from({ length: 40 }, (_, i) => `m${i}`),
        'in order',
      );
      await client.end();
    });
  });

  test('resubscribes when the server did not keep the session', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: true }));
      await client.subscribe('x/#', { qos: 1 });
      broker.dropAll();
      await broker.until(() => broker.connections.length === 2 && broker.latest!.received.length >= 2);
      const resub = broker.latest!.received.find((p) => p.type === 'subscribe');
      assert.ok(resub && resub.type === 'subscribe');
      assert.deepEqual(
        resub.subscriptions.map((s) => [s.topicFilter, s.qos]),
        [['x/#', 1]],
      );
      await client.end();
    });
  });

  test('a subscription the server refuses when subscribed again after a lost session is reported, not lost silently', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: true }));
      await client.subscribe(['ota/cmd/#', 'ota/info'], { qos: 1 });
      const errors: Array<[string | undefined, number | undefined]> = [];
      client.on('error', (e) => errors.push([(e as MqttError).code, (e as MqttError).reasonCode]));
      // The ACL changed meanwhile: the commands topic is no longer granted.
      broker.script = { suback: (p) => p.subscriptions.map((s) => (s.topicFilter === 'ota/cmd/#' ? 0x87 : s.qos)) };
      broker.dropAll();
      await broker.until(() => errors.length > 0, 5000, 'the error');
      assert.deepEqual(errors, [['MQTT_ERR_SUBSCRIBE_FAILED', 0x87]]);
      // Only what was granted is subscribed again next time.
      broker.dropAll();
      await broker.until(
        () => broker.connections.length === 3 && broker.latest!.received.some((p) => p.type === 'subscribe'),
      );
      const again = broker.latest!.received.find((p) => p.type === 'subscribe');
      assert.ok(again?.type === 'subscribe');
      assert.deepEqual(
        again.subscriptions.map((s) => s.topicFilter),
        ['ota/info'],
      );
      await client.end();
    });
  });

  test('numeric options that would hang or spin are refused up front with MQTT_ERR_INVALID_OPTION', async () => {
    const bad: Array<[Partial<ClientOptions>, RegExp]> = [
      [{ maxInflight: 0 }, /maxInflight must be an integer in 1\.\.65535, got 0/],
      [{ maxInflight: -1 }, /maxInflight/],
      [{ maxInflight: 1.5 }, /maxInflight/],
      [{ poisonStrikes: -1 }, /poisonStrikes/],
      [{ queue: { limit: Number.NaN } }, /queue\.limit/],
      [{ connectTimeoutMs: 0 }, /connectTimeoutMs/],
      [{ pingTimeoutMs: -5 }, /pingTimeoutMs/],
      [{ reconnect: { initialDelayMs: Number.NaN } }, /reconnect\.initialDelayMs/],
      [{ reconnect: { multiplier: 0.5 } }, /reconnect\.multiplier/],
      [{ reconnect: { jitter: 'half' as 'full' } }, /reconnect\.jitter/],
      [{ reconnect: { onPermanentRefusal: 'never' as 'end' } }, /reconnect\.onPermanentRefusal/],
    ];
    for (const [extra, message] of bad) {
      await assert.rejects(connect({ url: 'mqtt://127.0.0.1:1', ...extra }), (err: MqttError) => {
        assert.equal(err.code, 'MQTT_ERR_INVALID_OPTION', JSON.stringify(extra));
        assert.match(err.message, message);
        return true;
      });
    }
    // Undefined is "not given": the defaults apply.
    await withBroker(async (broker) => {
      const client = await connect(
        options(broker, { maxInflight: undefined, reconnect: { initialDelayMs: undefined, maxDelayMs: undefined } }),
      );
      assert.equal(client.state, 'connected');
      await client.end();
    });
  });

  test('end() asking to keep a session CONNECT said ends with the connection is refused, and closes nothing', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: true }));
      await assert.rejects(client.end({ properties: { sessionExpiryInterval: 60 } }), {
        code: 'MQTT_ERR_INVALID_OPTION',
      });
      assert.equal(client.state, 'connected');
      assert.ok(!broker.latest!.received.some((p) => p.type === 'disconnect'));
      await client.end({ properties: { sessionExpiryInterval: 0 } });
      assert.equal(client.state, 'closed');
    });
  });

  test('end() with a DISCONNECT that cannot be encoded is refused up front, and closes nothing', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: false, properties: { sessionExpiryInterval: 60 } }));
      await assert.rejects(client.end({ properties: { sessionExpiryInterval: 2 ** 40 } }), {
        code: 'MQTT_ERR_INVALID_OPTION',
      });
      await assert.rejects(client.end({ properties: { reasonString: 5 as unknown as string } }), {
        code: 'MQTT_ERR_INVALID_OPTION',
      });
      assert.equal(client.state, 'connected');
      await client.end({ reasonCode: 0 });
      assert.equal(client.state, 'closed');
      assert.ok(broker.latest!.received.some((p) => p.type === 'disconnect'));
    });
  });

  test('uses topic aliases for a repeated topic when the server allows them', async () => {
    await withBroker(async (broker) => {
      broker.script = acceptWith({ topicAliasMaximum: 4 });
      const client = await connect(options(broker));
      for (let i = 0; i < 3; i++) await client.publish('vehicles/v1/telemetry', `m${i}`, { qos: 1 });
      const raw = sentPublishes(broker);
      assert.deepEqual(
        raw.map((p) => [p.topic, p.properties?.topicAlias]),
        [
          ['vehicles/v1/telemetry', 1],
          ['', 1],
          ['', 1],
        ],
      );
      assert.deepEqual(
        broker.publishes.map((p) => p.topic),
        Array(3).fill('vehicles/v1/telemetry'),
      );
      await client.end();
    });
  });

  test('a topic alias of ours is left out where it would push a PUBLISH over the Maximum Packet Size', async () => {
    await withBroker(async (broker) => {
      broker.script = acceptWith({ topicAliasMaximum: 10, maximumPacketSize: 100 });
      const client = await connect(options(broker));
      // 100 bytes with the topic in full: 1 + 1 (lengths) + 2 + 3 (topic) + 2 (id) + 1 (no properties) + 90.
      await client.publish('t/x', new Uint8Array(90), { qos: 1 });
      await client.publish('t/x', 'small', { qos: 1 });
      await client.publish('t/x', 'small again', { qos: 1 });
      const raw = sentPublishes(broker);
      assert.deepEqual(
        raw.map((p) => [p.topic, p.properties?.topicAlias, encode(p, 5).length <= 100]),
        [
          ['t/x', undefined, true],
          ['t/x', 1, true],
          ['', 1, true],
        ],
      );
      assert.equal(encode(raw[0]!, 5).length, 100);
      await client.end();
    });
  });

  test("a received message's subscription identifiers are left out when its properties are published again", async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker));
      await client.publish('fwd', 'x', {
        qos: 1,
        properties: { subscriptionIdentifiers: [7], contentType: 'text/plain' },
      });
      await client.publish('fwd', 'y', { qos: 1, properties: { subscriptionIdentifiers: [7] } });
      const raw = sentPublishes(broker);
      assert.deepEqual(
        raw.map((p) => p.properties),
        [{ contentType: 'text/plain' }, undefined],
      );
      await client.end();
    });
  });

  test('arguments of the wrong type are refused with an MqttError and its code, not a TypeError', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker));
      const any = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const refused = async (call: Promise<unknown>, code: string, message: RegExp) =>
        assert.rejects(call, (err: MqttError) => {
          assert.equal(err.code, code);
          assert.match(err.message, message);
          return true;
        });
      await refused(any.publish!.call(client, undefined, 'x'), 'MQTT_ERR_INVALID_TOPIC_NAME', /got undefined/);
      await refused(any.publish!.call(client, 't', 5), 'MQTT_ERR_INVALID_OPTION', /payload must be .*got number 5/);
      await refused(any.publish!.call(client, 't', { a: 1 }), 'MQTT_ERR_INVALID_OPTION', /got object/);
      await refused(any.subscribe!.call(client, 5), 'MQTT_ERR_INVALID_TOPIC_FILTER', /must be a string/);
      await refused(any.unsubscribe!.call(client, [5]), 'MQTT_ERR_INVALID_TOPIC_FILTER', /got number 5/);
      assert.equal(client.state, 'connected');
      await client.publish('t', 'fine');
      await client.end();
    });
  });

  test('Maximum Packet Size: a too large publish is rejected locally', async () => {
    await withBroker(async (broker) => {
      broker.script = acceptWith({ maximumPacketSize: 100 });
      const client = await connect(options(broker));
      await assert.rejects(client.publish('t', new Uint8Array(200), { qos: 1 }), { code: 'MQTT_ERR_PACKET_TOO_LARGE' });
      await client.publish('t', new Uint8Array(10), { qos: 1 });
      assert.equal(broker.publishes.length, 1);
      await client.end();
    });
  });

  test('a PUBACK failure code rejects with MQTT_ERR_PUBLISH_FAILED and the reason code', async () => {
    await withBroker(async (broker) => {
      broker.script = {
        onPublish: (p, conn) => {
          conn.send({ type: 'puback', packetId: p.packetId!, reasonCode: 0x87 });
          return 'ignore';
        },
      };
      const client = await connect(options(broker));
      await assert.rejects(client.publish('t', 'x', { qos: 1 }), { code: 'MQTT_ERR_PUBLISH_FAILED', reasonCode: 0x87 });
      await client.end();
    });
  });

  test("a refusal's reason string and user properties reach the caller, in the error's message and on the error", async () => {
    await withBroker(async (broker) => {
      const said = { reasonString: 'ACL: vehicles publish under ota/<vin>/ only', userProperties: [['rule', '7']] };
      broker.script = {
        onPublish: (p, conn) => {
          const ack = p.qos === 1 ? 'puback' : 'pubrec';
          conn.send({ type: ack, packetId: p.packetId!, reasonCode: 0x87, properties: said } as never);
          return 'ignore';
        },
      };
      const client = await connect(options(broker));
      try {
        for (const qos of [1, 2] as const) {
          await assert.rejects(client.publish('t', 'x', { qos }), (err: MqttError) => {
            assert.equal(err.code, 'MQTT_ERR_PUBLISH_FAILED');
            assert.equal(err.reasonCode, 0x87);
            assert.match(err.message, /: 0x87 Not authorized: ACL: vehicles publish under ota\/<vin>\/ only$/);
            assert.deepEqual(err.properties, said);
            return true;
          });
        }
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('a response topic with a wildcard is refused at publish, before it is stored or sent', async () => {
    await withBroker(async (broker) => {
      const store = new MemoryStore();
      const client = await connect(options(broker, { store }));
      try {
        // Sent, the server closes the line (0x82) and the stored message did it again at every reconnect.
        await assert.rejects(client.publish('t', 'x', { qos: 1, properties: { responseTopic: 'replies/#' } }), {
          code: 'MQTT_ERR_INVALID_TOPIC_NAME',
        });
        assert.equal(store.size, 0, 'nothing stored');
        await client.publish('t', 'y', { qos: 1, properties: { responseTopic: 'replies/v1' } });
        assert.deepEqual(
          broker.publishes.map((p) => p.properties?.responseTopic),
          ['replies/v1'],
        );
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test("QoS 2: a PUBREC's 0x10 and reason string are reported beside the PUBCOMP's outcome", async () => {
    await withBroker(async (broker) => {
      let plain = false;
      broker.script = {
        onPublish: (p, conn) => {
          if (p.qos !== 2) return 'ack';
          if (plain) conn.send({ type: 'pubrec', packetId: p.packetId! });
          else
            conn.send({
              type: 'pubrec',
              packetId: p.packetId!,
              reasonCode: 0x10,
              properties: { reasonString: 'nobody' },
            });
          return 'ignore';
        },
      };
      const client = await connect(options(broker));
      const result = await client.publish('t', 'x', { qos: 2 });
      assert.equal(result.reasonCode, 0);
      assert.deepEqual(result.pubrec, { reasonCode: 0x10, properties: { reasonString: 'nobody' } });
      plain = true;
      assert.equal((await client.publish('t', 'y', { qos: 2 })).pubrec, undefined, 'a bare PUBREC adds nothing');
      await client.end();
    });
  });

  test("unsubscribe: the UNSUBACK's properties come with its reason codes", async () => {
    await withBroker(async (broker) => {
      broker.script = { unsubackProperties: () => ({ reasonString: 'bye', userProperties: [['k', 'v']] }) };
      const client = await connect(options(broker));
      await client.subscribe('a/b');
      const codes = await client.unsubscribe('a/b');
      assert.deepEqual(codes, [0], 'still the array of codes');
      assert.deepEqual(codes.properties, { reasonString: 'bye', userProperties: [['k', 'v']] });
      broker.script = {};
      await client.subscribe('a/c');
      assert.equal((await client.unsubscribe('a/c')).properties, undefined);
      await client.end();
    });
  });

  test('offline queue: limit with drop-oldest, flushed on reconnect', async () => {
    await withBroker(async (broker) => {
      const client = await connect(
        options(broker, {
          queue: { limit: 3, dropPolicy: 'oldest' },
          reconnect: { initialDelayMs: 300, maxDelayMs: 300, jitter: 'none' },
        }),
      );
      broker.dropAll();
      await new Promise<void>((resolve) => client.once('offline', () => resolve()));
      const outcomes = Array.from({ length: 5 }, (_, i) =>
        client.publish('q', `m${i}`, { qos: 1 }).then(
          () => 'ok',
          (e: { code: string }) => e.code,
        ),
      );
      assert.deepEqual(await Promise.all(outcomes), ['MQTT_ERR_QUEUE_FULL', 'MQTT_ERR_QUEUE_FULL', 'ok', 'ok', 'ok']);
      assert.deepEqual(
        broker.delivered.map((p) => text(p.payload)),
        ['m2', 'm3', 'm4'],
      );
      await client.end();
    });
  });

  test('end() flushes in-flight messages before DISCONNECT', async () => {
    let ack = false;
    await withBroker(async (broker) => {
      broker.script = { onPublish: () => (ack ? 'ack' : 'ignore') };
      const client = await connect(options(broker, { clean: false, clientId: 'flush' }));
      const p = client.publish('t', 'x', { qos: 1 });
      await broker.until(() => broker.publishes.length === 1);
      const ended = client.end();
      ack = true;
      broker.latest!.send({ type: 'puback', packetId: broker.publishes[0]!.packetId! });
      await ended;
      assert.equal((await p).reasonCode, 0);
      assert.equal(broker.latest!.received.at(-1)?.type, 'disconnect');
    });
  });

  test('a QoS 1 message goes out before its store write settles; a QoS 2 message waits for its record; a failed write is reported once', async () => {
    await withBroker(async (broker) => {
      let release!: (err?: Error) => void;
      const gate = new Promise<void>((resolve, reject) => {
        release = (err) => (err === undefined ? resolve() : reject(err));
      });
      gate.catch(() => {});
      const writes: string[] = [];
      const store: MessageStore = {
        put: (key, record, relaxed) => {
          writes.push(
            `put ${key} ${record.kind === 'outgoing' ? record.state : ''}${relaxed === true ? ' relaxed' : ''}`,
          );
          return gate;
        },
        get: () => undefined,
        delete: (key, relaxed) => {
          writes.push(`delete ${key}${relaxed === true ? ' relaxed' : ''}`);
          return gate;
        },
        list: () => [],
      };
      const client = await connect(options(broker, { clean: false, clientId: 'gated', store }));
      const errors: Error[] = [];
      client.on('error', (err) => errors.push(err));
      const first = client.publish('t/1', 'a', { qos: 1 });
      await broker.until(() => broker.publishes.length === 1, 5000, 'the QoS 1 message, its record not yet stored');
      assert.equal((await first).reasonCode, 0);
      const second = client.publish('t/2', 'b', { qos: 2 });
      await delay(200);
      assert.equal(broker.publishes.length, 1, 'the QoS 2 message waits until its record is stored');
      release(new Error('disk failed'));
      await broker.until(() => broker.publishes.length === 2, 5000, 'the QoS 2 message once the write settled');
      assert.equal((await second).reasonCode, 0);
      assert.deepEqual(writes, [
        'put out:1 queued',
        'put out:1 publish relaxed',
        'delete out:1 relaxed',
        'put out:2 queued',
        'put out:2 publish',
        'put out:2 pubrel',
        'delete out:2 relaxed',
      ]);
      await delay(20);
      assert.deepEqual(
        errors.map((e) => e.message),
        ['disk failed'],
      );
      await client.end();
    });
  });

  test('end() closes the store only once its relaxed writes settled', async () => {
    await withBroker(async (broker) => {
      broker.script = { onPublish: () => 'ignore' };
      const log: string[] = [];
      const slow = (what: string) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            log.push(what);
            resolve();
          }, 100),
        );
      const store: MessageStore = {
        put: (key) => slow(`put ${key}`),
        get: () => undefined,
        delete: (key) => slow(`delete ${key}`),
        list: () => [],
        close: () => {
          log.push('close');
        },
      };
      const client = await connect(options(broker, { clean: false, clientId: 'slow-store', store }));
      const p = client.publish('t', 'kept', { qos: 1 });
      await broker.until(() => broker.publishes.length === 1, 5000, 'the message, before its record is written');
      const rejected = assert.rejects(p, { code: 'MQTT_ERR_CLIENT_CLOSED' });
      await client.end({ force: true });
      await rejected;
      assert.equal(log.at(-1), 'close', `the store closed last: ${log.join(', ')}`);
      assert.ok(log.includes('put out:1'), 'the queued record was written before the store closed');
    });
  });

  test('end({ force }) leaves unacknowledged messages in the store for the next run', async () => {
    await withBroker(async (broker) => {
      broker.script = { onPublish: () => 'ignore' };
      const store = new MemoryStore();
      const client = await connect(options(broker, { clean: false, clientId: 'force', store }));
      const p = client.publish('t', 'kept', { qos: 1 });
      await broker.until(() => broker.publishes.length === 1);
      await client.end({ force: true });
      await assert.rejects(p, { code: 'MQTT_ERR_CLIENT_CLOSED' });
      assert.equal(store.size, 1);
      broker.script = {};
      const again = await connect(options(broker, { clean: false, clientId: 'force', store }));
      await broker.until(() => store.size === 0, 5000, 'replayed message acked');
      assert.equal(broker.publishes.at(-1)?.dup, true);
      await again.end();
    });
  });

  test('keepalive: a server that stops answering PINGREQ is detected and the client reconnects', async () => {
    await withBroker(async (broker) => {
      broker.script = { pong: false };
      const client = await connect(options(broker, { keepalive: 1, pingTimeoutMs: 300 }));
      const reason = await new Promise<Error>((resolve) => client.once('offline', resolve));
      assert.equal((reason as { code?: string }).code, 'MQTT_ERR_KEEPALIVE_TIMEOUT');
      broker.script = {};
      await new Promise<void>((resolve) => client.once('connected', () => resolve()));
      await client.end();
    });
  });

  test('keepalive: a dead server is still detected by a process that stalls at every turn (late timers judge once they looked again)', async () => {
    await withBroker(async (broker) => {
      broker.script = { pong: false };
      const client = await connect(options(broker, { keepalive: 1, pingTimeoutMs: 300 }));
      // 150 ms of work every 20 ms: every keepalive timer runs more than 100 ms late.
      const staller = setInterval(() => {
        const until = performance.now() + 150;
        while (performance.now() < until) {}
      }, 20);
      try {
        const reason = await new Promise<Error>((resolve) => client.once('offline', resolve));
        assert.equal((reason as { code?: string }).code, 'MQTT_ERR_KEEPALIVE_TIMEOUT');
      } finally {
        clearInterval(staller);
      }
      await client.end({ force: true });
    });
  });

  test('refused connection: rejected with the reason spelled out', async () => {
    await withBroker(async (broker) => {
      broker.script = { connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: 0x86 }) };
      await assert.rejects(connect(options(broker)), (err: Error & { code?: string; reasonCode?: number }) => {
        assert.equal(err.code, 'MQTT_ERR_CONNECTION_REFUSED');
        assert.equal(err.reasonCode, 0x86);
        assert.match(err.message, /Bad User Name or Password/i);
        return true;
      });
    });
  });

  /**
   * Refuses the first `refusals.length` CONNECTs with those codes, then accepts; returns the delay before each retry
   * with the reason code it named, and how the client ended (undefined while it still runs). `random: () => 1` makes
   * every delay its ceiling.
   */
  async function retriesAfterRefusals(
    refusals: number[],
    extra: Partial<ClientOptions>,
  ): Promise<{ delays: number[]; reasons: (number | undefined)[]; closed: Error | undefined; connected: boolean }> {
    const delays: number[] = [];
    const reasons: (number | undefined)[] = [];
    let closed: Error | undefined;
    let connected = false;
    await withBroker(async (broker) => {
      let n = 0;
      broker.script = {
        connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: refusals[n++] ?? 0 }),
      };
      const client = await connect(
        options(broker, { retryFirstConnect: true, random: () => 1, clientId: 'refusals', store: false, ...extra }),
      );
      client.on('error', () => {});
      client.on('reconnecting', (info) => {
        delays.push(info.delayMs);
        reasons.push((info.reason as MqttError).reasonCode);
      });
      const done = new Promise<void>((resolve) => {
        client.once('connected', () => {
          connected = true;
          resolve();
        });
        client.once('closed', (reason) => {
          closed = reason ?? new Error('closed without a reason');
          resolve();
        });
      });
      await done;
      await client.end({ force: true });
    });
    return { delays, reasons, closed, connected };
  }

  const backoff = { initialDelayMs: 5, maxDelayMs: 80, multiplier: 2, jitter: 'none' as const };

  test('refusals no retry can fix wait the longest delay; server-side ones take the growing backoff (5.0 and 3.1.1)', async () => {
    // 0x86 bad user name or password, 0x87 not authorized, 0x8A banned: the longest delay each time.
    const permanent = await retriesAfterRefusals([0x86, 0x87, 0x8a], { reconnect: backoff });
    assert.ok(permanent.connected);
    assert.deepEqual(permanent.delays, [80, 80, 80]);
    // Each retry names the refusal it follows (an operator's log line: why is this vehicle waiting 80 ms?).
    assert.deepEqual(permanent.reasons, [0x86, 0x87, 0x8a]);
    // 0x88 server unavailable, 0x89 busy, 0x97 quota exceeded, 0x9F connection rate exceeded: they pass.
    const passing = await retriesAfterRefusals([0x88, 0x89, 0x97, 0x9f], { reconnect: backoff });
    assert.deepEqual(passing.delays, [5, 10, 20, 40]);
    // 3.1.1: 5 not authorized and 2 identifier rejected against 3 server unavailable.
    const v311 = await retriesAfterRefusals([3, 5, 3, 2], { reconnect: backoff, protocolVersion: 4 });
    assert.ok(v311.connected);
    assert.deepEqual(v311.delays, [5, 80, 20, 80]);
  });

  test("onPermanentRefusal 'backoff' keeps the growing delays; 'end' ends the client with the refusal", async () => {
    const growing = await retriesAfterRefusals([0x86, 0x86, 0x86], {
      reconnect: { ...backoff, onPermanentRefusal: 'backoff' },
    });
    assert.deepEqual(growing.delays, [5, 10, 20]);
    const ended = await retriesAfterRefusals([0x88, 0x87, 0x87], {
      reconnect: { ...backoff, onPermanentRefusal: 'end' },
    });
    assert.equal(ended.connected, false);
    assert.deepEqual(ended.delays, [5], 'server unavailable was retried, not authorized was not');
    const reason = ended.closed as MqttError;
    assert.equal(reason.code, 'MQTT_ERR_CONNECTION_REFUSED');
    assert.equal(reason.reasonCode, 0x87);
  });

  test('connect timeout when the server accepts TCP but never answers CONNECT', async () => {
    await withSilentServer(async (port) => {
      await assert.rejects(connect({ url: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 200 }), {
        code: 'MQTT_ERR_TIMEOUT',
      });
    });
  });

  test('enhanced authentication: the hook answers the server challenge', async () => {
    await withBroker(async (broker) => {
      const steps: string[] = [];
      broker.script = {
        connack: (c, _present, conn) => {
          assert.equal(c.properties?.authenticationMethod, 'TEST');
          assert.equal(text(c.properties?.authenticationData ?? new Uint8Array()), 'hello');
          conn.send({
            type: 'auth',
            reasonCode: 0x18,
            properties: { authenticationMethod: 'TEST', authenticationData: new TextEncoder().encode('challenge') },
          });
          return null;
        },
        onAuth: (packet, conn) => {
          assert.equal(packet.reasonCode, 0x18);
          assert.equal(text(packet.properties?.authenticationData ?? new Uint8Array()), 'response:challenge');
          conn.send({ type: 'connack', sessionPresent: false, reasonCode: 0 });
        },
      };
      const client: MqttClient = await connect(
        options(broker, {
          auth: {
            method: 'TEST',
            step: (data) => {
              steps.push(data === undefined ? 'initial' : text(data));
              return new TextEncoder().encode(data === undefined ? 'hello' : `response:${text(data)}`);
            },
          },
        }),
      );
      assert.deepEqual(steps, ['initial', 'challenge']);
      await client.end();
    });
  });
});

describe('inbound protocol checks against the fake broker (5.0)', () => {
  const pub = (
    topic: string,
    qos: 0 | 1 | 2,
    packetId?: number,
    properties?: PublishPacket['properties'],
  ): PublishPacket => ({
    type: 'publish',
    topic,
    payload: new TextEncoder().encode(topic),
    qos,
    retain: false,
    dup: false,
    packetId,
    properties,
  });

  test('a protocol error ends the read: a PUBLISH behind it in the same write is neither delivered nor acked', async () => {
    await withBroker(async (broker) => {
      const client = await connect(
        options(broker, { clean: false, clientId: 'alias-err', properties: { topicAliasMaximum: 2 } }),
      );
      try {
        const seen: string[] = [];
        client.on('message', (m) => seen.push(m.topic));
        const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
        const first = broker.latest!;
        first.socket.write(
          Buffer.concat([encode(pub('x', 0, undefined, { topicAlias: 3 }), 5), encode(pub('behind', 1, 7), 5)]),
        );
        const reason = (await offline) as MqttError;
        assert.equal(reason.reasonCode, 0x94);
        await broker.until(() => broker.connections.length === 2 && client.state === 'connected');
        assert.deepEqual(seen, [], 'the server sends it again on the next connection');
        assert.deepEqual(
          first.received.slice(1).map((p) => [p.type, (p as { reasonCode?: number }).reasonCode]),
          [['disconnect', 0x94]],
        );
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('an incoming QoS 2 message reaches the application only once its id is stored, and keeps its place', async () => {
    await withBroker(async (broker) => {
      // A store whose writes of incoming ids wait for the test: as a file store waits for its fdatasync.
      const memory = new MemoryStore();
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const store = {
        put: (key: string, record: Parameters<MemoryStore['put']>[1]) =>
          key.startsWith('in:') ? gate.then(() => memory.put(key, record)) : memory.put(key, record),
        get: (key: string) => memory.get(key),
        delete: (key: string) => memory.delete(key),
        list: () => memory.list(),
      };
      const client = await connect(options(broker, { clean: false, clientId: 'qos2-durable', store }));
      try {
        const seen: string[] = [];
        client.on('message', (m) => seen.push(`${m.topic}@${m.qos}`));
        broker.latest!.socket.write(Buffer.concat([encode(pub('exactly', 2, 7), 5), encode(pub('after', 0), 5)]));
        await delay(200);
        assert.deepEqual(seen, [], 'nothing before the id is stored; the QoS 0 message behind it waits too');
        assert.deepEqual(broker.latest!.received.slice(1), [], 'no PUBREC before the id is stored');
        release();
        await broker.until(() => seen.length === 2, 5000, 'both messages');
        assert.deepEqual(seen, ['exactly@2', 'after@0']);
        await broker.until(() => broker.latest!.received.some((p) => p.type === 'pubrec'), 5000, 'PUBREC');
        assert.ok(memory.get('in:7') !== undefined);
      } finally {
        release();
        await client.end({ force: true });
      }
    });
  });

  test('a QoS 0 publisher that awaits its publishes waits while the line is backed up, instead of filling memory', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      try {
        // The server stops reading: what the client writes piles up in the kernel's buffers, then in the socket's.
        broker.latest!.socket.pause();
        const payload = new Uint8Array(64 * 1024);
        let resolved = 0;
        let stalled = false;
        // 40 MiB in all, far beyond what loopback's buffers hold: an awaiting publisher must stall before the end.
        for (let i = 0; i < 640 && !stalled; i++) {
          const sent = client.publish('bulk', payload, { qos: 0 }).then(() => true);
          stalled = !(await Promise.race([sent, delay(1000).then(() => false)]));
          if (!stalled) resolved++;
        }
        assert.ok(stalled, `every one of ${resolved} publishes resolved while nothing was read`);
        const held = resolved;
        broker.latest!.socket.resume();
        await until(() => broker.publishes.length >= held, `the server reads the ${held} messages`, 20_000);
        assert.equal((await client.publish('bulk', 'after', { qos: 0 })).reasonCode, 0, 'and goes on once drained');
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test("once('message') takes one of the messages that arrived before any listener; the rest wait for the next one", async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      try {
        broker.latest!.socket.write(Buffer.concat([0, 1, 2].map((i) => encode(pub(`m${i}`, 0), 5))));
        await broker.until(() => (client as unknown as { early?: unknown[] }).early?.length === 3, 5000, 'held');
        const once: string[] = [];
        client.once('message', (m) => once.push(m.topic));
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(once, ['m0']);
        const later: string[] = [];
        client.on('message', (m) => later.push(m.topic));
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(later, ['m1', 'm2']);
        assert.deepEqual(once, ['m0']);
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('messages arriving before anyone listens pause reading instead of being dropped past the early limit', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      try {
        const errors: string[] = [];
        client.on('error', (e) => errors.push((e as MqttError).code));
        // More than the 10 000 the client holds for a first consumer: before, the rest were dropped.
        const total = 12_000;
        const frames: Uint8Array[] = [];
        for (let i = 0; i < total; i++) frames.push(encode(pub(`early/${i}`, 0), 5));
        broker.latest!.socket.write(Buffer.concat(frames));
        await broker.until(() => client.readingPaused, 10_000, 'reading paused with nobody listening');
        let received = 0;
        let last = '';
        client.on('message', (m) => {
          received++;
          last = m.topic;
        });
        await broker.until(() => received === total, 10_000, `all ${total} messages (got ${received})`);
        assert.equal(last, `early/${total - 1}`);
        assert.deepEqual(errors, []);
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('packets before CONNACK are a protocol error: a PUBACK and a PUBLISH ahead of it are not handled', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: false, clientId: 'early-packets' }));
      try {
        const seen: string[] = [];
        client.on('message', (m) => seen.push(m.topic));
        broker.script = {
          connack: (_c, present, conn) => {
            if (broker.connections.length !== 2) return { type: 'connack', sessionPresent: present, reasonCode: 0 };
            conn.socket.write(
              Buffer.concat([
                encode({ type: 'puback', packetId: 1 }, 5),
                encode(pub('early', 0), 5),
                encode({ type: 'connack', sessionPresent: present, reasonCode: 0 }, 5),
              ]),
            );
            return null;
          },
        };
        broker.latest!.drop();
        await broker.until(() => broker.connections.length === 3 && client.state === 'connected');
        assert.deepEqual(seen, []);
        assert.deepEqual(broker.connections[1]!.received.at(-1), { type: 'disconnect', reasonCode: 0x82 });
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('AUTH from a server we gave no authentication method: DISCONNECT 0x82 (a protocol error, not 0x87)', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
      broker.latest!.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'X' } });
      const reason = (await offline) as MqttError;
      assert.equal(reason.code, 'MQTT_ERR_PROTOCOL_ERROR');
      await broker.until(() => broker.latest!.received.some((p) => p.type === 'disconnect'));
      assert.deepEqual(broker.latest!.received.at(-1), { type: 'disconnect', reasonCode: 0x82 });
      await client.end({ force: true });
    });
  });

  test('a server DISCONNECT: event with its properties, offline reason with code and reason string', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { reconnect: false }));
      const packets: unknown[] = [];
      client.on('disconnect', (p) => packets.push(p));
      const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
      const properties = { reasonString: 'maintenance', userProperties: [['k', 'v']] as Array<[string, string]> };
      broker.latest!.send({ type: 'disconnect', reasonCode: 0x8b, properties });
      const reason = (await offline) as MqttError;
      assert.equal(reason.code, 'MQTT_ERR_CONNECTION_CLOSED');
      assert.equal(reason.reasonCode, 0x8b);
      assert.match(reason.message, /maintenance/);
      assert.deepEqual(packets, [{ type: 'disconnect', reasonCode: 0x8b, properties }]);
      await client.end({ force: true });
    });
  });

  test('a listener that throws: reported on error, and the packets behind its message are still handled', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker));
      try {
        const errors: Error[] = [];
        client.on('error', (e) => errors.push(e));
        const seen: string[] = [];
        client.on('message', (m) => {
          seen.push(m.topic);
          if (m.topic === 'boom') throw new Error('application bug');
        });
        const conn = broker.latest!;
        conn.socket.write(Buffer.concat([encode(pub('boom', 1, 1), 5), encode(pub('next', 1, 2), 5)]));
        await broker.until(() => conn.received.filter((p) => p.type === 'puback').length === 2, 3000, 'both PUBACKs');
        assert.deepEqual(seen, ['boom', 'next']);
        assert.deepEqual(
          errors.map((e) => e.message),
          ['application bug'],
        );
        assert.equal(client.state, 'connected');
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('overlapping subscriptions with Subscription Identifiers: each stream gets the copy naming its own', async () => {
    await withBroker(
      async (broker) => {
        const client = await connect(options(broker));
        try {
          const wide = await client.subscribe('a/#', { properties: { subscriptionIdentifiers: [1] } });
          const narrow = await client.subscribe('a/b', { properties: { subscriptionIdentifiers: [2] } });
          const plain = await client.subscribe('a/+');
          assert.deepEqual(wide.properties, { reasonString: 'ok a/#' }, 'SUBACK properties are visible');
          const fromWide = wide.messages();
          const fromNarrow = narrow.messages();
          const fromPlain = plain.messages();
          const conn = broker.latest!;
          // One copy per subscription, as a server may send them ([MQTT-3.3.4-5]); one for 'a/+' carries none.
          conn.send(pub('a/b', 0, undefined, { subscriptionIdentifiers: [1] }));
          conn.send(pub('a/b', 0, undefined, { subscriptionIdentifiers: [2] }));
          conn.send(pub('a/c', 0, undefined, { subscriptionIdentifiers: [1] }));
          conn.send(pub('a/b', 0));
          await broker.until(() => fromPlain.pending === 4, 3000, 'four messages');
          const ids = async (s: typeof fromWide) => {
            const out: unknown[] = [];
            while (s.pending > 0) out.push((await s.next()).value?.properties?.subscriptionIdentifiers ?? []);
            return out;
          };
          assert.deepEqual(await ids(fromWide), [[1], [1], []]);
          assert.deepEqual(await ids(fromNarrow), [[2], []]);
        } finally {
          await client.end({ force: true });
        }
      },
      { subackProperties: (p: SubscribePacket) => ({ reasonString: `ok ${p.subscriptions[0]!.topicFilter}` }) },
    );
  });

  test('a SUBSCRIBE whose properties cannot be encoded (MQTT.js spelling) rejects, and is not resent later', async () => {
    await withBroker(async (broker) => {
      const client = await connect(options(broker, { clean: false, clientId: 'bad-sub-props' }));
      try {
        await assert.rejects(
          client.subscribe('a/#', { properties: { subscriptionIdentifier: 1 } as never }),
          (err: MqttError) => err.code === 'MQTT_ERR_INVALID_PACKET',
        );
        broker.latest!.drop();
        await broker.until(() => broker.connections.length === 2 && client.state === 'connected');
        const sub = await client.subscribe('b/#', { properties: { subscriptionIdentifiers: [1] } });
        assert.deepEqual(sub.reasonCodes, [0]);
        assert.equal(client.state, 'connected');
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('malformed packets and protocol errors: DISCONNECT with the reason, reconnect, the session kept', async () => {
    const cases: Array<[string, Buffer, number]> = [
      ['PUBREL with flags 0000', Buffer.from([0x60, 0x02, 0x00, 0x01]), 0x81],
      ['ill-formed UTF-8 in the topic', Buffer.from([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00]), 0x81],
      ['a wildcard in the topic', Buffer.from([0x30, 0x05, 0x00, 0x02, 0x61, 0x23, 0x00]), 0x90],
      [
        'Session Expiry Interval in a PUBLISH',
        Buffer.from([0x30, 0x0a, 0x00, 0x01, 0x61, 0x05, 0x11, 0, 0, 0, 1, 0x78]),
        0x81,
      ],
      [
        'a PUBLISH above our Maximum Packet Size',
        Buffer.from(encode(pub('big', 0, undefined, { contentType: 'x'.repeat(64) }), 5)),
        0x95,
      ],
      [
        'Content Type twice',
        Buffer.from([0x30, 0x0d, 0x00, 0x01, 0x61, 0x08, 0x03, 0, 1, 0x61, 0x03, 0, 1, 0x61, 0x78]),
        0x82,
      ],
    ];
    for (const [what, bytes, code] of cases) {
      await withBroker(async (broker) => {
        const client = await connect(
          options(broker, { clean: false, clientId: 'malformed', properties: { maximumPacketSize: 64 } }),
        );
        try {
          await client.subscribe('keep/#', { qos: 1 });
          const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
          const first = broker.latest!;
          first.socket.write(bytes);
          assert.equal(((await offline) as MqttError).reasonCode, code, what);
          await broker.until(() => broker.connections.length === 2 && client.state === 'connected');
          assert.deepEqual(first.received.at(-1), { type: 'disconnect', reasonCode: code }, what);
          assert.equal(client.connack?.sessionPresent, true, `${what}: the session goes on`);
          assert.equal(broker.connects.at(-1)?.clean, false);
        } finally {
          await client.end({ force: true });
        }
      });
    }
  });
});
