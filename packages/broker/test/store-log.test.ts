// The log store's own guarantees, beyond the contract: group commit, sync policy, segments and compaction, torn-tail
// recovery, a damaged record in an older segment skipped and logged with file and offset, write and sync errors that never
// leave a partial batch behind.
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BrokerError, LogStore, type LogStoreOptions, nodeStoreFs, type StoreFs } from '../src/index.js';
import { encodeRecord } from '../src/store/codec.js';
import { FrameDecoder, FrameEncoder } from '../src/store/frames.js';
import type { StoreOp } from '../src/store/ops.js';
import { message, payloads, queue, segments } from './support/log-records.js';
import { failingSyncs } from './support/store-fs.js';
import { tempDirs } from './support/temp-dirs.js';

const dataDir = tempDirs('otalink-log-');

async function open(options: LogStoreOptions) {
  const store = new LogStore(options);
  const contents = await store.load();
  return { store, contents };
}

describe('log store', () => {
  test('a data directory that cannot be made fails with its path; nested ones are made level by level', async (t) => {
    const dir = join(dataDir(), 'a', 'b', 'c');
    const { store } = await open({ dir });
    await store.close();
    assert.ok(statSync(dir).isDirectory());
    // Node 20's recursive mkdirSync loops for ever under /proc: start-up hung at 100 % CPU, deaf to SIGTERM.
    if (!statSync('/proc/self', { throwIfNoEntry: false })) return t.skip('no /proc here');
    await assert.rejects(open({ dir: '/proc/otalink-nope/store' }), (error: BrokerError) => {
      assert.equal(error.code, 'BROKER_ERR_STORE');
      assert.match(error.message, /\/proc\/otalink-nope/);
      return true;
    });
  });

  test('group commit: everything issued in one turn is one write and one fdatasync; sync none never syncs', async () => {
    let syncs = 0;
    const fs: StoreFs = {
      ...nodeStoreFs,
      fdatasync: (fd) => {
        syncs++;
        return nodeStoreFs.fdatasync(fd);
      },
    };
    const dir = dataDir();
    const { store } = await open({ dir, fs });
    syncs = 0;
    store.putSession('g', 60, 0);
    const commits = [];
    for (let i = 0; i < 1000; i++) {
      queue(store, 'g', `m${i}`);
      commits.push(store.commit());
    }
    await Promise.all(commits);
    assert.equal(syncs, 1);
    assert.equal(store.counters.batches, 1);
    await store.close();
    const none = await open({ dir, fs, sync: 'none' });
    syncs = 0;
    queue(none.store, 'g', 'unsynced');
    await none.store.commit();
    assert.equal(syncs, 0);
    await none.store.close();
    const again = await open({ dir });
    assert.equal(payloads(again.contents, 'g').length, 1001);
    await again.store.close();
  });

  test('a torn tail is cut with a warning; what came before is intact and appends after it survive', async () => {
    const dir = dataDir();
    const first = await open({ dir });
    first.store.putSession('t', 60, 0);
    for (let i = 0; i < 50; i++) queue(first.store, 't', `m${i}`);
    await first.store.commit();
    await first.store.close();
    const last = join(dir, segments(dir).at(-1)!);
    // Half a record: a length that promises more than is there, then a few bytes.
    const fd = openSync(last, 'r+');
    const end = statSync(last).size;
    const torn = Buffer.alloc(30, 0xab);
    torn.writeUInt32LE(500, 0);
    writeSync(fd, torn, 0, torn.length, end);
    closeSync(fd);
    const warnings: string[] = [];
    const { pino } = await import('pino');
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const second = await open({ dir, logger });
    assert.equal(payloads(second.contents, 't').length, 50);
    assert.equal(second.store.counters.truncatedBytes, 30);
    assert.ok(warnings.some((w) => w.includes('BROKER_ERR_STORE_TORN_TAIL') && w.includes(last)));
    assert.equal(statSync(last).size, end, 'the torn bytes were not cut from the file');
    queue(second.store, 't', 'after');
    await second.store.commit();
    await second.store.close();
    const third = await open({ dir });
    assert.deepEqual(payloads(third.contents, 't').slice(-2), ['m49', 'after']);
    await third.store.close();
  });

  test('a last segment with no valid header and no record is removed, with a warning when it held bytes', async () => {
    const { writeFileSync } = await import('node:fs');
    for (const size of [5, 0]) {
      const dir = dataDir();
      const first = await open({ dir });
      first.store.putSession('t', 60, 0);
      for (let i = 0; i < 5; i++) queue(first.store, 't', `m${i}`);
      await first.store.commit();
      await first.store.close();
      const newest = segments(dir).at(-1)!;
      const number = Number(/(\d+)/.exec(newest)![1]) + 1;
      const next = join(dir, newest.replace(/\d+/, String(number).padStart(/(\d+)/.exec(newest)![1]!.length, '0')));
      // What a crash as the segment was created leaves, or what a cut left of a segment.
      writeFileSync(next, Buffer.alloc(size, 0x4f));
      const warnings: string[] = [];
      const { pino } = await import('pino');
      const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
      const second = await open({ dir, logger });
      assert.equal(payloads(second.contents, 't').length, 5);
      assert.ok(!segments(dir).includes(next.slice(dir.length + 1)) || statSync(next).size > size, 'removed');
      const warned = warnings.filter((w) => w.includes('BROKER_ERR_STORE_TORN_TAIL') && w.includes(next));
      assert.equal(warned.length, size > 0 ? 1 : 0, warnings.join('\n'));
      assert.equal(second.store.counters.truncatedBytes, size);
      await second.store.close();
    }
  });

  test('random cuts and flipped bytes in the last segment: every record before the damage comes back', async () => {
    const dir = dataDir();
    const first = await open({ dir });
    first.store.putSession('r', 60, 0);
    await first.store.commit();
    await first.store.close();
    // A segment with only these records: the session lives in the previous one.
    const writer = await open({ dir });
    for (let i = 0; i < 200; i++) queue(writer.store, 'r', `m${i}`);
    await writer.store.commit();
    await writer.store.close();
    const last = join(dir, segments(dir).at(-1)!);
    const original = Buffer.alloc(statSync(last).size);
    const rfd = openSync(last, 'r');
    readSync(rfd, original, 0, original.length, 0);
    closeSync(rfd);
    for (let round = 0; round < 20; round++) {
      const at = 60 + Math.floor(Math.random() * (original.length - 60));
      const damaged = Buffer.from(original);
      const flip = round % 2 === 0;
      if (flip) damaged[at] = (damaged[at]! + 1 + Math.floor(Math.random() * 254)) & 0xff;
      const fd = openSync(last, 'w');
      writeSync(fd, damaged, 0, flip ? damaged.length : at, 0);
      closeSync(fd);
      const before = segments(dir);
      const { store, contents } = await open({ dir });
      const got = payloads(contents, 'r');
      assert.deepEqual(
        got,
        Array.from({ length: got.length }, (_, i) => `m${i}`),
        `round ${round}: not a prefix`,
      );
      assert.ok(got.length < 200 || !flip, `round ${round}: a flipped byte went unnoticed`);
      await store.close();
      // Put the original back (and drop the segment the reopen added) for the next round.
      for (const name of segments(dir)) if (!before.includes(name)) rmSync(join(dir, name));
      const wfd = openSync(last, 'w');
      writeSync(wfd, original, 0, original.length, 0);
      closeSync(wfd);
    }
  });

  test('a damaged record in an older segment is skipped with BROKER_ERR_STORE_CORRUPT naming file and offset', async () => {
    const dir = dataDir();
    const first = await open({ dir, segmentBytes: 2000 });
    first.store.putSession('c', 60, 0);
    for (let i = 0; i < 100; i++) {
      queue(first.store, 'c', `message-${i}`);
      await first.store.commit();
    }
    await first.store.close();
    const names = segments(dir);
    assert.ok(names.length >= 3, `expected several segments, got ${names.length}`);
    const victim = join(dir, names[1]!);
    const fd = openSync(victim, 'r+');
    writeSync(fd, Buffer.from([0xff]), 0, 1, 200);
    closeSync(fd);
    // Start-up goes on (25-store-faults.test.ts covers the cases): the damaged frame's one message is lost.
    const warnings: string[] = [];
    const { pino } = await import('pino');
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const { store, contents } = await open({ dir, logger });
    assert.equal(payloads(contents, 'c').length, 99);
    const line = warnings.find((w) => w.includes('BROKER_ERR_STORE_CORRUPT'));
    assert.ok(line?.includes(victim), line);
    assert.match(line ?? '', /"offset":\d+/);
    await store.close();
  });

  test('segments rotate; compaction writes a snapshot, removes older segments, and a reopen sees the same state', async () => {
    const dir = dataDir();
    const { store } = await open({ dir, segmentBytes: 4096, compactMinBytes: 64 * 1024 });
    store.putSession('k', 60, 0);
    store.setRetained({ ...message('retained'), topic: 'r/1', retain: true });
    const kept: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const entry = queue(store, 'k', `m${i}`);
      if (i % 100 === 0) kept.push(`m${i}`);
      else store.dequeue('k', entry);
      if (i % 50 === 0) await store.commit();
    }
    await store.commit();
    await store.compacted();
    assert.ok(store.counters.compactions >= 1, 'no compaction ran');
    // Appends made while a compaction runs land after its snapshot (how many depends on the machine's speed):
    // once nothing is written, one more compaction leaves the live state alone.
    await store.compactNow();
    const size = store.size();
    assert.ok(size.bytes < 16 * 1024, `store is ${size.bytes} bytes after compaction`);
    await store.close();
    const again = await open({ dir });
    assert.deepEqual(payloads(again.contents, 'k'), kept);
    assert.equal(again.contents.retained.size, 1);
    await again.store.compactNow();
    // The snapshot and the segment that took the appends while it was written.
    assert.equal(segments(dir).length, 2);
    await again.store.close();
    const third = await open({ dir });
    assert.deepEqual(payloads(third.contents, 'k'), kept);
    await third.store.close();
  });

  test('loaded payloads are views of the read chunks: intact after later reads, writes and compaction', async () => {
    // Over one read chunk (8 MiB) in frames of 40 messages, so frames straddle chunk boundaries.
    const body = (i: number) => `${String(i).padStart(6, '0')}:`.repeat(2048);
    const dir = dataDir();
    const first = await open({ dir, sync: 'none' });
    first.store.putSession('d', 60, 0);
    for (let i = 0; i < 700; i++) {
      queue(first.store, 'd', body(i));
      if (i % 40 === 39) await first.store.commit();
    }
    await first.store.close();
    const expected = Array.from({ length: 700 }, (_, i) => body(i));
    const loaded = await open({ dir, sync: 'none' });
    assert.deepEqual(payloads(loaded.contents, 'd'), expected);
    const messages = [...loaded.contents.messages.values()];
    const text = () => messages.map((m) => new TextDecoder().decode(m.payload));
    const chunks = new Set(messages.map((m) => m.payload.buffer));
    assert.ok(chunks.size <= 3, `${chunks.size} buffers for 700 payloads: not views of the read chunks`);
    // Another store read in this process, writes, and a compaction that encodes these very messages: none of it
    // may touch the memory the loaded payloads view.
    const otherDir = dataDir();
    const other = await open({ dir: otherDir, sync: 'none' });
    other.store.putSession('o', 60, 0);
    for (let i = 0; i < 300; i++) queue(other.store, 'o', `other ${i}`.repeat(500));
    await other.store.close();
    const otherLoaded = await open({ dir: otherDir, sync: 'none' });
    for (let i = 0; i < 100; i++) queue(loaded.store, 'd', `later ${i}`.repeat(300));
    await loaded.store.commit();
    await loaded.store.compactNow();
    assert.ok(
      text().every((payload, i) => payload === expected[i]),
      'a loaded payload changed',
    );
    await loaded.store.close();
    await otherLoaded.store.close();
    const compacted = await open({ dir, sync: 'none' });
    assert.deepEqual(
      payloads(compacted.contents, 'd'),
      expected.concat(Array.from({ length: 100 }, (_, i) => `later ${i}`.repeat(300))),
    );
    await compacted.store.close();
  });

  test('a chunk whose messages were mostly delivered before a restart is not kept whole for the few left', async () => {
    const dir = dataDir();
    const first = await open({ dir, sync: 'none' });
    first.store.putSession('s', 60, 0);
    const kept: string[] = [];
    for (let i = 0; i < 500; i++) {
      const payload = `${i}:`.repeat(400);
      const entry = queue(first.store, 's', payload);
      if (i % 10 === 0) kept.push(payload);
      else first.store.dequeue('s', entry);
    }
    await first.store.close();
    const { store, contents } = await open({ dir, sync: 'none' });
    assert.deepEqual(payloads(contents, 's'), kept);
    const keptBytes = kept.reduce((n, p) => n + p.length, 0);
    const held = new Set([...contents.messages.values()].map((m) => m.payload.buffer));
    const heldBytes = [...held].reduce((n, buffer) => n + buffer.byteLength, 0);
    assert.ok(heldBytes <= 2 * keptBytes, `${heldBytes} bytes held in memory for ${keptBytes} bytes of payload`);
    // Still right after a compaction and a reopen.
    await store.compactNow();
    await store.close();
    const again = await open({ dir, sync: 'none' });
    assert.deepEqual(payloads(again.contents, 's'), kept);
    await again.store.close();
  });

  test('a snapshot torn by a crash is ignored: the segments before it still hold the state', async () => {
    const dir = dataDir();
    const first = await open({ dir });
    first.store.putSession('s', 60, 0);
    queue(first.store, 's', 'before-snapshot');
    await first.store.commit();
    await first.store.compactNow();
    await first.store.close();
    const names = segments(dir);
    // Make a copy of the completed snapshot segment as the next segment, cut before its snapshot-end record.
    const snapshot = join(dir, names.at(-2) ?? names[0]!);
    const bytes = Buffer.alloc(statSync(snapshot).size);
    const rfd = openSync(snapshot, 'r');
    readSync(rfd, bytes, 0, bytes.length, 0);
    closeSync(rfd);
    const next = Number(/(\d{8})/.exec(names.at(-1)!)![1]) + 1;
    const tornPath = join(dir, `segment-${String(next).padStart(8, '0')}.log`);
    const wfd = openSync(tornPath, 'w');
    writeSync(wfd, bytes, 0, bytes.length - 20, 0);
    closeSync(wfd);
    const second = await open({ dir });
    assert.deepEqual(payloads(second.contents, 's'), ['before-snapshot']);
    // Its number is reused by the fresh append segment, which holds only a header.
    assert.ok(statSync(tornPath).size < bytes.length - 20, 'the torn snapshot was kept');
    await second.store.close();
  });

  test('a short write (disk full mid-batch) is cut off and the batch written again, ahead of later ones, once there is room', async () => {
    const dir = dataDir();
    let short = false;
    const fs: StoreFs = {
      ...nodeStoreFs,
      writeSync: (fd, buffer, offset, length, position) => {
        if (!short) return nodeStoreFs.writeSync(fd, buffer, offset, length, position);
        // Writes the first half, then "the disk is full".
        return nodeStoreFs.writeSync(fd, buffer, offset, Math.floor(length / 2), position);
      },
      freeBytes: () => (short ? 0 : 1e12),
    };
    const { store } = await open({ dir, fs });
    store.putSession('f', 60, 0);
    queue(store, 'f', 'acked');
    await store.commit();
    short = true;
    for (let i = 0; i < 10; i++) queue(store, 'f', `lost${i}`);
    await assert.rejects(
      store.commit(),
      (error: unknown) => error instanceof BrokerError && error.code === 'BROKER_ERR_STORE_FULL',
    );
    assert.equal(store.writable, false);
    assert.match(store.refusal ?? '', /segment-\d+\.log/);
    // whenWritten() waits across failed writes; commit() fails at once while only the failed batch waits.
    let written = false;
    const whenWritten = store.whenWritten().then(() => {
      written = true;
    });
    await assert.rejects(store.commit(), /short write/);
    // Still full: the next attempt fails too, for the failed batch and what came after it alike.
    queue(store, 'f', 'refused');
    await assert.rejects(store.commit(), /BROKER_ERR_STORE_FULL|short write/);
    assert.equal(written, false);
    short = false;
    queue(store, 'f', 'later');
    await store.commit();
    await whenWritten;
    await store.close();
    const again = await open({ dir });
    // The log is what was issued, in order: a failed write delays its records, it never drops or reorders them.
    const lost = Array.from({ length: 10 }, (_, i) => `lost${i}`);
    assert.deepEqual(payloads(again.contents, 'f'), ['acked', ...lost, 'refused', 'later']);
    await again.store.close();
  });

  test('a failed fdatasync stops all writing until restart; what was durable before is loaded', async () => {
    const dir = dataDir();
    const { fs, fail: failSyncs } = failingSyncs();
    const { store } = await open({ dir, fs });
    store.putSession('e', 60, 0);
    queue(store, 'e', 'durable');
    await store.commit();
    failSyncs(true);
    queue(store, 'e', 'unsure');
    // Written, not synced: on disk or not, the caller cannot know (a QoS 2 publisher then gets no answer).
    await assert.rejects(
      store.commit(),
      (error: unknown) =>
        error instanceof BrokerError && error.code === 'BROKER_ERR_STORE_SYNC' && /EIO/.test(error.message),
    );
    failSyncs(false);
    queue(store, 'e', 'refused');
    // Never written: a plain refusal.
    await assert.rejects(
      store.commit(),
      (error: unknown) =>
        error instanceof BrokerError &&
        error.code === 'BROKER_ERR_STORE_FULL' &&
        /fdatasync failed/.test(error.message),
    );
    assert.equal(store.writable, false);
    await store.close();
    const again = await open({ dir });
    assert.ok(payloads(again.contents, 'e').includes('durable'));
    assert.ok(!payloads(again.contents, 'e').includes('refused'));
    await again.store.close();
  });

  test('a snapshot frozen after a batch whose fdatasync fails is not put in place: that batch comes back from nowhere', async () => {
    const dir = dataDir();
    const snapshotFds = new Set<number>();
    const syncedSize = new Map<number, number>();
    let failSync = false;
    const fs: StoreFs = {
      ...nodeStoreFs,
      openSync: (path, flags) => {
        const fd = nodeStoreFs.openSync(path, flags);
        if (path.endsWith('.compacting')) snapshotFds.add(fd);
        else snapshotFds.delete(fd);
        return fd;
      },
      fdatasync: async (fd) => {
        if (failSync && !snapshotFds.has(fd)) {
          // As the kernel may after a failed sync: the batch's dirty pages never reach the disk.
          nodeStoreFs.ftruncateSync(fd, syncedSize.get(fd) ?? 0);
          throw Object.assign(new Error('I/O error'), { code: 'EIO' });
        }
        await nodeStoreFs.fdatasync(fd);
        syncedSize.set(fd, nodeStoreFs.fstatSync(fd).size);
      },
    };
    const { store } = await open({ dir, fs });
    store.putSession('s', 60, 0);
    queue(store, 's', 'durable');
    await store.commit();
    // The write loop ends, so that the next batch holds 'unsure' and compactNow's request together.
    await new Promise((resolve) => setImmediate(resolve));
    failSync = true;
    // Its commit fails (its publisher hears so); the compaction starting after its write must not keep it either.
    queue(store, 's', 'unsure');
    await assert.rejects(store.compactNow(), /EIO/);
    await store.compacted();
    await store.close();
    const again = await open({ dir });
    assert.deepEqual(payloads(again.contents, 's'), ['durable']);
    assert.equal(store.counters.compactions, 0);
    await again.store.close();
  });

  test('a crash at any file-system step of a compaction, with writes going on, loses nothing acknowledged', async () => {
    // Every StoreFs call of the first store counts once armed; from the limit on, each one fails as if the process
    // had died there (nothing more reaches the files; what was written stays, as the page cache does after kill -9).
    function dying(limit: number) {
      let calls = 0;
      let armed = false;
      const fds = new Set<number>();
      const killed = () => Object.assign(new Error('killed'), { code: 'EKILLED' });
      const fs = {} as Record<string, (...args: unknown[]) => unknown>;
      for (const [name, call] of Object.entries(nodeStoreFs) as Array<[string, (...args: unknown[]) => unknown]>) {
        fs[name] = (...args: unknown[]) => {
          if (armed && ++calls > limit) {
            if (name === 'fdatasync' || name === 'fsync' || name === 'unlink') return Promise.reject(killed());
            throw killed();
          }
          const result = call(...args);
          if (name === 'openSync') fds.add(result as number);
          if (name === 'closeSync') fds.delete(args[0] as number);
          return result;
        };
      }
      return {
        fs: fs as unknown as StoreFs,
        arm: () => {
          armed = true;
        },
        calls: () => calls,
        /** The dead process's descriptors, closed by the kernel. */
        reap: () => {
          for (const fd of fds) closeSync(fd);
        },
      };
    }
    const identity = { clientId: 'k', username: undefined, protocolVersion: 5 as const, remoteAddress: undefined };
    const will = { topic: 'w/k', payload: new TextEncoder().encode('gone'), qos: 1 as const, retain: true };

    async function round(limit: number): Promise<number> {
      const dir = dataDir();
      const killer = dying(limit);
      // sync 'none': a kill -9 keeps the page cache, so the batches' own fdatasync adds time and nothing else here.
      const options = {
        dir,
        lock: false,
        sync: 'none' as const,
        compactSliceBytes: 512,
        compactMinBytes: Number.MAX_SAFE_INTEGER,
      };
      const { store } = await open({ ...options, fs: killer.fs });
      store.putSession('k', 60, 0);
      store.setRetained({ ...message('retained'), topic: 'r/1', retain: true });
      store.putWill({ clientId: 'k', will, identity, deadline: 0 });
      const acked: string[] = [];
      for (let i = 0; i < 150; i++) {
        const entry = queue(store, 'k', `a${i}`);
        if (i % 3 === 0) store.dequeue('k', entry);
        else acked.push(`a${i}`);
      }
      await store.commit();
      killer.arm();
      const compaction = store.compactNow().catch(() => undefined);
      let alive = true;
      for (let j = 0; j < 40 && alive; j++) {
        queue(store, 'k', `b${j}`);
        await store.commit().then(
          () => acked.push(`b${j}`),
          () => {
            alive = false;
          },
        );
      }
      await compaction;
      killer.reap();
      const again = await open({ dir, lock: false });
      const got = payloads(again.contents, 'k');
      const where = `crash at file-system call ${limit + 1}`;
      assert.deepEqual(got.slice(0, acked.length), acked, where);
      // At most the batch written but not yet synced when the process died.
      assert.ok(got.length <= acked.length + 1, `${where}: ${got.length - acked.length} unexpected entries`);
      assert.equal(again.contents.retained.size, 1, where);
      assert.equal(again.contents.wills.get('k')?.will.topic, 'w/k', where);
      assert.ok(!readdirSync(dir).some((name) => name.endsWith('.compacting')), `${where}: a partial snapshot is left`);
      // And the recovered directory compacts and reopens cleanly.
      await again.store.compactNow();
      await again.store.close();
      const third = await open({ dir, lock: false });
      assert.deepEqual(payloads(third.contents, 'k'), got, where);
      await third.store.close();
      return killer.calls();
    }
    const total = await round(Number.MAX_SAFE_INTEGER);
    assert.ok(total > 20, `a compaction made only ${total} file-system calls`);
    for (let limit = 0; limit < total; limit++) await round(limit);
  });

  test('format 2 records: every operation decodes to what was encoded, one CRC per frame', () => {
    const delivery = {
      messageId: 1,
      qos: 1 as const,
      retain: false,
      subscriptionIds: undefined,
      sharedFilter: undefined,
    };
    const rich = {
      messageId: 2 ** 40 + 3,
      qos: 2 as const,
      retain: true,
      subscriptionIds: [1, 268435455],
      sharedFilter: '$share/g"\\/a/+',
    };
    const clientIds = ['k', 'vin-"quoted"\\-\u0001-é-🚗', ''];
    const ops: StoreOp[] = [
      { op: 'msg', id: 1, message: message('plain') },
      {
        op: 'msg',
        id: 2 ** 40 + 3,
        message: {
          topic: 'fleet/é/🚗',
          payload: new Uint8Array(0),
          qos: 2,
          retain: true,
          properties: { correlationData: new Uint8Array([0, 255]), userProperties: [['k', 'v']], contentType: 'x' },
          expiresAt: 1_900_000_000_123,
          origin: 'backend-ö',
        },
      },
      { op: 'msg', id: 5, message: { ...message('q0'), qos: 0, origin: undefined } },
    ];
    for (const clientId of clientIds) {
      ops.push({ op: 'session', clientId, expiryInterval: 60, expiresAt: 0 });
      for (const d of [delivery, rich]) {
        ops.push({ op: 'enqueue', clientId, entryId: 2 ** 45 + 1, delivery: d });
        ops.push({ op: 'inflight', clientId, packetId: 65535, delivery: d, fromEntryId: undefined });
        ops.push({ op: 'inflight', clientId, packetId: 1, delivery: d, fromEntryId: 2 ** 33 });
      }
      ops.push({ op: 'dequeue', clientId, entryId: 7 });
      ops.push({ op: 'inflight-rel', clientId, packetId: 258 });
      ops.push({ op: 'inflight-del', clientId, packetId: 65535 });
      ops.push({ op: 'qos2', clientId, packetId: 1 });
      ops.push({ op: 'qos2-del', clientId, packetId: 2 });
    }
    ops.push({ op: 'retain', topic: 'a/b', messageId: 2 });
    ops.push({ op: 'snapshot-end' });
    const encoder = new FrameEncoder(16); // grows
    encoder.begin();
    for (const op of ops) encoder.add(op);
    const frame = Buffer.from(encoder.finish());
    const decoded: StoreOp[] = [];
    new FrameDecoder().decode(frame.subarray(8), (op) => decoded.push(op));
    assert.deepStrictEqual(decoded, ops);
    // A record whose length runs past its frame is a format error, not a silent stop.
    const bad = Buffer.from(frame.subarray(8));
    bad.writeUInt32LE(bad.length, 0);
    assert.throws(() => new FrameDecoder().decode(bad, () => {}), /beyond its frame/);
  });

  test('format 1 segments (earlier builds) are still read, and appends after them go to a format 2 segment', async () => {
    const dir = dataDir();
    const delivery = { messageId: 2, qos: 1 as const, retain: false, subscriptionIds: [9], sharedFilter: undefined };
    const records: StoreOp[] = [
      { op: 'header', format: 1, segment: 1, snapshot: true },
      { op: 'snapshot-end' },
      { op: 'session', clientId: 'old', expiryInterval: 60, expiresAt: 0 },
      {
        op: 'msg',
        id: 2,
        message: { ...message('from format 1'), properties: { correlationData: new Uint8Array([7]) } },
      },
      { op: 'enqueue', clientId: 'old', entryId: 3, delivery },
      { op: 'msg', id: 4, message: message('in flight') },
      {
        op: 'inflight',
        clientId: 'old',
        packetId: 12,
        delivery: { ...delivery, messageId: 4 },
        fromEntryId: undefined,
      },
      { op: 'qos2', clientId: 'old', packetId: 77 },
    ];
    const fd = openSync(join(dir, 'segment-00000001.log'), 'wx');
    const bytes = Buffer.concat(records.map((op) => encodeRecord(op)));
    writeSync(fd, bytes, 0, bytes.length, 0);
    closeSync(fd);
    const first = await open({ dir });
    assert.deepEqual(payloads(first.contents, 'old'), ['from format 1']);
    const session = first.contents.sessions.get('old')!;
    assert.deepEqual([...session.queue.values()], [delivery]);
    assert.deepEqual(first.contents.messages.get(2)?.properties?.correlationData, new Uint8Array([7]));
    assert.equal(session.inflight.get(12)?.delivery?.messageId, 4);
    assert.deepEqual([...session.inboundQos2], [77]);
    queue(first.store, 'old', 'from format 2');
    await first.store.commit();
    await first.store.close();
    const header = Buffer.alloc(200);
    const hfd = openSync(join(dir, segments(dir).at(-1)!), 'r');
    const read = readSync(hfd, header, 0, 200, 0);
    closeSync(hfd);
    assert.match(header.toString('latin1', 0, read), /"format":2/);
    const second = await open({ dir });
    assert.deepEqual(payloads(second.contents, 'old'), ['from format 1', 'from format 2']);
    await second.store.compactNow();
    await second.store.close();
    const third = await open({ dir });
    assert.deepEqual(payloads(third.contents, 'old'), ['from format 1', 'from format 2']);
    assert.deepEqual([...third.contents.sessions.get('old')!.inboundQos2], [77]);
    await third.store.close();
  });

  test('a segment of a newer format is refused with its path, before anything is removed', async () => {
    const dir = dataDir();
    const first = await open({ dir });
    queue(first.store, 'n', 'kept');
    await first.store.close();
    const name = `segment-${String(99).padStart(8, '0')}.log`;
    const fd = openSync(join(dir, name), 'wx');
    const bytes = encodeRecord({ op: 'header', format: 3, segment: 99, snapshot: false });
    writeSync(fd, bytes, 0, bytes.length, 0);
    closeSync(fd);
    const before = segments(dir).map((n) => [n, statSync(join(dir, n)).size]);
    await assert.rejects(new LogStore({ dir }).load(), (error: unknown) => {
      assert.ok(error instanceof BrokerError);
      assert.equal(error.code, 'BROKER_ERR_STORE');
      assert.ok(error.message.includes(join(dir, name)), error.message);
      assert.match(error.message, /format 3/);
      return true;
    });
    assert.deepEqual(
      segments(dir).map((n) => [n, statSync(join(dir, n)).size]),
      before,
    );
  });
});
