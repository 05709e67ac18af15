// Exactly-once for QoS 2 while the durable store fails: a QoS 2 PUBLISH whose commit fails is delivered to nobody
// (online subscribers, the queue of an offline one, a clean session), the publisher hears 0x97 (5.0) or nothing
// (3.1.1), and its resend once the disk has room is delivered exactly once, before and after a restart. Held QoS 2
// messages of one publisher keep their order.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type LogStore, nodeStoreFs, type StoreFs } from '../src/index.js';
import {
  connected,
  delay,
  persistent,
  type RawClient,
  str,
  subscribe,
  text,
  withBroker,
} from './support/raw-client.js';
import { fillableDisk, heldSyncs } from './support/store-fs.js';
import { tempDirs } from './support/temp-dirs.js';

const dataDir = tempDirs('otalink-qos2-failure-');

/** Receives one QoS 2 PUBLISH and completes its exchange; returns the payload. */
async function receiveQos2(client: RawClient): Promise<string> {
  const p = await client.expect('publish', 3000);
  assert.equal(p.qos, 2);
  client.send({ type: 'pubrec', packetId: p.packetId! });
  await client.expect('pubrel');
  client.send({ type: 'pubcomp', packetId: p.packetId! });
  return str(p.payload);
}

function publish2(client: RawClient, topic: string, payload: string, packetId: number, dup = false): void {
  client.send({ type: 'publish', topic, payload: text(payload), qos: 2, retain: false, dup, packetId });
}

describe('19 durable broker: QoS 2 while the store fails', () => {
  for (const version of [5, 4] as const) {
    test(`MQTT ${version === 4 ? '3.1.1' : '5.0'} publisher: a QoS 2 message whose write failed is delivered to nobody; its resend after recovery exactly once`, async () => {
      const dir = dataDir();
      const disk = fillableDisk();
      await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
        const away = await connected(b.port, persistent('away'));
        await subscribe(away, 'q/#', 2);
        away.send({ type: 'disconnect' });
        await away.closedPromise;
        // A window of one: a packet id the failed message took and kept would stall every later delivery.
        const live = await connected(b.port, {
          ...persistent('live'),
          properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 },
        });
        await subscribe(live, 'q/#', 2);
        const clean = await connected(b.port, { version: 4, clientId: 'clean' });
        await subscribe(clean, 'q/#', 2);
        let pub = await connected(b.port, persistent('pub', version));

        disk.fill();
        publish2(pub, 'q/cmd', 'once', 7);
        if (version === 5) assert.equal((await pub.expect('pubrec')).reasonCode, 0x97);
        else assert.ok(await pub.silentFor(400), '3.1.1: PUBREC for a message the store did not keep');
        assert.ok(await live.silentFor(300), 'a persistent subscriber got a message the store did not keep');
        assert.ok(await clean.silentFor(10), 'a clean subscriber got a message the store did not keep');
        assert.equal(b.broker.stats.queuedCurrent, 0, 'the offline session queued a message the store did not keep');

        disk.free();
        const deadline = Date.now() + 5000;
        while (!b.broker.store.writable && Date.now() < deadline) await delay(50);
        assert.equal(b.broker.store.writable, true);
        if (version === 4) {
          // 3.1.1 resends what has no PUBREC when it reconnects, with DUP set.
          pub.end();
          await pub.closedPromise;
          pub = await connected(b.port, persistent('pub', version));
        }
        publish2(pub, 'q/cmd', 'once', 7, version === 4);
        assert.equal((await pub.expect('pubrec')).reasonCode ?? 0, 0);
        pub.send({ type: 'pubrel', packetId: 7 });
        await pub.expect('pubcomp');
        assert.equal(await receiveQos2(live), 'once');
        assert.equal(await receiveQos2(clean), 'once');
        assert.ok(await live.silentFor(300), 'a second copy reached the persistent subscriber');
        assert.ok(await clean.silentFor(10), 'a second copy reached the clean subscriber');
        assert.equal(b.broker.stats.queuedCurrent, 1);
        pub.end();
        live.end();
        clean.end();
      });
      // After a restart: the offline subscriber has it once, the one that completed the exchange nothing more.
      await withBroker({ dataDir: dir }, async (b) => {
        const away = await connected(b.port, persistent('away'));
        assert.equal(await receiveQos2(away), 'once');
        assert.ok(await away.silentFor(300), 'a second copy was queued for the offline subscriber');
        const live = await connected(b.port, persistent('live'));
        assert.ok(await live.silentFor(200), 'the delivered message came back after the restart');
        away.end();
        live.end();
      });
    });
  }

  test('held QoS 2 messages of one publisher reach a subscriber in order, also one that waits for nothing', async () => {
    const sync = heldSyncs();
    await withBroker({ dataDir: dataDir(), storeOptions: { fs: sync.fs } }, async (b) => {
      const away = await connected(b.port, persistent('keeper'));
      await subscribe(away, 'stored/#', 2);
      away.send({ type: 'disconnect' });
      await away.closedPromise;
      const watcher = await connected(b.port, { version: 5, clientId: 'watcher' });
      await subscribe(watcher, '#', 2);
      // A clean publisher: a message for the offline session writes its queue entry and waits for the commit, one
      // for nobody persistent writes nothing and would go at once.
      const pub = await connected(b.port, { version: 5, clientId: 'pub' });
      sync.hold();
      publish2(pub, 'stored/a', 'first', 1);
      publish2(pub, 'memory/b', 'second', 2);
      assert.ok(await watcher.silentFor(300), 'a QoS 2 message overtook the held one before it');
      sync.release();
      const first = await watcher.expect('publish', 3000);
      const second = await watcher.expect('publish', 3000);
      assert.deepEqual([str(first.payload), str(second.payload)], ['first', 'second']);
      const ids: number[] = [];
      for (let i = 0; i < 2; i++) ids.push(((await pub.expect('pubrec')) as { packetId: number }).packetId);
      assert.deepEqual(ids, [1, 2]);
      pub.end();
      watcher.end();
    });
  });

  test('a compaction starting while a QoS 2 message is held keeps it: the snapshot has its queue entry', async () => {
    const dir = dataDir();
    const sync = heldSyncs();
    await withBroker({ dataDir: dir, storeOptions: { fs: sync.fs } }, async (b) => {
      const store = b.broker.store as LogStore;
      const away = await connected(b.port, persistent('away'));
      await subscribe(away, 'h/#', 2);
      away.send({ type: 'disconnect' });
      await away.closedPromise;
      const pub = await connected(b.port, persistent('pub'));
      sync.hold();
      // A first batch is written and its sync held; the QoS 2 message and the compaction request wait for the next,
      // whose snapshot is frozen after its write, while the message is still held.
      pub.send({ type: 'publish', topic: 'h/1', payload: text('one'), qos: 1, retain: false, dup: false, packetId: 1 });
      await delay(100);
      publish2(pub, 'h/2', 'two', 2);
      await delay(100);
      const compactions = store.counters.compactions;
      const compaction = store.compactNow();
      sync.release();
      await compaction;
      assert.equal(store.counters.compactions, compactions + 1);
      assert.equal((await pub.expect('puback')).reasonCode ?? 0, 0);
      assert.equal((await pub.expect('pubrec')).reasonCode ?? 0, 0);
      pub.send({ type: 'pubrel', packetId: 2 });
      await pub.expect('pubcomp');
      pub.end();
    });
    await withBroker({ dataDir: dir }, async (b) => {
      const away = await connected(b.port, persistent('away'));
      const one = await away.expect('publish', 3000);
      assert.equal(str(one.payload), 'one');
      away.send({ type: 'puback', packetId: one.packetId! });
      assert.equal(await receiveQos2(away), 'two');
      assert.ok(await away.silentFor(300), 'a message came twice');
      away.end();
    });
  });

  for (const reached of [true, false]) {
    test(`a failed fdatasync (the batch ${reached ? 'reached' : 'did not reach'} the disk): no answer before a restart, after it the resend is delivered exactly once`, async () => {
      const dir = dataDir();
      const syncedSize = new Map<number, number>();
      let failSync = false;
      const fs: StoreFs = {
        ...nodeStoreFs,
        fdatasync: async (fd) => {
          if (failSync) {
            // The kernel may drop the dirty pages of a failed sync, or write them later.
            if (!reached) nodeStoreFs.ftruncateSync(fd, syncedSize.get(fd) ?? 0);
            throw Object.assign(new Error('I/O error'), { code: 'EIO' });
          }
          await nodeStoreFs.fdatasync(fd);
          syncedSize.set(fd, nodeStoreFs.fstatSync(fd).size);
        },
      };
      await withBroker({ dataDir: dir, storeOptions: { fs } }, async (b) => {
        const away = await connected(b.port, persistent('away'));
        await subscribe(away, 'u/#', 2);
        away.send({ type: 'disconnect' });
        await away.closedPromise;
        const live = await connected(b.port, persistent('live'));
        await subscribe(live, 'u/#', 2);
        const pub = await connected(b.port, persistent('pub'));
        failSync = true;
        publish2(pub, 'u/x', 'unsure', 9);
        assert.ok(await pub.silentFor(400), 'an answer for a message whose fate the restart decides');
        assert.ok(await live.silentFor(10), 'a subscriber got a message whose sync failed');
        publish2(pub, 'u/x', 'unsure', 9, true);
        assert.ok(await pub.silentFor(300), 'the resend was answered before the restart');
        assert.ok(await live.silentFor(10), 'the resend was delivered before the restart');
      });
      await withBroker({ dataDir: dir }, async (b) => {
        const pub = await connected(b.port, persistent('pub'));
        publish2(pub, 'u/x', 'unsure', 9, true);
        assert.equal((await pub.expect('pubrec')).reasonCode ?? 0, 0);
        pub.send({ type: 'pubrel', packetId: 9 });
        await pub.expect('pubcomp');
        for (const clientId of ['live', 'away']) {
          const sub = await connected(b.port, persistent(clientId));
          assert.equal(await receiveQos2(sub), 'unsure', clientId);
          assert.ok(await sub.silentFor(300), `${clientId} got it twice`);
          sub.end();
        }
        pub.end();
      });
    });
  }
});
