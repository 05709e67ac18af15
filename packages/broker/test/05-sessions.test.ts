// Sessions: clean session / clean start, session expiry, offline queueing of QoS 1/2, redelivery with DUP on
// reconnect (PUBLISH and PUBREL), queue limit with drop policy, message expiry while queued.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { QoS } from '@otalink/mqtt';
import { MemoryStore, type StoreOp } from '../src/index.js';
import {
  type ConnectOptions,
  connectClient,
  connected,
  delay,
  type RawClient,
  startBroker,
  str,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`05 sessions, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    before(async () => {
      b = await startBroker({ limits: { maxQueuedMessages: 3, queueDropPolicy: 'oldest' } });
    });
    after(() => b.close());

    const persistent = (clientId: string): ConnectOptions => ({
      version,
      clientId,
      clean: false,
      properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined,
    });

    async function publish(topic: string, payload: string, qos: QoS, properties?: { messageExpiryInterval?: number }) {
      const pub = await connected(b.port, { version, clientId: id('pub') });
      pub.send({
        type: 'publish',
        topic,
        payload: text(payload),
        qos,
        retain: false,
        dup: false,
        packetId: qos ? 1 : undefined,
        properties,
      });
      if (qos === 1) await pub.expect('puback');
      if (qos === 2) {
        await pub.expect('pubrec');
        pub.send({ type: 'pubrel', packetId: 1 });
        await pub.expect('pubcomp');
      }
      pub.end();
    }

    async function disconnect(client: RawClient) {
      client.send({ type: 'disconnect' });
      await client.closedPromise;
    }

    test('a persistent session keeps its subscriptions and queues QoS 1/2 (not QoS 0) while offline', async () => {
      const clientId = id('offline');
      const c = await connected(b.port, persistent(clientId));
      await subscribe(c, 'off/#', 2);
      await disconnect(c);
      await publish('off/a', 'q0', 0);
      await publish('off/b', 'q1', 1);
      await publish('off/c', 'q2', 2);
      const { client, connack } = await connectClient(b.port, persistent(clientId));
      assert.equal(connack.sessionPresent, true);
      const m1 = await client.expect('publish');
      assert.deepEqual([m1.topic, m1.qos], ['off/b', 1]);
      client.send({ type: 'puback', packetId: m1.packetId! });
      const m2 = await client.expect('publish');
      assert.deepEqual([m2.topic, m2.qos], ['off/c', 2]);
      client.send({ type: 'pubrec', packetId: m2.packetId! });
      await client.expect('pubrel');
      client.send({ type: 'pubcomp', packetId: m2.packetId! });
      assert.ok(await client.silentFor(200));
      // Subscriptions survived.
      await publish('off/d', 'live', 1);
      assert.equal(str((await client.expect('publish')).payload), 'live');
      client.end();
    });

    test('unacknowledged messages are resent with DUP on reconnect; PUBREL is resent after PUBREC', async () => {
      const clientId = id('redeliver');
      const c = await connected(b.port, persistent(clientId));
      await subscribe(c, 'redo/#', 2);
      await publish('redo/q1', 'one', 1);
      await publish('redo/q2', 'two', 2);
      const first = await c.expect('publish');
      const second = await c.expect('publish');
      assert.equal(first.dup, false);
      const q2 = first.qos === 2 ? first : second;
      const q1 = first.qos === 1 ? first : second;
      c.send({ type: 'pubrec', packetId: q2.packetId! });
      await c.expect('pubrel');
      c.end(); // no PUBACK, no PUBCOMP
      await c.closedPromise;
      const again = await connected(b.port, persistent(clientId));
      const packets = [await again.next(), await again.next()];
      const republished = packets.find((p) => p.type === 'publish');
      const pubrel = packets.find((p) => p.type === 'pubrel');
      assert.ok(republished?.type === 'publish');
      assert.equal(republished.dup, true);
      assert.equal(republished.packetId, q1.packetId);
      assert.equal(str(republished.payload), 'one');
      assert.ok(pubrel?.type === 'pubrel');
      assert.equal(pubrel.packetId, q2.packetId);
      again.send({ type: 'puback', packetId: q1.packetId! });
      again.send({ type: 'pubcomp', packetId: q2.packetId! });
      assert.ok(await again.silentFor(200));
      again.end();
    });

    if (version === 5) {
      // Found by the model run (test/model): the resend ignored the new connection's Receive Maximum.
      test('resends on a reconnect keep to the new, smaller Receive Maximum, in order, before queued ones', async () => {
        const clientId = id('resend-window');
        const c = await connected(b.port, { ...persistent(clientId), properties: { sessionExpiryInterval: 60 } });
        await subscribe(c, 'rw/#', 1);
        for (const payload of ['a', 'b', 'c']) await publish('rw/t', payload, 1);
        const sent = [await c.expect('publish'), await c.expect('publish'), await c.expect('publish')];
        c.end(); // none acknowledged
        await c.closedPromise;
        await publish('rw/t', 'd', 1); // queued while offline
        const again = await connected(b.port, {
          ...persistent(clientId),
          properties: { sessionExpiryInterval: 60, receiveMaximum: 1 },
        });
        const got: string[] = [];
        for (let i = 0; i < 4; i++) {
          const m = await again.expect('publish');
          assert.ok(await again.silentFor(100), `more than one unacknowledged PUBLISH after ${str(m.payload)}`);
          got.push(`${str(m.payload)}${m.dup ? '*' : ''}`);
          if (i < 3) assert.equal(m.packetId, sent[i]!.packetId, 'a resend keeps its packet id');
          again.send({ type: 'puback', packetId: m.packetId! });
        }
        assert.deepEqual(got, ['a*', 'b*', 'c*', 'd']);
        again.end();
      });
    }

    test('a clean session discards subscriptions and queued messages', async () => {
      const clientId = id('clean');
      const c = await connected(b.port, persistent(clientId));
      await subscribe(c, 'cl/t', 1);
      await disconnect(c);
      await publish('cl/t', 'queued', 1);
      const { client, connack } = await connectClient(b.port, { version, clientId, clean: true });
      assert.equal(connack.sessionPresent, false);
      assert.ok(await client.silentFor(200));
      await publish('cl/t', 'after', 1);
      assert.ok(await client.silentFor(200), 'subscription survived a clean session');
      client.end();
    });

    test('the queue limit drops the oldest message and counts it', async () => {
      const clientId = id('full');
      const c = await connected(b.port, persistent(clientId));
      await subscribe(c, 'full/t', 1);
      await disconnect(c);
      const before = b.broker.stats.droppedQueueFull;
      for (let i = 1; i <= 5; i++) await publish('full/t', `m${i}`, 1);
      assert.equal(b.broker.stats.droppedQueueFull - before, 2);
      const again = await connected(b.port, persistent(clientId));
      const got: string[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await again.expect('publish');
        got.push(str(m.payload));
        again.send({ type: 'puback', packetId: m.packetId! });
      }
      assert.deepEqual(got, ['m3', 'm4', 'm5']);
      again.end();
    });

    if (version === 5) {
      test('session expiry: the session is gone once its interval passes', async () => {
        const clientId = id('expiry');
        const c = await connected(b.port, {
          version,
          clientId,
          clean: false,
          properties: { sessionExpiryInterval: 1 },
        });
        await subscribe(c, 'exp/t', 1);
        await disconnect(c);
        const dropped = b.broker.stats.droppedSessionEnded;
        b.broker.publish({ topic: 'exp/t', payload: text('lost with the session'), qos: 1 });
        await delay(1800);
        const { client, connack } = await connectClient(b.port, {
          version,
          clientId,
          clean: false,
          properties: { sessionExpiryInterval: 1 },
        });
        assert.equal(connack.sessionPresent, false);
        assert.equal(b.broker.stats.droppedSessionEnded - dropped, 1, 'the queued message is counted as a drop');
        client.end();
      });

      test('clean start false with session expiry 0 ends the session at disconnect', async () => {
        const clientId = id('zero');
        const c = await connected(b.port, { version, clientId, clean: false });
        await disconnect(c);
        const { client, connack } = await connectClient(b.port, { version, clientId, clean: false });
        assert.equal(connack.sessionPresent, false);
        client.end();
      });

      test('DISCONNECT may shorten but not create a session expiry', async () => {
        const c = await connected(b.port, { version, clientId: id('dx'), clean: false });
        c.send({ type: 'disconnect', properties: { sessionExpiryInterval: 30 } });
        const packets = await c.expectClose();
        assert.deepEqual(
          packets.map((p) => p.type === 'disconnect' && p.reasonCode),
          [0x82],
        );
        const clientId = id('shorten');
        const d = await connected(b.port, persistent(clientId));
        d.send({ type: 'disconnect', properties: { sessionExpiryInterval: 0 } });
        await d.closedPromise;
        const { client, connack } = await connectClient(b.port, persistent(clientId));
        assert.equal(connack.sessionPresent, false);
        client.end();
      });

      test('message expiry counts down while queued; expired messages are dropped', async () => {
        const clientId = id('msgexp');
        const c = await connected(b.port, persistent(clientId));
        await subscribe(c, 'mexp/t', 1);
        await disconnect(c);
        const before = b.broker.stats.droppedExpired;
        await publish('mexp/t', 'short', 1, { messageExpiryInterval: 1 });
        await publish('mexp/t', 'long', 1, { messageExpiryInterval: 100 });
        await delay(1300);
        const again = await connected(b.port, persistent(clientId));
        const m = await again.expect('publish');
        assert.equal(str(m.payload), 'long');
        const left = m.properties?.messageExpiryInterval ?? 0;
        assert.ok(left > 0 && left < 100, `expiry interval ${left} was not counted down`);
        assert.equal(b.broker.stats.droppedExpired - before, 1);
        again.end();
      });
    }
  });
}

describe('05 sessions behind a store', () => {
  class RecordingStore extends MemoryStore {
    readonly changes: Array<[string, StoreOp['op']]> = [];
    protected override apply(op: StoreOp): void {
      this.changes.push(['clientId' in op ? op.clientId : '', op.op]);
      super.apply(op);
    }
  }

  test('a store handed to a new broker brings back offline sessions with their queue; clean sessions never touch it', async () => {
    const store = new RecordingStore();
    const first = await startBroker({ store });
    const persistent = {
      version: 5 as const,
      clientId: 'vehicle',
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    };
    try {
      const c = await connected(first.port, persistent);
      await subscribe(c, 'cmd/vehicle', 1);
      c.send({ type: 'disconnect' });
      await c.closedPromise;
      const clean = await connected(first.port, { version: 5, clientId: 'passer-by' });
      await subscribe(clean, 'cmd/#', 1);
      first.broker.publish({ topic: 'cmd/vehicle', payload: 'update', qos: 1 });
      const m = await clean.expect('publish');
      clean.send({ type: 'puback', packetId: m.packetId! });
      clean.end();
    } finally {
      await first.close();
    }
    assert.ok(store.changes.some(([id, change]) => id === 'vehicle' && change === 'sub'));
    assert.ok(store.changes.some(([id, change]) => id === 'vehicle' && change === 'enqueue'));
    assert.ok(!store.changes.some(([id]) => id === 'passer-by'), 'a clean session reached the store');
    const second = await startBroker({ store });
    try {
      assert.equal(second.broker.stats.sessionsOffline, 1);
      const { client, connack } = await connectClient(second.port, persistent);
      assert.equal(connack.sessionPresent, true);
      assert.equal(str((await client.expect('publish')).payload), 'update');
      client.end();
    } finally {
      await second.close();
    }
  });
});
