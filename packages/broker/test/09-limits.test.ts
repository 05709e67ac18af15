// Limits: connections, publish rate, packet size, queue drop policy 'newest', pushback from slow subscribers (QoS 1
// queue, QoS 0 socket output), and a stuck subscriber that must not stall a fan-out or its publishers (its QoS 0
// messages are dropped and counted, the others get everything).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode } from '@otalink/mqtt';
import {
  connectClient,
  connected,
  delay,
  persistent,
  readSlowly,
  startBroker,
  str,
  subscribe,
  text,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`09 limits, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    test('connections beyond the limit are refused with 0x89 / 0x03', async () => {
      const b = await startBroker({ limits: { maxConnections: 2 } });
      try {
        const one = await connected(b.port, { version, clientId: 'one' });
        const two = await connected(b.port, { version, clientId: 'two' });
        const three = await connectClient(b.port, { version, clientId: 'three' });
        assert.equal(three.connack.reasonCode, version === 5 ? 0x89 : 0x03);
        await three.client.expectClose();
        one.end();
        await one.closedPromise;
        await delay(50);
        const again = await connected(b.port, { version, clientId: 'again' });
        again.end();
        two.end();
      } finally {
        await b.close();
      }
    });

    test('subscriptions beyond max_subscriptions are refused per filter; replacing one held is allowed', async () => {
      const b = await startBroker({ limits: { maxSubscriptionsPerClient: 2 } });
      try {
        const c = await connected(b.port, { version, clientId: 'many' });
        c.send({
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topicFilter: 'subs/a', qos: 1 },
            { topicFilter: '$share/g/subs/b', qos: 1 },
            { topicFilter: 'subs/c', qos: 1 },
          ],
        });
        const refused = version === 5 ? 0x97 : 0x80;
        assert.deepEqual((await c.expect('suback')).reasonCodes, [1, 1, refused]);
        // The same filter again (a new QoS) replaces it: still two.
        c.send({ type: 'subscribe', packetId: 2, subscriptions: [{ topicFilter: 'subs/a', qos: 0 }] });
        assert.deepEqual((await c.expect('suback')).reasonCodes, [0]);
        c.send({ type: 'unsubscribe', packetId: 3, topicFilters: ['subs/a'] });
        await c.expect('unsuback');
        c.send({ type: 'subscribe', packetId: 4, subscriptions: [{ topicFilter: 'subs/c', qos: 0 }] });
        assert.deepEqual((await c.expect('suback')).reasonCodes, [0]);
        assert.equal(b.broker.stats.subscriptionsRefusedLimit, 1);
        assert.equal(b.broker.stats.subscriptionsCurrent, 2);
        c.end();
      } finally {
        await b.close();
      }
    });

    test('publishing faster than the rate limit closes the connection (5.0: 0x96)', async () => {
      const b = await startBroker({ limits: { maxPublishRate: 5 } });
      try {
        const c = await connected(b.port, { version, clientId: 'fast' });
        for (let i = 0; i < 20; i++) {
          c.send({ type: 'publish', topic: 'rate/t', payload: text('x'), qos: 0, retain: false, dup: false });
        }
        const packets = await c.expectClose();
        if (version === 5)
          assert.deepEqual(
            packets.map((p) => p.type === 'disconnect' && p.reasonCode),
            [0x96],
          );
        else assert.deepEqual(packets, []);
        // A quota, not a protocol error: an alert on protocol errors must not fire for it.
        assert.equal(b.broker.stats.rateLimited, 1);
        assert.equal(b.broker.stats.protocolErrors, 0);
      } finally {
        await b.close();
      }
    });

    test('a packet over the size limit is refused from its fixed header, before the body arrives', async () => {
      const b = await startBroker({ limits: { maxPacketSize: 1000 } });
      try {
        const c = await connected(b.port, { version, clientId: 'big' });
        // Fixed header announcing 100 000 bytes; no body follows.
        c.writeRaw([0x30, 0xa0, 0x8d, 0x06]);
        const packets = await c.expectClose();
        if (version === 5)
          assert.deepEqual(
            packets.map((p) => p.type === 'disconnect' && p.reasonCode),
            [0x95],
          );
        else assert.deepEqual(packets, []);
      } finally {
        await b.close();
      }
    });

    test("queue drop policy 'newest' keeps the oldest messages", async () => {
      const b = await startBroker({ limits: { maxQueuedMessages: 2, queueDropPolicy: 'newest' } });
      try {
        const persistent = {
          version,
          clientId: 'q',
          clean: false,
          properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined,
        };
        const c = await connected(b.port, persistent);
        await subscribe(c, 'q/t', 1);
        c.send({ type: 'disconnect' });
        await c.closedPromise;
        for (let i = 1; i <= 4; i++) b.broker.publish({ topic: 'q/t', payload: `m${i}`, qos: 1 });
        assert.equal(b.broker.stats.droppedQueueFull, 2);
        assert.equal(b.broker.stats.queuedCurrent, 2);
        const again = await connected(b.port, persistent);
        const got = [str((await again.expect('publish')).payload), str((await again.expect('publish')).payload)];
        assert.deepEqual(got, ['m1', 'm2']);
        again.end();
      } finally {
        await b.close();
      }
    });

    test('max queued bytes: an offline session keeps the newest messages that fit, oldest dropped first', async () => {
      const b = await startBroker({ limits: { maxQueuedBytes: 10 } });
      try {
        const session = persistent('qb', version);
        const c = await connected(b.port, session);
        await subscribe(c, 'qb/t', 1);
        c.send({ type: 'disconnect' });
        await c.closedPromise;
        for (const payload of ['1111', '2222', '3333', 'far-too-large']) {
          b.broker.publish({ topic: 'qb/t', payload, qos: 1 });
        }
        assert.equal(b.broker.stats.droppedQueueFull, 2, 'the oldest made room; the one over the limit went');
        assert.equal(b.broker.stats.queuedCurrent, 2);
        const again = await connected(b.port, session);
        const got = [str((await again.expect('publish')).payload), str((await again.expect('publish')).payload)];
        assert.deepEqual(got, ['2222', '3333']);
        again.end();
      } finally {
        await b.close();
      }
    });

    test('a burst beyond one turn of output reaches every subscriber complete and in order, DISCONNECT last', async () => {
      const b = await startBroker({ limits: { receiveMaximum: 65_535 } });
      try {
        const subscribers = [];
        for (let i = 0; i < 200; i++) {
          const subscriber = await connected(b.port, { version, clientId: `burst-sub-${i}` });
          await subscribe(subscriber, 'burst/t', 1);
          subscribers.push(subscriber);
        }
        const publisher = await connected(b.port, { version, clientId: 'burst-pub' });
        // 150 x 1 KiB to 200 subscribers: each 64 KiB read routes ~12 MB, more than one turn carries (8 MB).
        const total = 150;
        const frames: Uint8Array[] = [];
        for (let i = 0; i < total; i++) {
          const payload = new Uint8Array(1024);
          new DataView(payload.buffer).setUint32(0, i);
          frames.push(
            encode(
              { type: 'publish', topic: 'burst/t', payload, qos: 1, retain: false, dup: false, packetId: i + 1 },
              version,
            ),
          );
        }
        frames.push(encode({ type: 'disconnect' }, version));
        publisher.socket.write(Buffer.concat(frames));
        const acks = await publisher.expectClose(20_000);
        assert.equal(acks.filter((p) => p.type === 'puback').length, total);
        for (const subscriber of subscribers) {
          for (let i = 0; i < total; i++) {
            const packet = await subscriber.expect('publish', 10_000);
            assert.equal(new DataView(packet.payload.buffer, packet.payload.byteOffset).getUint32(0), i);
            subscriber.send({ type: 'puback', packetId: packet.packetId! });
          }
          subscriber.end();
        }
        assert.equal(b.broker.stats.droppedQueueFull, 0);
      } finally {
        await b.close();
      }
    });

    test('a QoS 1 subscriber slower than its publisher holds the publisher back instead of overflowing', async () => {
      const b = await startBroker({ limits: { maxQueuedMessages: 300 } });
      try {
        const subscriber = await connected(b.port, { version, clientId: 'slow-sub' });
        await subscribe(subscriber, 'slow/t', 1);
        const publisher = await connected(b.port, { version, clientId: 'fast-pub' });
        // 1 500 messages in one write: far more than the window (100) plus the queue (300) hold.
        const total = 1500;
        const frames: Uint8Array[] = [];
        for (let i = 0; i < total; i++) {
          const payload = new Uint8Array(4);
          new DataView(payload.buffer).setUint32(0, i);
          frames.push(
            encode(
              { type: 'publish', topic: 'slow/t', payload, qos: 1, retain: false, dup: false, packetId: i + 1 },
              version,
            ),
          );
        }
        publisher.socket.write(Buffer.concat(frames));
        for (let i = 0; i < total; i++) {
          const packet = await subscriber.expect('publish', 10_000);
          assert.equal(new DataView(packet.payload.buffer, packet.payload.byteOffset).getUint32(0), i);
          // Slower than the publisher: a pause after every 100 acknowledgements.
          if (i % 100 === 99) await delay(20);
          subscriber.send({ type: 'puback', packetId: packet.packetId! });
        }
        assert.equal(b.broker.stats.droppedQueueFull, 0);
        let acked = 0;
        while (acked < total) {
          await publisher.expect('puback', 10_000);
          acked++;
        }
        publisher.end();
        subscriber.end();
      } finally {
        await b.close();
      }
    });

    test('a stuck QoS 1 subscriber holds nobody back: the others get everything, its queue drops', async () => {
      const b = await startBroker({ limits: { maxQueuedMessages: 200 } });
      try {
        const stuck = await connected(b.port, { version, clientId: 'stuck-1' });
        await subscribe(stuck, 'stuck/t', 1);
        stuck.socket.pause();
        const healthy = await connected(b.port, { version, clientId: 'healthy-1' });
        await subscribe(healthy, 'stuck/t', 1);
        const publisher = await connected(b.port, { version, clientId: 'pub-1' });
        // Silent for longer than a live subscriber ever is: stuck from now on.
        await delay(1200);
        const total = 1000;
        const frames: Uint8Array[] = [];
        for (let i = 0; i < total; i++) {
          frames.push(
            encode(
              {
                type: 'publish',
                topic: 'stuck/t',
                payload: text('x'),
                qos: 1,
                retain: false,
                dup: false,
                packetId: i + 1,
              },
              version,
            ),
          );
        }
        publisher.socket.write(Buffer.concat(frames));
        for (let i = 0; i < total; i++) {
          const packet = await healthy.expect('publish', 3000);
          healthy.send({ type: 'puback', packetId: packet.packetId! });
        }
        assert.ok(b.broker.stats.droppedQueueFull > 0, 'the stuck subscriber queued everything');
        stuck.end();
        healthy.end();
        publisher.end();
      } finally {
        await b.close();
      }
    });

    test('send timeout: a client that stops reading is closed once its output makes no progress for send_timeout, its will published; a slow reader is not', async () => {
      const b = await startBroker({ limits: { sendTimeoutMs: 1000 } });
      const timers: NodeJS.Timeout[] = [];
      try {
        const gone: string[] = [];
        b.broker.events.on('clientDisconnected', (client) => gone.push(`${client.clientId}: ${client.reason}`));
        const wills = await connected(b.port, { version, clientId: 'wills' });
        await subscribe(wills, 'wills/#', 0);
        // Keepalive 0: nothing else would ever end it.
        const stuck = await connected(b.port, {
          version,
          clientId: 'stuck-reader',
          keepalive: 0,
          will: { topic: 'wills/stuck', payload: text('gone'), qos: 0, retain: false },
        });
        await subscribe(stuck, 'flood/#', 0);
        stuck.socket.pause();
        const slow = await connected(b.port, { version, clientId: 'slow-reader', keepalive: 0 });
        await subscribe(slow, 'flood/#', 0);
        // Reads a little every 50 ms: backed up the whole time, but its output moves.
        timers.push(readSlowly(slow, 50));
        const publisher = await connected(b.port, { version, clientId: 'flooder' });
        const batch = qos0Frames('flood/x', 256, 4096);
        timers.push(setInterval(() => publisher.socket.write(batch), 20));
        const deadline = Date.now() + 20_000;
        while (!gone.some((g) => g.startsWith('stuck-reader')) && Date.now() < deadline) await delay(50);
        assert.deepEqual(gone, ['stuck-reader: send timeout'], 'the stuck reader, and only it, is closed');
        assert.equal(b.broker.stats.sendTimeouts, 1);
        const will = await wills.expect('publish', 5000);
        assert.deepEqual([will.topic, str(will.payload)], ['wills/stuck', 'gone']);
        // The slow reader lives on past another timeout, and so does the publisher.
        await delay(1500);
        assert.deepEqual(gone, ['stuck-reader: send timeout']);
        assert.equal(slow.closed || publisher.closed, false);
      } finally {
        for (const t of timers) clearInterval(t);
        await b.close();
      }
    });

    test('send timeout: a slow reader taking one large message part by part, for longer than send_timeout, is not cut', async () => {
      const size = 12 << 20;
      const b = await startBroker({ limits: { sendTimeoutMs: 1000, maxPacketSize: 16 << 20 } });
      let timer: NodeJS.Timeout | undefined;
      try {
        const slow = await connected(b.port, { version, clientId: 'slow-big', keepalive: 0 });
        await subscribe(slow, 'big/#', 0);
        // A read every 200 ms: one write of 12 MiB that takes seconds to complete, its bytes taken all along.
        timer = readSlowly(slow, 200);
        const publisher = await connected(b.port, { version, clientId: 'big-publisher' });
        publisher.send({
          type: 'publish',
          topic: 'big/x',
          payload: new Uint8Array(size),
          qos: 0,
          retain: false,
          dup: false,
        });
        const started = Date.now();
        const message = await slow.expect('publish', 60_000);
        assert.equal(message.payload.length, size);
        assert.equal(b.broker.stats.sendTimeouts, 0, `not cut (took ${Date.now() - started} ms)`);
        publisher.end();
      } finally {
        clearInterval(timer);
        await b.close();
      }
    });

    /** `count` QoS 0 PUBLISH frames to `topic`, payload `size` bytes starting with the message's number. */
    const qos0Frames = (topic: string, count: number, size: number): Buffer => {
      const frames: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const payload = new Uint8Array(size);
        new DataView(payload.buffer).setUint32(0, i);
        frames.push(encode({ type: 'publish', topic, payload, qos: 0, retain: false, dup: false }, version));
      }
      return Buffer.concat(frames);
    };
    const seqOf = (payload: Uint8Array) => new DataView(payload.buffer, payload.byteOffset).getUint32(0);

    /** One round of the test below; false if the machine stretched its pause to the broker's 1 s for a stuck reader. */
    const slowSubscriberRound = async (): Promise<boolean> => {
      const b = await startBroker();
      try {
        const subscriber = await connected(b.port, { version, clientId: 'fanin-sub' });
        await subscribe(subscriber, 'in/+', 0);
        subscriber.socket.pause();
        const publishers = [];
        for (let p = 0; p < 10; p++) publishers.push(await connected(b.port, { version, clientId: `fanin-pub-${p}` }));
        // 10 x 1 000 x 4 KiB = 40 MB, far more than the socket buffers between the broker and a reader that waits.
        const perPublisher = 1000;
        // The subscriber's output goes over its high-water mark after this, so the broker's 1 s (STUCK_MS) for a reader
        // that stopped counts from no earlier than here.
        const pausedAt = Date.now();
        for (const [p, publisher] of publishers.entries()) {
          publisher.socket.write(qos0Frames(`in/${p}`, perPublisher, 4096));
        }
        // A pause a live reader may take: the broker stops reading the publishers instead of taking in (and
        // dropping) the flood.
        await delay(600);
        // Past 1 s the broker rightly takes the reader for stuck and stops holding the publishers: a pause a loaded
        // machine stretched that far proves nothing either way, and the round is run again.
        if (Date.now() - pausedAt >= 1000) {
          for (const client of [subscriber, ...publishers]) client.end();
          return false;
        }
        assert.equal(b.broker.stats.droppedSlowSubscriber, 0);
        assert.ok(b.broker.stats.bytesIn < 24 * 1024 * 1024, `took in ${b.broker.stats.bytesIn} bytes`);
        subscriber.socket.resume();
        const next = new Array<number>(publishers.length).fill(0);
        for (let got = 0; got < publishers.length * perPublisher; got++) {
          const packet = await subscriber.expect('publish', 10_000);
          const p = Number(packet.topic.slice('in/'.length));
          assert.equal(seqOf(packet.payload), next[p], `publisher ${p} out of order`);
          next[p]!++;
        }
        assert.equal(b.broker.stats.droppedSlowSubscriber, 0);
        for (const publisher of publishers) publisher.end();
        subscriber.end();
        return true;
      } finally {
        await b.close();
      }
    };

    test('a slow QoS 0 subscriber holds back the publishers feeding only it: nothing dropped, no flood taken in', async () => {
      for (let round = 1; !(await slowSubscriberRound()); round++) {
        assert.ok(round < 3, 'three 600 ms pauses each stretched to 1 s: the machine is too loaded to judge this');
      }
    });

    test('a stuck QoS 0 subscriber holds its publishers back for a moment only: their other messages flow', async () => {
      const b = await startBroker();
      try {
        const stuck = await connected(b.port, { version, clientId: 'stuck-0' });
        await subscribe(stuck, 'stuck/+', 0);
        stuck.socket.pause();
        const healthy = await connected(b.port, { version, clientId: 'healthy-0' });
        await subscribe(healthy, 'ok/+', 0);
        const publishers = [];
        for (let p = 0; p < 5; p++) publishers.push(await connected(b.port, { version, clientId: `both-pub-${p}` }));
        // Each publisher alternates a 4 KiB message for the stuck subscriber (20 MB in all) with one for the healthy.
        const perPublisher = 1000;
        publishers.forEach((publisher, p) => {
          const toStuck = qos0Frames(`stuck/${p}`, perPublisher, 4096);
          const toHealthy = qos0Frames(`ok/${p}`, perPublisher, 8);
          const stuckSize = toStuck.length / perPublisher;
          const healthySize = toHealthy.length / perPublisher;
          const frames: Buffer[] = [];
          for (let i = 0; i < perPublisher; i++) {
            frames.push(toStuck.subarray(i * stuckSize, (i + 1) * stuckSize));
            frames.push(toHealthy.subarray(i * healthySize, (i + 1) * healthySize));
          }
          publisher.socket.write(Buffer.concat(frames));
        });
        const next = new Array<number>(publishers.length).fill(0);
        for (let got = 0; got < publishers.length * perPublisher; got++) {
          const packet = await healthy.expect('publish', 10_000);
          const p = Number(packet.topic.slice('ok/'.length));
          assert.equal(seqOf(packet.payload), next[p], `publisher ${p} out of order`);
          next[p]!++;
        }
        assert.ok(b.broker.stats.droppedSlowSubscriber > 0, 'nothing was dropped for the stuck subscriber');
        for (const publisher of publishers) publisher.end();
        stuck.end();
        healthy.end();
      } finally {
        await b.close();
      }
    });

    test('a stuck subscriber does not stall a fan-out: its QoS 0 messages are dropped and counted', async () => {
      const b = await startBroker();
      try {
        const stuck = await connected(b.port, { version, clientId: 'stuck' });
        await subscribe(stuck, 'fan/t', 0);
        stuck.socket.pause();
        const healthy = await connected(b.port, { version, clientId: 'healthy' });
        await subscribe(healthy, 'fan/t', 0);
        const payload = new Uint8Array(64 * 1024);
        const total = 300; // ~19 MB: far beyond the socket buffers of a reader that never reads
        for (let i = 0; i < total; i++) {
          b.broker.publish({ topic: 'fan/t', payload });
          if (i % 10 === 9) await delay(5);
        }
        let got = 0;
        while (got < total) {
          await healthy.expect('publish', 10_000);
          got++;
        }
        assert.ok(b.broker.stats.droppedSlowSubscriber > 0, 'nothing was dropped for the stuck subscriber');
        stuck.end();
        healthy.end();
      } finally {
        await b.close();
      }
    });
  });
}
