import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileStore } from '../../src/client/store/file-store.js';
import { MemoryStore } from '../../src/client/store/memory-store.js';
import type { MessageStore } from '../../src/client/store/store.js';
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

test('memory store meets the contract', async () => {
  await contract(new MemoryStore());
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
