import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs, {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../../src/client/store/file-store.js';
import { MemoryStore } from '../../src/client/store/memory-store.js';
import { openFileStore } from '../../src/client/store/open-file-store.js';
import type { MessageStore } from '../../src/client/store/store.js';
import { MqttError } from '../../src/codec/errors.js';
import type { OutgoingRecord } from '../../src/session/records.js';

const out = (seq: number, state: 'queued' | 'publish' | 'pubrel' = 'queued'): OutgoingRecord => ({
  kind: 'outgoing',
  seq,
  topic: `t/${seq}`,
  payload: new Uint8Array([seq & 0xff, 0, 255]),
  qos: 2,
  retain: false,
  state,
  properties: { correlationData: new Uint8Array([1, 2, 3]), userProperties: [['k', 'v']] },
});

/** A QoS 1 message without properties, queued: what the session stores first for a plain publish. */
const queuedQos1 = (payload: Uint8Array): OutgoingRecord => ({
  kind: 'outgoing',
  seq: 1,
  topic: 't',
  payload,
  qos: 1,
  retain: false,
  state: 'queued',
});

/** Damages the log's lines with `damage`, opens it again, and checks the lines skipped and the records left. */
async function reopenAfterDamage(
  path: string,
  damage: (lines: string[]) => void,
  skipped: number,
  seqs: number[],
): Promise<void> {
  const lines = readFileSync(path, 'latin1').split('\n');
  damage(lines);
  writeFileSync(path, lines.join('\n'), 'latin1');
  const again = FileStore.open(path);
  try {
    assert.equal(again.skippedLines, skipped);
    assert.deepEqual(
      again.list().map((r) => r.kind === 'outgoing' && r.seq),
      seqs,
    );
  } finally {
    await again.close();
  }
}

/** The sequence numbers of the outgoing records a store at `path` holds when opened again (then closed). */
async function reopenedSeqs(path: string): Promise<Array<number | false>> {
  const reopened = FileStore.open(path);
  try {
    return reopened.list().map((r) => r.kind === 'outgoing' && r.seq);
  } finally {
    await reopened.close();
  }
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'otalink-store-'));
}

// The contract every MessageStore meets.
async function contract(store: MessageStore): Promise<void> {
  await store.put('out:1', out(1));
  await store.put('out:2', out(2));
  await store.put('in:7', { kind: 'incoming', packetId: 7 });
  await store.put('out:1', out(1, 'publish'));
  await store.delete('out:2');
  await store.delete('out:404');
  assert.deepEqual(await store.get('out:1'), out(1, 'publish'));
  assert.equal(await store.get('out:2'), undefined);
  const all = (await store.list()).map((r) => (r.kind === 'outgoing' ? `o${r.seq}` : `i${r.packetId}`)).sort();
  assert.deepEqual(all, ['i7', 'o1']);
}

// Changes made in one tick without waiting in between (how the client issues a step's changes): the last wins.
async function sameTickContract(store: MessageStore): Promise<void> {
  await Promise.all([store.put('out:1', out(1)), store.delete('out:1')]);
  await Promise.all([store.put('out:2', out(2)), store.delete('out:2'), store.put('out:2', out(2, 'publish'))]);
  await Promise.all([
    store.put('out:3', out(3)),
    store.put('out:3', out(3, 'publish')),
    store.put('out:3', out(3, 'pubrel')),
  ]);
  await Promise.all([store.delete('out:3'), store.put('in:9', { kind: 'incoming', packetId: 9 })]);
  assert.equal(await store.get('out:1'), undefined);
  assert.deepEqual(await store.get('out:2'), out(2, 'publish'));
  assert.equal(await store.get('out:3'), undefined);
  const all = (await store.list()).map((r) => (r.kind === 'outgoing' ? `o${r.seq}` : `i${r.packetId}`)).sort();
  assert.deepEqual(all, ['i9', 'o2']);
}

test('memory store meets the contract', async () => {
  await contract(new MemoryStore());
  await sameTickContract(new MemoryStore());
});

test('file store meets the same-tick contract, also after reopening, and writes nothing for a put undone in its tick', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    await sameTickContract(store);
    await store.close();
    const again = FileStore.open(path);
    assert.deepEqual(
      again
        .list()
        .map((r) => (r.kind === 'outgoing' ? `o${r.seq}` : `i${r.packetId}`))
        .sort(),
      ['i9', 'o2'],
    );
    await Promise.all([again.put('out:5', out(5)), again.delete('out:5')]);
    const size = statSync(path).size;
    await again.close();
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 2, `${lines}`);
    assert.equal(statSync(path).size, size);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store meets the contract and survives reopening, binary fields intact', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    await contract(store);
    await store.close();
    const again = FileStore.open(path);
    assert.deepEqual(again.get('out:1'), out(1, 'publish'));
    assert.deepEqual(again.get('in:7'), { kind: 'incoming', packetId: 7 });
    assert.equal(again.list().length, 2);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: records without properties (written out by hand, not by JSON.stringify) round-trip exactly, whatever their topic', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    const backing = Buffer.from('xx\u0000payload\n"}');
    const records: OutgoingRecord[] = [
      {
        kind: 'outgoing',
        seq: 1,
        topic: 'a/"quoted"/\\back\nline\u0001',
        payload: new Uint8Array(0),
        qos: 1,
        retain: true,
        state: 'queued',
      },
      {
        kind: 'outgoing',
        seq: 2,
        topic: 'vé/hicle/😀/\u2028',
        payload: backing.subarray(2),
        qos: 1,
        retain: false,
        state: 'publish',
        packetId: 65535,
      },
      {
        kind: 'outgoing',
        seq: Number.MAX_SAFE_INTEGER,
        topic: '',
        payload: new Uint8Array([0, 10, 13, 255]),
        qos: 2,
        retain: false,
        state: 'pubrel',
        packetId: 1,
      },
    ];
    // Put twice in one tick (queued, then sent): one line, the latest state.
    await Promise.all([
      store.put('out:"k"\n', { ...records[0]!, state: 'publish', packetId: 7 }),
      ...records.map((r, i) => store.put(i === 0 ? 'out:"k"\n' : `out:${r.seq}`, r)),
    ]);
    await store.close();
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 3, lines.join('\n'));
    const again = FileStore.open(path);
    try {
      assert.equal(again.skippedLines, 0);
      assert.deepEqual(again.get('out:"k"\n'), records[0]);
      assert.deepEqual(again.get('out:2'), { ...records[1], payload: new Uint8Array(backing.subarray(2)) });
      assert.deepEqual(again.get(`out:${Number.MAX_SAFE_INTEGER}`), records[2]);
    } finally {
      await again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a queued message sent later is written once in full, then only its new state ("set" lines), which survive reopening and compaction', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const payload = new Uint8Array(4000).fill(7);
    const queued = queuedQos1(payload);
    const store = FileStore.open(path);
    await store.put('out:1', queued);
    const full = statSync(path).size;
    await store.put('out:1', { ...queued, state: 'publish', packetId: 42 });
    assert.ok(statSync(path).size - full < 100, `the second line takes ${statSync(path).size - full} bytes`);
    await store.close();
    const lines = readFileSync(path, 'latin1').split('\n').filter(Boolean);
    assert.match(lines[1]!, /^[0-9a-f]{8} \{"op":"set","key":"out:1","state":"publish","packetId":42\}$/);
    const again = FileStore.open(path);
    assert.deepEqual(again.get('out:1'), { ...queued, state: 'publish', packetId: 42 });
    // Back in the queue (a lost session): the packet id goes too. And a copy of another object: a full line.
    const back = again.get('out:1') as OutgoingRecord;
    await again.put('out:1', { ...queued, payload: back.payload });
    const copy = { ...queued, seq: 2, payload: new Uint8Array(payload) };
    await again.put('out:2', copy);
    await again.put('out:2', { ...copy, payload: new Uint8Array(payload), state: 'publish', packetId: 3 });
    await again.close();
    const third = FileStore.open(path, { compactAfter: 0 });
    assert.deepEqual(third.get('out:1'), queued);
    assert.deepEqual(third.get('out:2'), { ...copy, state: 'publish', packetId: 3 });
    assert.equal(third.skippedLines, 0);
    await third.close();
    // Opening rewrote the log: one full line per record, no 'set' left.
    const rewritten = readFileSync(path, 'latin1').split('\n').filter(Boolean);
    assert.deepEqual(
      rewritten.map((l) => JSON.parse(l.slice(9)).op),
      ['put', 'put'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a "set" line with no line before it to change (that one damaged) is skipped as damaged', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const queued = queuedQos1(new Uint8Array(10));
    const store = FileStore.open(path);
    await store.put('out:1', queued);
    await store.put('out:1', { ...queued, state: 'publish', packetId: 5 });
    await store.put('out:2', { ...queued, seq: 2 });
    await store.close();
    await reopenAfterDamage(
      path,
      (lines) => {
        lines[0] = `00000000${lines[0]!.slice(8)}`;
      },
      2,
      [2],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: the changes of one batch share one promise; the next batch has its own', async () => {
  const dir = tempDir();
  try {
    const store = FileStore.open(join(dir, 'client.log'));
    const a = store.put('out:1', out(1));
    const b = store.put('out:2', out(2), true);
    const c = store.delete('out:1', true);
    assert.equal(a, b);
    assert.equal(a, c);
    await a;
    const d = store.put('out:3', out(3));
    assert.notEqual(d, a);
    await d;
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a line whose checksum digits are not 8 lowercase hex digits is skipped as damaged', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    for (let i = 1; i <= 3; i++) await store.put(`out:${i}`, out(i));
    await store.close();
    await reopenAfterDamage(
      path,
      (lines) => {
        lines[0] = `${lines[0]!.slice(0, 8).toUpperCase().replace(/[0-9]/g, 'A')}${lines[0]!.slice(8)}`;
        lines[1] = `zz${lines[1]!.slice(2)}`;
      },
      2,
      [3],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a torn last line (crash mid-append) is ignored; a Buffer payload round-trips', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    await store.put('out:1', { ...out(1), payload: Buffer.from('buffer payload') });
    await store.close();
    appendFileSync(path, '{"op":"put","key":"out:2","rec');
    const again = FileStore.open(path);
    assert.equal(again.list().length, 1);
    const r = again.get('out:1');
    assert.ok(r?.kind === 'outgoing');
    assert.equal(Buffer.from(r.payload).toString(), 'buffer payload');
    await again.put('out:3', out(3));
    await again.close();
    const third = FileStore.open(path);
    assert.equal(third.list().length, 2, 'appends after a torn line stay readable');
    await third.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: puts in one tick share one write; compaction bounds the log', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path, { compactAfter: 100 });
    for (let round = 0; round < 20; round++) {
      const ops: Promise<void>[] = [];
      for (let i = 0; i < 50; i++) ops.push(store.put(`out:${i}`, out(i, 'publish')));
      await Promise.all(ops);
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.delete(`out:${i}`)));
    }
    await store.put('out:999', out(999));
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
    assert.ok(lines <= 250, `log has ${lines} lines after 2000 writes`);
    assert.ok(statSync(path).size < 100_000);
    await store.close();
    assert.deepEqual(await reopenedSeqs(path), [999]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a batch of relaxed changes only is written but not flushed to the device; one strict change flushes it', async () => {
  const dir = tempDir();
  // Batches are flushed on the thread pool (fdatasync), close() flushes in place (fdatasyncSync): both count.
  const real = { fdatasync: fs.fdatasync, fdatasyncSync: fs.fdatasyncSync };
  let syncs = 0;
  fs.fdatasyncSync = (fd: number) => {
    syncs++;
    real.fdatasyncSync(fd);
  };
  fs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
    syncs++;
    real.fdatasync(fd, callback);
  }) as typeof fs.fdatasync;
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    const lines = () => readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
    await store.put('out:1', out(1));
    assert.deepEqual([syncs, lines()], [1, 1], 'a queued message is durable when its put settles');
    await store.put('out:1', out(1, 'publish'), true);
    await store.delete('out:1', true);
    assert.deepEqual([syncs, lines()], [1, 3], 'relaxed: written (a SIGKILL keeps them), not flushed');
    await Promise.all([store.put('out:2', out(2), true), store.put('in:7', { kind: 'incoming', packetId: 7 })]);
    assert.deepEqual([syncs, lines()], [2, 5], 'a strict change in the batch flushes the whole batch');
    await store.delete('in:7');
    assert.deepEqual([syncs, lines()], [3, 6], "an incoming id's deletion is strict");
    await store.put('out:2', out(2, 'publish'), true);
    assert.deepEqual([syncs, lines()], [3, 7]);
    await store.close();
    assert.equal(syncs, 4, 'a clean close flushes the relaxed lines to the device');
    assert.deepEqual(await reopenedSeqs(path), [2]);
  } finally {
    fs.fdatasyncSync = real.fdatasyncSync;
    fs.fdatasync = real.fdatasync;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a batch settles after an fdatasync run off the event loop; batches written meanwhile share the next', async () => {
  const dir = tempDir();
  const real = fs.fdatasync;
  const held: Array<() => void> = [];
  let syncs = 0;
  // Each flush waits until the test lets it finish: the event loop must go on meanwhile.
  fs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
    syncs++;
    held.push(() => real(fd, callback));
  }) as typeof fs.fdatasync;
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    let first = false;
    const a = store.put('out:1', out(1)).then(() => {
      first = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual([syncs, first], [1, false], 'the batch is written and its flush started, not finished');
    // Two more batches in later turns, while the first flush runs: written at once, flushed by one more fdatasync.
    const b = store.put('out:2', out(2));
    await new Promise((resolve) => setImmediate(resolve));
    const c = store.put('out:3', out(3));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(readFileSync(path, 'utf8').split('\n').filter(Boolean).length, 3, 'all three batches are written');
    assert.equal(syncs, 1, 'no second flush while one runs');
    held.shift()?.();
    await a;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(syncs, 2, 'one flush for both batches written meanwhile');
    held.shift()?.();
    await Promise.all([b, c]);
    const closing = store.close();
    await closing;
    assert.equal(held.length, 0);
    assert.deepEqual(await reopenedSeqs(path), [1, 2, 3]);
  } finally {
    fs.fdatasync = real;
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Holds every fs.fdatasync until the test lets it end (`go()`, or `go(error)` to fail it). */
function holdFlushes(): { held: Array<{ fd: number; go: (err?: Error) => void }>; restore: () => void } {
  const real = fs.fdatasync;
  const held: Array<{ fd: number; go: (err?: Error) => void }> = [];
  fs.fdatasync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
    held.push({ fd, go: (err) => (err === undefined ? real(fd, callback) : setImmediate(() => callback(err))) });
  }) as typeof fs.fdatasync;
  return { held, restore: () => (fs.fdatasync = real) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

test('file store: logs replaced while a flush runs: the flushed one is closed when it ends, the others at once; every batch settles', async () => {
  const dir = tempDir();
  const flushes = holdFlushes();
  const openFds = () => readdirSync('/proc/self/fd').length;
  try {
    const path = join(dir, 'client.log');
    // compactAfter 0: every batch after the first rewrites the log, while the first flush still runs.
    const store = FileStore.open(path, { compactAfter: 0 });
    const before = openFds();
    const puts = [store.put('out:1', out(1))];
    await turn();
    puts.push(store.put('out:1', out(1, 'publish')));
    await turn();
    puts.push(store.put('out:1', out(1)));
    await turn();
    assert.equal(flushes.held.length, 1, 'one flush runs; the later batches were rewritten into snapshots');
    assert.equal(openFds(), before + 1, 'the flushed log stays open until its flush ends, no other');
    flushes.held.shift()!.go();
    await Promise.all(puts);
    assert.equal(openFds(), before, 'no descriptor left behind');
    await store.close();
    assert.deepEqual(await reopenedSeqs(path), [1]);
  } finally {
    flushes.restore();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a log replacement whose directory flush fails settles nothing as durable, the running flush included', async () => {
  const dir = tempDir();
  const flushes = holdFlushes();
  const realFsync = fs.fsyncSync;
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path, { compactAfter: 0 });
    const outcomes: string[] = [];
    const first = store.put('out:1', out(1)).then(
      () => outcomes.push('first resolved'),
      (e: MqttError) => outcomes.push(`first ${e.code}`),
    );
    await turn();
    fs.fsyncSync = (fd: number) => {
      if (fs.fstatSync(fd).isDirectory()) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
      realFsync(fd);
    };
    const second = store.put('out:1', out(1, 'publish')).then(
      () => outcomes.push('second resolved'),
      (e: MqttError) => outcomes.push(`second ${e.code}`),
    );
    await turn();
    fs.fsyncSync = realFsync;
    // The flush on the replaced log fails too: before, the replacement counted as covering it regardless.
    flushes.held.shift()!.go(Object.assign(new Error('EIO: injected'), { code: 'EIO' }));
    await Promise.all([first, second]);
    assert.deepEqual(outcomes.sort(), ['first MQTT_ERR_STORE', 'second MQTT_ERR_STORE']);
    await store.close();
  } finally {
    fs.fsyncSync = realFsync;
    flushes.restore();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: a second close() waits for the first, which waits for the running flush; close starts no compaction', async () => {
  const dir = tempDir();
  const flushes = holdFlushes();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path);
    const put = store.put('out:1', out(1));
    await turn();
    const first = store.close();
    let secondDone = false;
    const second = store.close().then(() => {
      secondDone = true;
    });
    await turn();
    assert.equal(secondDone, false, 'not closed while the flush runs');
    assert.throws(() => FileStore.open(path), { code: 'MQTT_ERR_STORE_LOCKED' });
    flushes.held.shift()!.go();
    await Promise.all([put, first, second]);
    assert.deepEqual(await reopenedSeqs(path), [1]);
  } finally {
    flushes.restore();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A record of ~1.4 KB on disk (base64): 2 000 of them are far more than one compaction slice (256 KiB). */
const big = (seq: number, state: 'queued' | 'publish' = 'queued'): OutgoingRecord => ({
  kind: 'outgoing',
  seq,
  topic: `vehicle/${seq}/telemetry`,
  payload: new Uint8Array(1000).fill(seq & 0xff),
  qos: 1,
  retain: false,
  state,
});

test('file store: a large store compacts a slice per turn while changes go on; every acknowledged change survives, at every moment', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const store = FileStore.open(path, { compactAfter: 1500, fsync: 'never' });
    const model = new Map<string, OutgoingRecord>();
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 2000; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => {
          model.set(`out:${i + j}`, big(i + j));
          return store.put(`out:${i + j}`, big(i + j));
        }),
      );
    }
    // Copies of the log taken while a compaction runs, each with the state acknowledged when it was taken: a crash
    // at that moment leaves that file (the snapshot being written is a separate one, renamed over it at the end).
    const copies: Array<{ file: string; state: Map<string, OutgoingRecord> }> = [];
    let turnsCompacting = 0;
    let compactions = 0;
    let next = 2000;
    for (let turn = 0; turn < 600; turn++) {
      const ops: Promise<void>[] = [];
      for (let k = 0; k < 10; k++) {
        const r = random();
        const keys = [...model.keys()];
        if (r < 0.4 && keys.length > 0) {
          const key = keys[Math.floor(random() * keys.length)]!;
          model.delete(key);
          ops.push(store.delete(key));
        } else if (r < 0.7 && keys.length > 0) {
          const key = keys[Math.floor(random() * keys.length)]!;
          const record = big(Number(key.slice(4)), 'publish');
          model.set(key, record);
          ops.push(store.put(key, record));
        } else {
          const key = `out:${next}`;
          model.set(key, big(next++));
          ops.push(store.put(key, model.get(key)!));
        }
      }
      const wasCompacting = store.compacting;
      await Promise.all(ops);
      if (store.compacting) {
        turnsCompacting++;
        if (!wasCompacting) compactions++;
        if (copies.length < 12 && turn % 3 === 0) {
          const file = join(dir, `copy-${turn}.log`);
          writeFileSync(file, readFileSync(path));
          copies.push({ file, state: new Map(model) });
        }
      }
    }
    assert.ok(compactions >= 2, `compactions started: ${compactions}`);
    assert.ok(turnsCompacting >= 2 * compactions, `each ran over several turns (${turnsCompacting} turns in all)`);
    await store.close();
    // Payloads are one byte repeated (the seq's low byte): their length and first byte say which they are.
    const sorted = (records: Iterable<OutgoingRecord>) =>
      [...records].map((r) => JSON.stringify({ ...r, payload: [r.payload.length, r.payload[0]] })).sort();
    const reopened = FileStore.open(path);
    assert.deepEqual(sorted(reopened.list() as OutgoingRecord[]), sorted(model.values()));
    assert.equal(reopened.skippedLines, 0);
    await reopened.close();
    assert.ok(copies.length >= 3, `copies taken mid-compaction: ${copies.length}`);
    for (const { file, state } of copies) {
      const copy = FileStore.open(file, { fsync: 'never' });
      assert.deepEqual(sorted(copy.list() as OutgoingRecord[]), sorted(state.values()), file);
      await copy.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store: by default the log is not rewritten before 50 000 changes, nor a large store before as many changes as it has records', async () => {
  const dir = tempDir();
  const small = (seq: number, state: 'queued' | 'publish') => ({ ...out(seq, state), properties: undefined });
  // Batches of up to 1000 keys, each key once a batch (changes to one key in one batch are one line).
  const puts = async (store: FileStore, count: number, state: 'queued' | 'publish', keys = count) => {
    const batch = Math.min(1000, keys);
    for (let i = 0; i < count; i += batch) {
      await Promise.all(
        Array.from({ length: batch }, (_, j) => store.put(`out:${(i + j) % keys}`, small((i + j) % keys, state))),
      );
    }
  };
  try {
    // A small store churning (a drain: each message queued, sent and acknowledged is three lines): 40 000 changes
    // to 10 records do not rewrite it.
    const churnPath = join(dir, 'churn.log');
    const churn = FileStore.open(churnPath, { fsync: 'never' });
    await puts(churn, 40_000, 'queued', 10);
    assert.equal(churn.compacting, false);
    assert.ok(statSync(churnPath).size > 40_000 * 100, 'appended to, not rewritten');
    await churn.close();
    const path = join(dir, 'client.log');
    const store = FileStore.open(path, { fsync: 'never' });
    await puts(store, 60_000, 'queued');
    const before = statSync(path).size;
    // 40 000 changes (each message goes in flight): fewer than the 60 000 records.
    await puts(store, 40_000, 'publish');
    assert.equal(store.compacting, false);
    assert.ok(statSync(path).size > before * 1.5, 'appended to, not rewritten');
    // Past as many dead lines as live records: compacted.
    await puts(store, 21_000, 'queued');
    for (let t = 0; t < 1000 && (store.compacting || statSync(path).size > before * 1.3); t++) {
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(statSync(path).size <= before * 1.3, `compacted to ${statSync(path).size} bytes (from ${before})`);
    await store.close();
    const reopened = FileStore.open(path);
    assert.equal(reopened.list().length, 60_000);
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const lockerScript = fileURLToPath(new URL('./fixtures/store-locker.ts', import.meta.url));

/** A child process that opens the store; resolves with its first line ("open" or an error code). */
function startLocker(path: string): { child: ChildProcess; firstLine: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', lockerScript, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const firstLine = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the locker process said nothing: ${err}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.split('\n')[0] ?? '');
      }
    });
    // 'close', not 'exit': a locker that prints its error code and exits may exit before that line is read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (!out.includes('\n')) reject(new Error(`the locker process exited (${code ?? signal}): ${err}`));
    });
  });
  return { child, firstLine };
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

function assertLocked(fn: () => unknown, path: string, holder: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MqttError);
    assert.equal(err.code, 'MQTT_ERR_STORE_LOCKED');
    assert.ok(err.message.includes(path), `names the store: ${err.message}`);
    assert.ok(err.message.includes(`process ${holder}`), `names the holder: ${err.message}`);
    return true;
  });
}

test('file store lock: a second open in the same process fails with MQTT_ERR_STORE_LOCKED until the first closes', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    const first = FileStore.open(path);
    await first.put('out:1', out(1));
    assertLocked(() => FileStore.open(path), path, process.pid);
    await assert.rejects(openFileStore(path), { code: 'MQTT_ERR_STORE_LOCKED' });
    assert.deepEqual(first.get('out:1'), out(1), 'the failed opener changed nothing');
    const other = FileStore.open(join(dir, 'other.log'));
    await other.close();
    await first.close();
    assert.equal(existsSync(`${path}.lock`), false, 'close removes the lock');
    // openFileStore() gives the store itself: what it found at open is readable without a cast.
    const second = await openFileStore(path);
    assert.deepEqual(second.get('out:1'), out(1));
    assert.equal(second.skippedLines, 0);
    assert.equal(second.compacting, false);
    await second.close();
    assert.deepEqual(readdirSync(dir).sort(), ['client.log', 'other.log'], 'no lock or temporary files left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store lock: another live process holds it; once SIGKILLed its stale lock is taken over', async () => {
  const dir = tempDir();
  const path = join(dir, 'client.log');
  const holder = startLocker(path);
  try {
    assert.equal(await holder.firstLine, 'open');
    const pid = holder.child.pid ?? -1;
    assertLocked(() => FileStore.open(path), path, pid);
    // A second process is refused too.
    const rival = startLocker(path);
    assert.equal(await rival.firstLine, 'MQTT_ERR_STORE_LOCKED');
    await kill(rival.child, 'SIGKILL');
    await kill(holder.child, 'SIGKILL');
    assert.ok(readFileSync(`${path}.lock`, 'utf8').startsWith(`${pid}\n`), 'the dead holder left its lock behind');
    const store = FileStore.open(path);
    await store.put('out:2', out(2));
    assertLocked(() => FileStore.open(path), path, process.pid);
    await store.close();
    assert.equal(existsSync(`${path}.lock`), false);
  } finally {
    await kill(holder.child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file store lock: a lock naming this pid that this process never took (pid reused after a restart) is stale', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'client.log');
    writeFileSync(`${path}.lock`, `${process.pid}\nnot-a-token-of-ours\n\n`);
    const store = FileStore.open(path);
    await store.close();
    // A lock written under another boot (pid 1 always runs, yet the vehicle rebooted since) is stale as well.
    writeFileSync(`${path}.lock`, '1\nsome-token\nanother-boot-id\n');
    const bootKnown = existsSync('/proc/sys/kernel/random/boot_id');
    if (bootKnown) {
      const again = FileStore.open(path);
      await again.close();
    } else {
      assertLocked(() => FileStore.open(path), path, 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
