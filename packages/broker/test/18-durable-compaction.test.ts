// A running broker compacts its data directory: the store keeps no copy of the sessions' queues and in-flight
// windows (the broker holds them), so its snapshot is written from the broker's own state. Replaying the snapshot
// must give exactly what replaying the log it replaces gave: queued QoS 1/2 in order, in-flight PUBLISH and PUBREL,
// inbound QoS 2 ids, retained messages (one also queued), subscriptions, sessions; and appends after it still count.
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LogStore, type StoreContents } from '../src/index.js';
import { connected, publishQos, startBroker, str, subscribe, text } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';

const tempDir = tempDirs('otalink-compaction-');

/** What a fresh start would load from `dir` now (its segments copied aside, so the running broker is untouched). */
async function replayed(dir: string): Promise<unknown> {
  const copy = tempDir();
  for (const name of readdirSync(dir)) if (name.startsWith('segment-')) copyFileSync(join(dir, name), join(copy, name));
  const store = new LogStore({ dir: copy, lock: false });
  const contents = await store.load();
  await store.close();
  return comparable(contents);
}

/** Contents without store-internal ids and counts: queues as ordered lists of what each entry delivers. */
function comparable(contents: StoreContents): unknown {
  const messageOf = (id: number) => {
    const message = contents.messages.get(id);
    return message === undefined ? undefined : `${message.topic} ${str(message.payload)} q${message.qos}`;
  };
  const sessions = [...contents.sessions.values()]
    .sort((a, b) => a.clientId.localeCompare(b.clientId))
    .map((session) => ({
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      expiresAt: session.expiresAt,
      subscriptions: [...session.subscriptions.values()],
      queue: [...session.queue.values()].map(({ messageId, ...rest }) => ({ ...rest, message: messageOf(messageId) })),
      inflight: [...session.inflight]
        .sort(([a], [b]) => a - b)
        .map(([packetId, entry]) => ({
          packetId,
          state: entry.state,
          message: entry.delivery === undefined ? undefined : messageOf(entry.delivery.messageId),
          qos: entry.delivery?.qos,
        })),
      inboundQos2: [...session.inboundQos2].sort(),
    }));
  const retained = [...contents.retained].sort().map(([topic, id]) => [topic, messageOf(id)]);
  return { sessions, retained, wills: [...contents.wills.keys()].sort() };
}

const persistent = (clientId: string, receiveMaximum?: number) => ({
  version: 5 as const,
  clientId,
  clean: false,
  properties: { sessionExpiryInterval: 3600, receiveMaximum },
});

describe('18 durable broker compaction', () => {
  test('a snapshot written from the broker replays to what the log it replaces held, and appends after it count', async () => {
    const dir = tempDir();
    const b = await startBroker({ dataDir: dir });
    const store = b.broker.store as LogStore;
    try {
      // Offline subscriber: queued QoS 1 and 2, one of them also the retained message of its topic.
      const offline = await connected(b.port, persistent('offline'));
      await subscribe(offline, 'c/#', 2);
      offline.send({ type: 'disconnect' });
      await offline.closedPromise;
      // Online subscriber with a window of 2: two in flight (one moved on to PUBREL), the rest queued.
      const online = await connected(b.port, persistent('online', 2));
      await subscribe(online, 'c/#', 2);
      const pub = await connected(b.port, persistent('pub'));
      await publishQos(pub, 'c/a', 'one', 2, 1);
      await publishQos(pub, 'c/b', 'two', 1, 2, true);
      await publishQos(pub, 'c/a', 'three', 2, 3);
      await publishQos(pub, 'c/b', 'four', 1, 4);
      const first = await online.expect('publish');
      await online.expect('publish');
      online.send({ type: 'pubrec', packetId: first.packetId! });
      await online.expect('pubrel');
      // Inbound QoS 2 waiting for its PUBREL.
      pub.send({
        type: 'publish',
        topic: 'c/a',
        payload: text('five'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 9,
      });
      await pub.expect('pubrec');
      await store.commit();

      const logged = await replayed(dir);
      const compactions = store.counters.compactions;
      await store.compactNow();
      assert.equal(store.counters.compactions, compactions + 1);
      assert.deepEqual(await replayed(dir), logged);
      // Something of every kind is in there (a snapshot that dropped a kind would not match, but check the test).
      const state = logged as { sessions: Array<{ clientId: string; queue: unknown[]; inflight: unknown[] }> };
      const online1 = state.sessions.find((s) => s.clientId === 'online')!;
      assert.equal(online1.inflight.length, 2);
      assert.equal(online1.queue.length, 3);
      assert.equal(state.sessions.find((s) => s.clientId === 'offline')!.queue.length, 5);

      // After the snapshot: acks, a release, new messages. A second compaction must again match the log.
      online.send({ type: 'pubcomp', packetId: first.packetId! });
      const pubrel = { type: 'pubrel' as const, packetId: 9 };
      pub.send(pubrel);
      await pub.expect('pubcomp');
      await publishQos(pub, 'c/b', 'six', 1, 10, true);
      await store.commit();
      const appended = await replayed(dir);
      assert.notDeepEqual(appended, logged);
      await store.compactNow();
      assert.deepEqual(await replayed(dir), appended);
      online.end();
      pub.end();
    } finally {
      await b.close();
    }
  });

  test('compactions started by size while messages flow keep every queued message, in order, across a restart', async () => {
    const dir = tempDir();
    const storeOptions = { segmentBytes: 16 * 1024, compactMinBytes: 32 * 1024 };
    const b = await startBroker({ dataDir: dir, storeOptions });
    const store = b.broker.store as LogStore;
    const kept: string[] = [];
    try {
      // Most of the log dies at once (an online subscriber acknowledges everything); one in ten messages stays
      // queued for an offline one.
      const offline = await connected(b.port, persistent('offline'));
      await subscribe(offline, 'keep/#', 1);
      offline.send({ type: 'disconnect' });
      await offline.closedPromise;
      const online = await connected(b.port, persistent('online'));
      await subscribe(online, '#', 1);
      const acking = (async () => {
        for (;;) online.send({ type: 'puback', packetId: (await online.expect('publish')).packetId! });
      })().catch(() => undefined); // ends when the connection does
      const pub = await connected(b.port, persistent('pub'));
      for (let i = 0; i < 1500; i++) {
        const topic = i % 10 === 0 ? 'keep/x' : 'drop/x';
        if (topic === 'keep/x') kept.push(`m${i}`);
        await publishQos(pub, topic, `m${i}`, 1, (i % 60_000) + 1);
      }
      await store.commit();
      await store.compacted();
      assert.ok(store.counters.compactions >= 1, 'no compaction ran');
      pub.end();
      online.end();
      await acking;
    } finally {
      await b.close();
    }
    const again = await startBroker({ dataDir: dir, storeOptions });
    try {
      assert.equal(again.broker.stats.queuedCurrent, kept.length);
      const offline = await connected(again.port, persistent('offline'));
      const got: string[] = [];
      for (let i = 0; i < kept.length; i++) {
        const packet = await offline.expect('publish');
        got.push(str(packet.payload));
        offline.send({ type: 'puback', packetId: packet.packetId! });
      }
      assert.deepEqual(got, kept);
      offline.end();
    } finally {
      await again.close();
    }
  });
});
