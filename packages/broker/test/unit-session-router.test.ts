// The pure layers without sockets: Session (window, queue, drop policies, expiry, resume), Router (merging,
// no local, shared round-robin, retained matching) and DeadlineTicker, driven with fake outlets and clocks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InflightWindow } from '../src/inflight-window.js';
import { DeadlineTicker } from '../src/keepalive.js';
import type { Delivery, Message } from '../src/message.js';
import { RetainedStore } from '../src/retained.js';
import { Router } from '../src/router.js';
import {
  newSessionState,
  type Outlet,
  type QueueLimits,
  queueOf,
  Session,
  type SessionState,
  type SubscriptionEntry,
} from '../src/session.js';
import { type BrokerStats, createStats } from '../src/stats.js';
import { MemoryStore } from '../src/store/memory.js';

function newSession(state: SessionState, stats: BrokerStats, limits: QueueLimits): Session {
  return new Session(state, { stats, limits, store: new MemoryStore() });
}

function message(topic: string, qos: 0 | 1 | 2 = 1, extra: Partial<Message> = {}): Message {
  return {
    topic,
    payload: new Uint8Array([1]),
    qos,
    retain: false,
    properties: undefined,
    expiresAt: 0,
    origin: undefined,
    ...extra,
  };
}

function delivery(m: Message): Delivery {
  return { message: m, qos: m.qos, retain: false, subscriptionIds: undefined };
}

class FakeOutlet implements Outlet {
  readonly protocolVersion = 5 as const;
  sent: Array<{ topic: string; packetId: number; dup: boolean }> = [];
  pubrels: number[] = [];
  stuck = false;
  maxTopicLength = Number.POSITIVE_INFINITY;
  constructor(readonly sendWindow: number) {}
  congested(): boolean {
    return this.stuck;
  }
  sendPublish(d: Delivery, _t: unknown, packetId: number, dup: boolean): boolean {
    if (d.message.topic.length > this.maxTopicLength) return false;
    this.sent.push({ topic: d.message.topic, packetId, dup });
    return true;
  }
  sendPubrel(packetId: number): void {
    this.pubrels.push(packetId);
  }
}

/** A persistent session 'c' with room for 10 queued messages, dropping the oldest. */
function persistentSession(): Session {
  return newSession(newSessionState('c', 60), createStats(0), {
    maxQueuedMessages: 10,
    maxQueuedBytes: 0,
    queueDropPolicy: 'oldest',
  });
}

const entry = (filter: string, extra: Partial<SubscriptionEntry> = {}): SubscriptionEntry => ({
  filter,
  qos: 2,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
  subscriptionId: undefined,
  ...extra,
});

describe('Session', () => {
  test('sessions start without in-flight and inbound QoS 2 collections of their own, and never share them', () => {
    const stats = createStats(0);
    const limits = { maxQueuedMessages: 10, maxQueuedBytes: 0, queueDropPolicy: 'oldest' as const };
    const a = newSession(newSessionState('a', 0), stats, limits);
    const b = newSession(newSessionState('b', 0), stats, limits);
    // Idle sessions hold the shared empty collections, which refuse writes rather than leak entries across sessions.
    assert.equal(a.state.inflight, b.state.inflight);
    assert.throws(() => a.state.inflight.set(1, { state: 'pubrel', delivery: undefined }));
    assert.throws(() => a.state.inboundQos2.add(1));
    const outlet = new FakeOutlet(5);
    a.outlet = outlet;
    a.offer(delivery(message('t')), undefined, 0);
    a.receivedQos2(7);
    assert.equal(a.state.inflight.size, 1);
    assert.equal(a.hasInboundQos2(7), true);
    assert.equal(b.state.inflight.size, 0);
    assert.equal(b.hasInboundQos2(7), false);
    assert.equal(a.released(outlet.sent[0]!.packetId), true);
    assert.deepEqual(outlet.pubrels, [outlet.sent[0]!.packetId]);
    assert.equal(a.releaseQos2(7), true);
    assert.equal(b.releaseQos2(7), false);
  });

  test('sessions start without a queue of their own, and never share one', () => {
    const stats = createStats(0);
    const limits = { maxQueuedMessages: 10, maxQueuedBytes: 0, queueDropPolicy: 'oldest' as const };
    const a = newSession(newSessionState('a', 60), stats, limits);
    const b = newSession(newSessionState('b', 60), stats, limits);
    assert.equal(a.state.queue, b.state.queue);
    assert.throws(() => a.state.queue.push(delivery(message('t'))));
    // Offline: QoS 1 is queued, in a queue of a's own.
    a.offer(delivery(message('queued')), undefined, 0);
    assert.notEqual(a.state.queue, b.state.queue);
    assert.deepEqual(
      [...a.state.queue].map((d) => d.message.topic),
      ['queued'],
    );
    assert.equal(b.state.queue.length, 0);
    assert.equal(stats.queuedCurrent, 1);
    a.discard();
    b.discard();
    assert.equal(stats.queuedCurrent, 0);
  });

  test('honours the send window and drains the queue as acknowledgements arrive', () => {
    const stats = createStats(0);
    const s = newSession(newSessionState('c', 60), stats, {
      maxQueuedMessages: 10,
      maxQueuedBytes: 0,
      queueDropPolicy: 'oldest',
    });
    const outlet = new FakeOutlet(2);
    s.outlet = outlet;
    for (const t of ['a', 'b', 'c', 'd']) s.offer(delivery(message(t)), undefined, 0);
    assert.deepEqual(
      outlet.sent.map((x) => x.topic),
      ['a', 'b'],
    );
    assert.equal(stats.queuedCurrent, 2);
    assert.equal(s.complete(outlet.sent[0]!.packetId, 0), true);
    assert.deepEqual(
      outlet.sent.map((x) => x.topic),
      ['a', 'b', 'c'],
    );
    assert.equal(s.complete(999, 0), false);
    assert.equal(stats.queuedCurrent, 1);
  });

  test('QoS 0 is dropped (and counted) for a congested outlet and never queued offline', () => {
    const stats = createStats(0);
    const s = newSession(newSessionState('c', 60), stats, {
      maxQueuedMessages: 10,
      maxQueuedBytes: 0,
      queueDropPolicy: 'oldest',
    });
    s.offer(delivery(message('offline', 0)), undefined, 0);
    assert.equal(s.state.queue.length, 0);
    const outlet = new FakeOutlet(5);
    outlet.stuck = true;
    s.outlet = outlet;
    s.offer(delivery(message('stuck', 0)), undefined, 0);
    assert.equal(stats.droppedSlowSubscriber, 1);
    assert.equal(outlet.sent.length, 0);
  });

  for (const policy of ['oldest', 'newest'] as const) {
    test(`a full queue drops the ${policy} message`, () => {
      const stats = createStats(0);
      const s = newSession(newSessionState('c', 60), stats, {
        maxQueuedMessages: 2,
        maxQueuedBytes: 0,
        queueDropPolicy: policy,
      });
      for (const t of ['1', '2', '3']) s.offer(delivery(message(t)), undefined, 0);
      assert.equal(stats.droppedQueueFull, 1);
      assert.deepEqual(
        [...s.state.queue].map((d) => d.message.topic),
        policy === 'oldest' ? ['2', '3'] : ['1', '2'],
      );
    });
  }

  for (const policy of ['oldest', 'newest'] as const) {
    test(`a queue at its byte limit drops the ${policy} messages until the new one fits`, () => {
      const stats = createStats(0);
      const s = newSession(newSessionState('c', 60), stats, {
        maxQueuedMessages: 100,
        maxQueuedBytes: 10,
        queueDropPolicy: policy,
      });
      const sized = (topic: string, bytes: number) => delivery(message(topic, 1, { payload: new Uint8Array(bytes) }));
      for (const [t, n] of [
        ['a', 4],
        ['b', 4],
        ['c', 2],
      ] as const)
        s.offer(sized(t, n), undefined, 0);
      assert.equal(s.state.queue.bytes, 10);
      s.offer(sized('d', 6), undefined, 0);
      const topics = [...s.state.queue].map((d) => d.message.topic);
      if (policy === 'oldest') {
        assert.deepEqual(topics, ['c', 'd'], 'a and b make room');
        assert.equal(stats.droppedQueueFull, 2);
        assert.equal(s.state.queue.bytes, 8);
      } else {
        assert.deepEqual(topics, ['a', 'b', 'c']);
        assert.equal(stats.droppedQueueFull, 1);
        assert.equal(s.state.queue.bytes, 10);
      }
      assert.equal(stats.queuedCurrent, topics.length);
      s.offer(sized('huge', 11), undefined, 0);
      assert.deepEqual(
        [...s.state.queue].map((d) => d.message.topic),
        topics,
        'a message over the limit on its own goes; the queue stays',
      );
      const outlet = new FakeOutlet(10);
      s.resume(outlet, 0);
      assert.equal(s.state.queue.length, 0);
      assert.equal(s.state.queue.bytes, 0, 'the pump counts what it takes out');
    });
  }

  test('queued bytes follow restores, refusals and the end of a session', () => {
    const stats = createStats(0);
    const state = newSessionState('c', 60);
    queueOf(state).push(delivery(message('kept', 1, { payload: new Uint8Array(5) })));
    queueOf(state).push(delivery(message('refused', 1, { payload: new Uint8Array(7) })));
    assert.equal(state.queue.bytes, 12, 'pushed by a restore from the store');
    const s = newSession(state, stats, { maxQueuedMessages: 10, maxQueuedBytes: 100, queueDropPolicy: 'oldest' });
    assert.equal(
      s.dropRefused((d) => d.message.topic === 'refused', false),
      1,
    );
    assert.equal(s.state.queue.bytes, 5);
    s.discard();
    assert.equal(s.state.queue.bytes, 0);
  });

  test('expired messages are dropped when they would be sent, and first when the queue is full', () => {
    const stats = createStats(0);
    const s = newSession(newSessionState('c', 60), stats, {
      maxQueuedMessages: 2,
      maxQueuedBytes: 0,
      queueDropPolicy: 'newest',
    });
    s.offer(delivery(message('old', 1, { expiresAt: 1000 })), undefined, 0);
    s.offer(delivery(message('keep')), undefined, 0);
    s.offer(delivery(message('new')), undefined, 2000);
    assert.equal(stats.droppedExpired, 1);
    assert.equal(stats.droppedQueueFull, 0);
    const outlet = new FakeOutlet(10);
    s.resume(outlet, 2000);
    assert.deepEqual(
      outlet.sent.map((x) => x.topic),
      ['keep', 'new'],
    );
  });

  test('resume resends in-flight PUBLISH with DUP and PUBREL for released ones', () => {
    const s = persistentSession();
    const first = new FakeOutlet(10);
    s.outlet = first;
    s.offer(delivery(message('q1', 1)), undefined, 0);
    s.offer(delivery(message('q2', 2)), undefined, 0);
    const [a, b] = first.sent;
    assert.equal(s.released(b!.packetId), true);
    s.outlet = undefined;
    const second = new FakeOutlet(10);
    s.resume(second, 0);
    assert.deepEqual(second.sent, [{ topic: 'q1', packetId: a!.packetId, dup: true }]);
    assert.deepEqual(second.pubrels, [b!.packetId]);
  });

  test('a message the outlet cannot take (too large) does not occupy the window', () => {
    const s = persistentSession();
    const outlet = new FakeOutlet(1);
    outlet.maxTopicLength = 3;
    s.outlet = outlet;
    s.offer(delivery(message('too-long')), undefined, 0);
    s.offer(delivery(message('ok')), undefined, 0);
    assert.deepEqual(
      outlet.sent.map((x) => x.topic),
      ['ok'],
    );
  });
});

describe('InflightWindow', () => {
  test('keeps send order through PUBREL and replacement in place, and reads like a ReadonlyMap', () => {
    const w = new InflightWindow();
    const [d1, d2, d3] = ['a', 'b', 'c'].map((t) => delivery(message(t)));
    w.publish(7, d1!);
    w.publish(70_000 - 65_536 + 7, d2!); // 4 471: the same slot as 7 in a small table
    w.publish(3, d3!);
    w.pubrel(7);
    assert.equal(w.size, 3);
    assert.deepEqual([...w.keys()], [7, 4471, 3]);
    assert.deepEqual(
      [...w].map(([id, e]) => [id, e.state, e.delivery?.message.topic]),
      [
        [7, 'pubrel', 'a'],
        [4471, 'publish', 'b'],
        [3, 'publish', 'c'],
      ],
    );
    w.set(4471, { state: 'pubrel', delivery: undefined });
    assert.deepEqual([...w.keys()], [7, 4471, 3], 'set on an id in the window keeps its place');
    assert.deepEqual(
      [...w.values()].map((e) => e.state),
      ['pubrel', 'pubrel', 'publish'],
    );
    const seen: number[] = [];
    w.forEach((_e, id, map) => {
      assert.equal(map, w);
      seen.push(id);
    });
    assert.deepEqual(seen, [7, 4471, 3]);
    assert.equal(w.get(3)?.delivery, d3);
    assert.equal(w.get(4), undefined);
    assert.equal(w.has(4471), true);
    // Walking while deleting what is visited (a resend the client can no longer take).
    for (const [id] of w) assert.equal(w.delete(id), true);
    assert.equal(w.size, 0);
    assert.equal(w.delete(3), false);
    w.publish(9, d1!);
    assert.deepEqual([...w.keys()], [9]);
    w.clear();
    assert.deepEqual([...w.entries()], []);
  });

  test("a session's stuck message keeps its id and place while 100 000 others pass through the window", () => {
    const s = persistentSession();
    const first = new FakeOutlet(4);
    s.outlet = first;
    s.offer(delivery(message('stuck')), undefined, 0);
    const stuck = first.sent[0]!.packetId;
    for (let i = 0; i < 100_000; i++) {
      s.offer(delivery(message(`m${i}`)), undefined, 0);
      const last = first.sent[first.sent.length - 1]!;
      assert.equal(last.topic, `m${i}`);
      assert.notEqual(last.packetId, stuck);
      // Every third goes through PUBREC (PUBREL out) before its PUBCOMP.
      if (i % 3 === 2) assert.equal(s.released(last.packetId), true);
      assert.equal(s.complete(last.packetId, 0), true);
    }
    assert.equal(first.pubrels.length, 33_333);
    assert.equal(s.state.inflight.size, 1);
    s.offer(delivery(message('after')), undefined, 0);
    s.outlet = undefined;
    const second = new FakeOutlet(4);
    s.resume(second, 0);
    assert.deepEqual(
      second.sent.map((x) => [x.topic, x.dup]),
      [
        ['stuck', true],
        ['after', true],
      ],
    );
    assert.equal(second.sent[0]!.packetId, stuck);
  });

  test('resuming drops an in-flight message the new connection cannot take, and resends the rest in order', () => {
    const s = persistentSession();
    const first = new FakeOutlet(10);
    s.outlet = first;
    for (const t of ['a', 'too-long', 'b']) s.offer(delivery(message(t)), undefined, 0);
    s.outlet = undefined;
    const second = new FakeOutlet(10);
    second.maxTopicLength = 3;
    s.resume(second, 0);
    assert.deepEqual(
      second.sent.map((x) => x.topic),
      ['a', 'b'],
    );
    assert.equal(s.state.inflight.size, 2);
  });
});

describe('Router', () => {
  const session = (id: string, online = true) => {
    const s = newSession(newSessionState(id, 0), createStats(0), {
      maxQueuedMessages: 10,
      maxQueuedBytes: 0,
      queueDropPolicy: 'oldest',
    });
    if (online) s.outlet = new FakeOutlet(10);
    return s;
  };

  test('merges overlapping subscriptions of one session and honours no local', () => {
    const router = new Router();
    const a = session('a');
    router.subscribe(a, entry('x/+', { qos: 0, subscriptionId: 1 }));
    router.subscribe(a, entry('x/#', { qos: 1, subscriptionId: 2 }));
    const b = session('b');
    router.subscribe(b, entry('x/y', { noLocal: true }));
    const got: Array<[string, Delivery]> = [];
    const n = router.route(message('x/y', 2, { origin: 'b' }), (s, d) => got.push([s.clientId, d]));
    assert.equal(n, 1);
    assert.equal(got[0]![0], 'a');
    assert.equal(got[0]![1].qos, 1);
    assert.deepEqual([...(got[0]![1].subscriptionIds ?? [])].sort(), [1, 2]);
  });

  test('merges per session beyond a handful of recipients too, shared picks last, and routes again from a delivery', () => {
    const router = new Router();
    // 20 sessions (past the few a scan looks through), each matching through two filters.
    const sessions = Array.from({ length: 20 }, (_, i) => session(`s${i}`));
    for (const s of sessions) {
      router.subscribe(s, entry('fan/+', { qos: 0, subscriptionId: 1 }));
      router.subscribe(s, entry('fan/#', { qos: 1, subscriptionId: 2 }));
    }
    router.subscribe(session('member'), entry('$share/g/fan/#'));
    const got: Array<[string, Delivery]> = [];
    const n = router.route(message('fan/out'), (s, d) => got.push([s.clientId, d]));
    assert.equal(n, 21);
    assert.deepEqual(
      got.map(([id]) => id),
      [...sessions.map((s) => s.clientId), 'member'],
    );
    for (const [, d] of got.slice(0, 20)) {
      assert.equal(d.qos, 1);
      assert.deepEqual([...(d.subscriptionIds ?? [])].sort(), [1, 2]);
    }
    // A delivery that routes another message while the first is being delivered gets its own recipients.
    const nested: string[] = [];
    let inner = 0;
    router.route(message('fan/a'), (s) => {
      nested.push(`a:${s.clientId}`);
      if (nested.length === 1) inner = router.route(message('fan/b'), (t) => nested.push(`b:${t.clientId}`));
    });
    assert.equal(inner, 21);
    assert.equal(nested.filter((x) => x.startsWith('a:')).length, 21);
    assert.equal(nested.filter((x) => x.startsWith('b:')).length, 21);
  });

  test('shared groups pick members round-robin, skipping offline ones while any is online', () => {
    const router = new Router();
    const members = [session('m1'), session('m2', false), session('m3')];
    for (const m of members) router.subscribe(m, entry('$share/g/jobs/#'));
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) router.route(message('jobs/1'), (s) => picked.push(s.clientId));
    assert.deepEqual(picked, ['m1', 'm3', 'm1', 'm3']);
    assert.equal(router.subscriptionCount, 3);
    for (const m of members) router.unsubscribe(m, '$share/g/jobs/#');
    assert.equal(
      router.route(message('jobs/1'), () => {}),
      0,
    );
    assert.equal(router.subscriptionCount, 0);
  });

  test('retained messages: stored, cleared by an empty payload, matched by wildcards, dropped when expired', () => {
    const router = new Router();
    router.retain(message('r/a', 1, { retain: true }));
    router.retain(message('r/b', 1, { retain: true, expiresAt: 1000 }));
    router.retain(message('$SYS/x', 0, { retain: true }));
    assert.deepEqual(
      router.retainedMatching('r/+', 0).map((m) => m.topic),
      ['r/a', 'r/b'],
    );
    assert.deepEqual(
      router.retainedMatching('#', 2000).map((m) => m.topic),
      ['r/a'],
    );
    assert.equal(router.retained.has('r/b'), false);
    router.retain(message('r/a', 1, { retain: true, payload: new Uint8Array(0) }));
    assert.deepEqual(router.retainedMatching('r/a', 0), []);
  });
});

describe('DeadlineTicker', () => {
  test('expires due items once, on a fake clock', () => {
    const ticker = new DeadlineTicker(1000);
    const fired: string[] = [];
    const item = (name: string, deadline: number) => ({ deadline, expire: () => fired.push(name) });
    ticker.add(item('early', 100));
    ticker.add(item('late', 500));
    ticker.add(item('never', 0));
    ticker.tick(99);
    assert.deepEqual(fired, []);
    ticker.tick(100);
    ticker.tick(200);
    assert.deepEqual(fired, ['early']);
    ticker.tick(1000);
    assert.deepEqual(fired, ['early', 'late']);
    assert.equal(ticker.size, 1);
  });

  test('a late turn of the interval (a stall) judges nothing; the next one does, however late', () => {
    const ticker = new DeadlineTicker(500);
    const fired: number[] = [];
    ticker.add({ deadline: 1000, expire: (now) => fired.push(now) });
    ticker.onInterval(500);
    ticker.onInterval(1_000);
    assert.deepEqual(fired, [1_000], 'on time: judged');
    ticker.add({ deadline: 2_000, expire: (now) => fired.push(now) });
    ticker.onInterval(3_000); // 2 s after the last turn of a 500 ms interval: a stall
    assert.deepEqual(fired, [1_000], 'the reads that waited in the stall come first');
    ticker.onInterval(3_500);
    assert.deepEqual(fired, [1_000, 3_500]);
    ticker.add({ deadline: 4_000, expire: (now) => fired.push(now) });
    ticker.onInterval(6_000);
    ticker.onInterval(8_000); // late again, but the turn before judged nothing: a broker lagging for good
    assert.deepEqual(fired, [1_000, 3_500, 8_000]);
  });
});

describe('RetainedStore', () => {
  const topics = (messages: Message[]) => messages.map((m) => m.topic).sort();

  test('wildcard filters walk the level index with MQTT matching rules', () => {
    const store = new RetainedStore();
    for (const t of ['a', 'a/b', 'a/b/c', 'a/x/c', '/lead', '$SYS/up', 'b']) store.set(message(t));
    assert.deepEqual(topics(store.match('a/#', 0)), ['a', 'a/b', 'a/b/c', 'a/x/c']);
    assert.deepEqual(topics(store.match('a/+/c', 0)), ['a/b/c', 'a/x/c']);
    assert.deepEqual(topics(store.match('+', 0)), ['a', 'b']);
    assert.deepEqual(topics(store.match('+/lead', 0)), ['/lead']);
    assert.deepEqual(topics(store.match('#', 0)), ['/lead', 'a', 'a/b', 'a/b/c', 'a/x/c', 'b']);
    assert.deepEqual(topics(store.match('$SYS/#', 0)), ['$SYS/up']);
    assert.deepEqual(topics(store.match('a/b', 0)), ['a/b']);
  });

  test('deleting prunes the branch; expired messages are removed when matched', () => {
    const store = new RetainedStore();
    store.set(message('x/y/z'));
    store.set(message('x/old', 1, { expiresAt: 10 }));
    assert.equal(store.delete('x/y/z'), true);
    assert.equal(store.delete('x/y/z'), false);
    assert.deepEqual(topics(store.match('x/#', 100)), []);
    assert.equal(store.size, 0);
  });
});
