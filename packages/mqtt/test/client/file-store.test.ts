import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
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
    const reopened = FileStore.open(path);
    assert.deepEqual(
      reopened.list().map((r) => r.kind === 'outgoing' && r.seq),
      [999],
    );
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
    const second = FileStore.open(path);
    assert.deepEqual(second.get('out:1'), out(1));
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
