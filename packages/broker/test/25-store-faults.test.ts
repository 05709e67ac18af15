// Faults an operator meets with the broker's log store on a real disk: a damaged frame in the middle of the log
// (bit rot, a sector lost to a power cut with sync none) must not stop start-up for ever, nor silently drop every
// record after it. What the damage took is logged with BROKER_ERR_STORE_CORRUPT (file, offset, bytes) and counted;
// everything else loads. Also: a compaction that fails after its snapshot was closed closes nothing else.
import assert from 'node:assert/strict';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Logger, pino } from 'pino';
import { LogStore, type LogStoreOptions, nodeStoreFs, type StoreFs } from '../src/index.js';
import { LOCK_STALE_MS, lockDataDir } from '../src/store/lock.js';
import { payloads, queue, segments } from './support/log-records.js';
import { tempDirs } from './support/temp-dirs.js';

const dataDir = tempDirs('otalink-faults-');

/** Offsets of the header record and every frame of a segment. */
function frames(path: string): number[] {
  const bytes = readFileSync(path);
  const offsets: number[] = [];
  for (let at = 0; at + 8 <= bytes.length; at += 8 + bytes.readUInt32LE(at)) offsets.push(at);
  return offsets;
}

function overwrite(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}

function logged(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function open(options: LogStoreOptions) {
  const store = new LogStore(options);
  const contents = await store.load();
  return { store, contents };
}

/** Payloads m0…m(count-1), one commit (one frame) each, over segments of `segmentBytes`. */
async function write(dir: string, count: number, segmentBytes = 2000, sync: 'batch' | 'none' = 'batch') {
  const { store } = await open({ dir, segmentBytes, sync });
  store.putSession('c', 60, 0);
  for (let i = 0; i < count; i++) {
    queue(store, 'c', `message-${i}`);
    await store.commit();
  }
  await store.close();
}

const all = (count: number) => Array.from({ length: count }, (_, i) => `message-${i}`);

describe('store faults', () => {
  test('a flipped byte in a frame of an older segment: start-up goes on, only that frame is lost, logged and counted', async () => {
    const dir = dataDir();
    await write(dir, 100);
    const names = segments(dir);
    assert.ok(names.length >= 4, `expected several segments, got ${names.length}`);
    const victim = join(dir, names[1]!);
    const offsets = frames(victim);
    // A frame in the middle of the segment: its body, not its length.
    const frame = offsets[Math.floor(offsets.length / 2)]!;
    overwrite(victim, frame + 20, Buffer.from([readFileSync(victim)[frame + 20]! ^ 0x10]));
    const { logger, lines } = logged();
    const { store, contents } = await open({ dir, logger });
    const got = payloads(contents, 'c');
    assert.equal(got.length, 99, 'exactly the damaged frame (one message) is lost');
    assert.deepEqual(
      all(100).filter((p) => !got.includes(p)),
      [all(100).find((p) => !got.includes(p))],
    );
    assert.equal(store.counters.corruptRegions, 1);
    assert.ok(store.counters.corruptBytes > 0);
    // What `store loaded` logs and otalink_broker_store_corrupt_bytes_total reports.
    assert.equal(store.size().corruptBytes, store.counters.corruptBytes);
    const line = lines.find((l) => l.code === 'BROKER_ERR_STORE_CORRUPT');
    assert.ok(line, 'no BROKER_ERR_STORE_CORRUPT logged');
    assert.equal(line.path, victim);
    assert.equal(line.offset, frame);
    // The store writes and reopens.
    queue(store, 'c', 'after');
    await store.commit();
    await store.close();
    const again = await open({ dir });
    assert.deepEqual(payloads(again.contents, 'c'), [...got, 'after']);
    await again.store.compactNow();
    await again.store.close();
    const compacted = await open({ dir, logger });
    assert.deepEqual(payloads(compacted.contents, 'c'), [...got, 'after']);
    assert.equal(compacted.store.counters.corruptRegions, 0, 'the compaction left the damage behind');
    await compacted.store.close();
  });

  test("a damaged frame length (garbage over a frame's header) in an older segment: the frames after it load", async () => {
    const dir = dataDir();
    await write(dir, 100);
    const victim = join(dir, segments(dir)[2]!);
    const offsets = frames(victim);
    const frame = offsets[2]!;
    // Length and CRC overwritten with bytes that promise a frame far longer than the segment.
    overwrite(victim, frame, Buffer.from([0x10, 0xff, 0x00, 0x01, 0xaa, 0xbb, 0xcc, 0xdd]));
    const { logger, lines } = logged();
    const { store, contents } = await open({ dir, logger });
    assert.equal(payloads(contents, 'c').length, 99);
    assert.equal(store.counters.corruptRegions, 1);
    assert.equal(offsets[3]! - frame, store.counters.corruptBytes, 'skipped exactly the damaged frame');
    assert.ok(lines.some((l) => l.code === 'BROKER_ERR_STORE_CORRUPT' && l.path === victim));
    await store.close();
  });

  test('a zeroed page in the middle of the last segment (power cut, sync none): the frames after it are kept, not cut', async () => {
    const dir = dataDir();
    await write(dir, 300, 64 * 1024 * 1024, 'none');
    const last = join(dir, segments(dir).at(-1)!);
    const size = statSync(last).size;
    assert.ok(size > 12 * 1024, `segment of ${size} bytes`);
    overwrite(last, 4096, Buffer.alloc(4096));
    const { logger, lines } = logged();
    const { store, contents } = await open({ dir, logger });
    const got = payloads(contents, 'c');
    assert.ok(got.length > 200 && got.length < 300, `${got.length} loaded`);
    assert.deepEqual(got.slice(-10), all(300).slice(-10), 'the frames after the damage were dropped');
    assert.equal(statSync(last).size, size, 'the segment was cut');
    assert.equal(store.counters.corruptRegions, 1);
    assert.equal(store.counters.truncatedBytes, 0);
    assert.ok(lines.some((l) => l.code === 'BROKER_ERR_STORE_CORRUPT' && l.path === last));
    await store.close();
  });

  test('damage inside the snapshot segment: the rest of the snapshot and the segments after it load', async () => {
    const dir = dataDir();
    const { store } = await open({ dir, compactSliceBytes: 512 });
    store.putSession('c', 60, 0);
    for (let i = 0; i < 200; i++) queue(store, 'c', `message-${i}`);
    await store.commit();
    await store.compactNow();
    for (let i = 200; i < 210; i++) queue(store, 'c', `message-${i}`);
    await store.commit();
    await store.close();
    const snapshot = join(dir, segments(dir)[0]!);
    const offsets = frames(snapshot);
    assert.ok(offsets.length >= 4, `snapshot has ${offsets.length} frames`);
    // The last frame holds snapshot-end: damage it too, the snapshot is still used.
    for (const frame of [offsets[2]!, offsets.at(-1)!]) {
      overwrite(snapshot, frame + 12, Buffer.from([readFileSync(snapshot)[frame + 12]! ^ 0x01]));
    }
    const { logger, lines } = logged();
    const again = await open({ dir, logger });
    const got = payloads(again.contents, 'c');
    assert.ok(got.length > 150 && got.length < 210, `${got.length} loaded`);
    assert.deepEqual(got.slice(-10), all(210).slice(-10));
    assert.equal(again.store.counters.corruptRegions, 2);
    assert.ok(lines.filter((l) => l.code === 'BROKER_ERR_STORE_CORRUPT').length === 2);
    await again.store.close();
  });

  test('damage to the very end of an older segment: logged and counted, the later segments load', async () => {
    const dir = dataDir();
    await write(dir, 100);
    const victim = join(dir, segments(dir)[1]!);
    const offsets = frames(victim);
    const lastFrame = offsets.at(-1)!;
    overwrite(victim, lastFrame + 9, Buffer.from('garbage'));
    const { logger, lines } = logged();
    const { store, contents } = await open({ dir, logger });
    assert.equal(payloads(contents, 'c').length, 99);
    assert.equal(store.counters.corruptRegions, 1);
    assert.equal(store.counters.corruptBytes, statSync(victim).size - lastFrame);
    assert.ok(lines.some((l) => l.code === 'BROKER_ERR_STORE_CORRUPT' && l.offset === lastFrame));
    await store.close();
  });

  test("a compaction failing after its snapshot was closed closes no other file (the appends' segment keeps working)", async () => {
    const dir = dataDir();
    // Which file each descriptor the store opened is, while open: a close of one it no longer owns is the bug.
    const open_ = new Map<number, string>();
    const wrongCloses: string[] = [];
    let failRename = false;
    const fs: StoreFs = {
      ...nodeStoreFs,
      openSync: (path, flags) => {
        const fd = nodeStoreFs.openSync(path, flags);
        open_.set(fd, path);
        return fd;
      },
      closeSync: (fd) => {
        if (!open_.delete(fd)) wrongCloses.push(`fd ${fd}`);
        nodeStoreFs.closeSync(fd);
      },
      renameSync: (from, to) => {
        if (failRename) throw Object.assign(new Error('I/O error'), { code: 'EIO' });
        nodeStoreFs.renameSync(from, to);
      },
    };
    const { store } = await open({ dir, fs });
    store.putSession('c', 60, 0);
    for (let i = 0; i < 20; i++) queue(store, 'c', `message-${i}`);
    await store.commit();
    failRename = true;
    await assert.rejects(store.compactNow());
    failRename = false;
    assert.deepEqual(wrongCloses, [], 'a descriptor was closed twice');
    // The appends still reach the log.
    queue(store, 'c', 'after');
    await store.commit();
    await store.close();
    const again = await open({ dir });
    assert.deepEqual(payloads(again.contents, 'c'), [...all(20), 'after']);
    assert.ok(!readdirSync(dir).some((name) => name.endsWith('.compacting')), 'a failed snapshot was left behind');
    await again.store.close();
  });
});

describe('store faults: segment headers', () => {
  for (const which of ['an older segment', 'the snapshot segment', 'the last segment'] as const) {
    test(`a damaged header of ${which}: its frames still load, the damage is logged`, async () => {
      const dir = dataDir();
      const { store } = await open({ dir, segmentBytes: 2000 });
      store.putSession('c', 60, 0);
      for (let i = 0; i < 100; i++) {
        queue(store, 'c', `message-${i}`);
        await store.commit();
        if (i === 40) await store.compactNow();
      }
      await store.close();
      const names = segments(dir);
      const snapshotIndex = names.findIndex((name) => readFileSync(join(dir, name)).includes('"snapshot":true'));
      const index = which === 'the snapshot segment' ? snapshotIndex : which === 'the last segment' ? -1 : 2;
      const victim = join(dir, names.at(index)!);
      assert.ok(frames(victim).length > 1, `${victim} holds frames`);
      overwrite(victim, 10, Buffer.from('rot'));
      const { logger, lines } = logged();
      const again = await open({ dir, logger });
      // The header's own frame holds nothing but the header; a snapshot's header is followed by its state.
      assert.deepEqual(payloads(again.contents, 'c'), all(100));
      assert.equal(again.store.counters.corruptRegions, 1);
      assert.ok(lines.some((l) => l.code === 'BROKER_ERR_STORE_CORRUPT' && l.path === victim && l.offset === 0));
      await again.store.close();
      assert.ok(readdirSync(dir).includes(names.at(index)!), 'the damaged segment was removed');
    });
  }
});

// Two containers on one volume are both pid 1, each in its own pid namespace: the pid in a lock from the other one
// means nothing here. Its heartbeat (the lock's mtime) tells a live holder from one that is gone.
describe('25 one broker per data directory, across containers', () => {
  const lockOf = (dir: string) => join(dir, 'broker.lock');
  const foreign = (dir: string, ageMs: number) => {
    // Our own pid (as a container's pid 1 would be) but another pid namespace and host.
    const lock = { pid: process.pid, start: '1', boot: undefined, pidns: 'pid:[1]', host: 'other-container' };
    writeFileSync(lockOf(dir), JSON.stringify(lock));
    const when = new Date(Date.now() - ageMs);
    utimesSync(lockOf(dir), when, when);
  };

  test('a fresh lock of a broker in another pid namespace refuses the start; a stale one is taken over', () => {
    const dir = dataDir();
    foreign(dir, 1_000);
    assert.throws(
      () => lockDataDir(dir),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'BROKER_ERR_STORE_LOCKED');
        assert.match(error.message, /another container \(host other-container/);
        return true;
      },
    );
    foreign(dir, LOCK_STALE_MS + 5_000);
    const lock = lockDataDir(dir);
    try {
      assert.equal(JSON.parse(readFileSync(lockOf(dir), 'utf8')).pid, process.pid);
    } finally {
      lock.release();
    }
  });

  test("the holder's heartbeat keeps its lock fresh for brokers in other namespaces", async () => {
    const dir = dataDir();
    const lock = lockDataDir(dir, undefined, 50);
    try {
      const old = new Date(Date.now() - 60_000);
      utimesSync(lockOf(dir), old, old);
      const deadline = Date.now() + 5_000;
      while (statSync(lockOf(dir)).mtimeMs < Date.now() - 10_000 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(statSync(lockOf(dir)).mtimeMs > Date.now() - 10_000, 'touched again by its holder');
    } finally {
      lock.release();
    }
    assert.ok(!readdirSync(dir).includes('broker.lock'), 'released');
  });
});
