// One contract for every BrokerStore: what goes in through the granular operations comes back from load() after a
// reopen (for the MemoryStore: the same instance handed to a new broker; for the LogStore: a new process reading
// the data directory).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Message } from '../src/index.js';
import { type BrokerStore, LogStore, MemoryStore, type StoredDelivery } from '../src/index.js';
import type { SubscriptionEntry } from '../src/session.js';

interface Harness {
  store: BrokerStore;
  /** Closes (log) and opens the store again, returning it loaded. */
  reopen(): Promise<{ store: BrokerStore; contents: Awaited<ReturnType<BrokerStore['load']>> }>;
  dispose(): Promise<void>;
}

const implementations: Array<{ name: string; open(): Promise<Harness> }> = [
  {
    name: 'MemoryStore',
    async open() {
      const store = new MemoryStore();
      await store.load();
      return {
        store,
        async reopen() {
          return { store, contents: await store.load() };
        },
        async dispose() {},
      };
    },
  },
  {
    name: 'LogStore',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'otalink-contract-'));
      let current = new LogStore({ dir });
      await current.load();
      const harness: Harness = {
        store: current,
        async reopen() {
          await current.close();
          current = new LogStore({ dir });
          const contents = await current.load();
          harness.store = current;
          return { store: current, contents };
        },
        async dispose() {
          await current.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
      return harness;
    },
  },
];

function message(topic: string, payload: string, extra: Partial<Message> = {}): Message {
  return {
    topic,
    payload: new TextEncoder().encode(payload),
    qos: 1,
    retain: false,
    properties: undefined,
    expiresAt: 0,
    origin: 'publisher',
    ...extra,
  };
}

function sub(filter: string, extra: Partial<SubscriptionEntry> = {}): SubscriptionEntry {
  return {
    filter,
    qos: 1,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
    subscriptionId: undefined,
    ...extra,
  };
}

function delivery(store: BrokerStore, m: Message, extra: Partial<StoredDelivery> = {}): StoredDelivery {
  return {
    messageId: store.putMessage(m),
    qos: 1,
    retain: false,
    subscriptionIds: undefined,
    sharedFilter: undefined,
    ...extra,
  };
}

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

for (const implementation of implementations) {
  describe(`store contract: ${implementation.name}`, () => {
    const withStore = (fn: (h: Harness) => Promise<void>) => async () => {
      const harness = await implementation.open();
      try {
        await fn(harness);
      } finally {
        await harness.dispose();
      }
    };

    test(
      'an empty store loads empty',
      withStore(async (h) => {
        const { contents } = await h.reopen();
        assert.equal(contents.sessions.size, 0);
        assert.equal(contents.messages.size, 0);
        assert.equal(contents.retained.size, 0);
        assert.equal(contents.wills.size, 0);
      }),
    );

    test(
      'sessions with expiry and subscriptions with their options come back; removed ones do not',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('car-1', 3600, 0);
        s.putSession('car-2', 60, 1_700_000_000_000);
        s.putSession('gone', 60, 0);
        s.addSubscription('car-1', sub('ota/car-1/#', { qos: 2, noLocal: true, subscriptionId: 7, retainHandling: 1 }));
        s.addSubscription('car-1', sub('$share/g/fleet/+', { retainAsPublished: true }));
        s.addSubscription('car-1', sub('tmp/x'));
        s.removeSubscription('car-1', 'tmp/x');
        s.putSession('car-1', 7200, 1_800_000_000_000);
        s.deleteSession('gone');
        await s.commit();
        const { contents } = await h.reopen();
        assert.deepEqual([...contents.sessions.keys()].sort(), ['car-1', 'car-2']);
        const car1 = contents.sessions.get('car-1')!;
        assert.equal(car1.expiryInterval, 7200);
        assert.equal(car1.expiresAt, 1_800_000_000_000);
        assert.equal(contents.sessions.get('car-2')!.expiresAt, 1_700_000_000_000);
        assert.deepEqual(
          [...car1.subscriptions.values()],
          [
            sub('ota/car-1/#', { qos: 2, noLocal: true, subscriptionId: 7, retainHandling: 1 }),
            sub('$share/g/fleet/+', { retainAsPublished: true }),
          ],
        );
      }),
    );

    test(
      'a message queued for two sessions is stored once and forgotten when both are done with it',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('a', 60, 0);
        s.putSession('b', 60, 0);
        const m = message('ota/cmd', 'update', {
          properties: { correlationData: new Uint8Array([1, 2]), userProperties: [['k', 'v']] },
        });
        const ea = s.newEntryId();
        const eb = s.newEntryId();
        s.enqueue('a', ea, delivery(s, m));
        s.enqueue('b', eb, delivery(s, m, { qos: 2, subscriptionIds: [3, 4] }));
        assert.equal(s.putMessage(m), m.storeId, 'a message is written once');
        await s.commit();
        assert.equal(s.size().messages, 1);
        let { store, contents } = await h.reopen();
        assert.equal(contents.messages.size, 1);
        const stored = contents.messages.get([...contents.sessions.get('a')!.queue.values()][0]!.messageId)!;
        assert.equal(stored.topic, 'ota/cmd');
        assert.equal(text(stored.payload), 'update');
        assert.deepEqual(stored.properties?.correlationData, new Uint8Array([1, 2]));
        assert.deepEqual(stored.properties?.userProperties, [['k', 'v']]);
        assert.equal(stored.origin, 'publisher');
        assert.deepEqual(contents.sessions.get('b')!.queue.get(eb), {
          messageId: stored.storeId,
          qos: 2,
          retain: false,
          subscriptionIds: [3, 4],
          sharedFilter: undefined,
        });
        store.dequeue('a', ea);
        await store.commit();
        ({ store, contents } = await h.reopen());
        assert.equal(contents.sessions.get('a')!.queue.size, 0);
        assert.equal(contents.messages.size, 1);
        store.dequeue('b', eb);
        await store.commit();
        ({ store, contents } = await h.reopen());
        assert.equal(contents.messages.size, 0);
        assert.equal(store.size().messages, 0);
      }),
    );

    test(
      'queue order is kept; ids issued after a reopen never collide with stored ones',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('q', 60, 0);
        const entries: number[] = [];
        for (let i = 0; i < 20; i++) {
          const entry = s.newEntryId();
          entries.push(entry);
          s.enqueue('q', entry, delivery(s, message('t', `m${i}`)));
        }
        s.dequeue('q', entries[3]!);
        await s.commit();
        const { store, contents } = await h.reopen();
        const queue = contents.sessions.get('q')!.queue;
        const payloads = [...queue.values()].map((d) => text(contents.messages.get(d.messageId)?.payload));
        assert.deepEqual(
          payloads,
          Array.from({ length: 20 }, (_, i) => `m${i}`).filter((p) => p !== 'm3'),
        );
        const known = new Set([...queue.keys(), ...contents.messages.keys()]);
        const fresh = store.newEntryId();
        assert.ok(!known.has(fresh) && fresh > Math.max(...known), `id ${fresh} reuses a stored one`);
      }),
    );

    test(
      'outbound in flight: queue entry moves into the window, PUBREC keeps only the PUBREL, completion ends it',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('c', 60, 0);
        const m1 = message('t/1', 'one');
        const m2 = message('t/2', 'two', { qos: 2 });
        const e1 = s.newEntryId();
        s.enqueue('c', e1, delivery(s, m1));
        s.setInflight('c', 10, delivery(s, m1), e1);
        s.setInflight('c', 11, delivery(s, m2, { qos: 2 }), undefined);
        s.setInflight('c', 12, delivery(s, message('t/3', 'three')), undefined);
        s.releaseInflight('c', 11);
        s.completeInflight('c', 12);
        await s.commit();
        let { store, contents } = await h.reopen();
        const c = contents.sessions.get('c')!;
        assert.equal(c.queue.size, 0, 'the queue entry moved, it was not copied');
        assert.deepEqual([...c.inflight.keys()].sort(), [10, 11]);
        assert.equal(c.inflight.get(10)!.state, 'publish');
        assert.equal(text(contents.messages.get(c.inflight.get(10)!.delivery!.messageId)?.payload), 'one');
        assert.deepEqual(c.inflight.get(11), { state: 'pubrel', delivery: undefined });
        assert.equal(contents.messages.size, 1, 'released and completed messages are not kept');
        store.completeInflight('c', 10);
        store.completeInflight('c', 11);
        await store.commit();
        ({ contents } = await h.reopen());
        assert.equal(contents.sessions.get('c')!.inflight.size, 0);
        assert.equal(contents.messages.size, 0);
      }),
    );

    test(
      'inbound QoS 2 ids: PUBREC sent is kept until PUBREL',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('p', 60, 0);
        s.addInboundQos2('p', 1);
        s.addInboundQos2('p', 2);
        s.addInboundQos2('p', 3);
        s.removeInboundQos2('p', 2);
        await s.commit();
        const { contents } = await h.reopen();
        assert.deepEqual([...contents.sessions.get('p')!.inboundQos2].sort(), [1, 3]);
      }),
    );

    test(
      'retained messages: set, replaced, cleared',
      withStore(async (h) => {
        const s = h.store;
        s.setRetained(message('fleet/a', 'v1', { retain: true }));
        s.setRetained(message('fleet/a', 'v2', { retain: true, qos: 0 }));
        s.setRetained(message('fleet/b', 'b', { retain: true, expiresAt: 1_900_000_000_000 }));
        s.setRetained(message('fleet/c', 'c', { retain: true }));
        s.clearRetained('fleet/c');
        await s.commit();
        const { contents } = await h.reopen();
        assert.deepEqual([...contents.retained.keys()].sort(), ['fleet/a', 'fleet/b']);
        const a = contents.messages.get(contents.retained.get('fleet/a')!)!;
        assert.equal(text(a.payload), 'v2');
        assert.equal(a.qos, 0);
        assert.equal(contents.messages.get(contents.retained.get('fleet/b')!)!.expiresAt, 1_900_000_000_000);
        assert.equal(contents.messages.size, 2, 'replaced and cleared retained messages are not kept');
      }),
    );

    test(
      'delayed wills: kept with identity and deadline until deleted',
      withStore(async (h) => {
        const s = h.store;
        const identity = { clientId: 'w1', username: 'u', protocolVersion: 5 as const, remoteAddress: '127.0.0.1' };
        s.putWill({
          clientId: 'w1',
          will: {
            topic: 'status/w1',
            payload: new Uint8Array([0, 255]),
            qos: 1,
            retain: true,
            properties: { willDelayInterval: 30, correlationData: new Uint8Array([7]) },
          },
          identity,
          deadline: 1_750_000_000_000,
        });
        s.putWill({
          clientId: 'w2',
          will: { topic: 'status/w2', payload: new Uint8Array(), qos: 0, retain: false },
          identity: { ...identity, clientId: 'w2' },
          deadline: 1,
        });
        s.deleteWill('w2');
        await s.commit();
        const { contents } = await h.reopen();
        assert.deepEqual([...contents.wills.keys()], ['w1']);
        const w1 = contents.wills.get('w1')!;
        assert.equal(w1.deadline, 1_750_000_000_000);
        assert.deepEqual(w1.identity, identity);
        assert.deepEqual(w1.will.payload, new Uint8Array([0, 255]));
        assert.deepEqual(w1.will.properties?.correlationData, new Uint8Array([7]));
        assert.equal(w1.will.retain, true);
      }),
    );

    test(
      'deleting a session drops its queue, window and QoS 2 state, and messages only it held',
      withStore(async (h) => {
        const s = h.store;
        s.putSession('x', 60, 0);
        s.putSession('y', 60, 0);
        const shared = message('t', 'shared');
        s.enqueue('x', s.newEntryId(), delivery(s, shared));
        s.enqueue('y', s.newEntryId(), delivery(s, shared));
        s.enqueue('x', s.newEntryId(), delivery(s, message('t', 'only-x')));
        s.setInflight('x', 5, delivery(s, message('t', 'inflight-x')), undefined);
        s.addInboundQos2('x', 9);
        s.deleteSession('x');
        await s.commit();
        const { contents } = await h.reopen();
        assert.deepEqual([...contents.sessions.keys()], ['y']);
        assert.deepEqual(
          [...contents.messages.values()].map((m) => text(m.payload)),
          ['shared'],
        );
      }),
    );

    test(
      'operations on sessions that do not exist are ignored, not failures',
      withStore(async (h) => {
        const s = h.store;
        const before = s.operations;
        s.addSubscription('nobody', sub('a'));
        s.dequeue('nobody', 12345);
        s.completeInflight('nobody', 1);
        s.removeInboundQos2('nobody', 1);
        s.deleteWill('nobody');
        s.clearRetained('never/set');
        assert.equal(s.operations - before, 6, 'every operation is counted');
        await s.commit();
        const { contents } = await h.reopen();
        assert.equal(contents.sessions.size, 0);
      }),
    );

    test(
      'commit resolves for an idle store and after many operations; flush is the same promise kind',
      withStore(async (h) => {
        const s = h.store;
        await s.commit();
        s.putSession('many', 60, 0);
        for (let i = 0; i < 500; i++) s.enqueue('many', s.newEntryId(), delivery(s, message('t', `${i}`)));
        await Promise.all([s.commit(), s.flush()]);
        const { contents } = await h.reopen();
        assert.equal(contents.sessions.get('many')!.queue.size, 500);
        assert.equal(s.writable, true);
        assert.equal(s.refusal, undefined);
      }),
    );
  });
}
