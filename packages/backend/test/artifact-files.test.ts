// Artifact files: small artifacts are served from memory after one checked read; large, corrupted or removed ones
// are not held (also when the removal comes during their first read).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ArtifactFiles } from '../src/artifacts/files.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'otalink-artifact-files-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytesOf = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + 7) & 0xff));

test('a small artifact is read once, checked, then served from memory', async () => {
  const files = new ArtifactFiles(join(dir, 'small'));
  const bytes = bytesOf(5000, 13);
  const { sha256, size } = await files.put(bytes);
  const [a, b] = await Promise.all([files.open(sha256), files.open(sha256)]);
  assert.equal(size, 5000);
  assert.deepEqual(a, { size: 5000, bytes });
  assert.equal(a?.bytes, b?.bytes, 'two downloads at once share one read');
  await unlink(files.pathOf(sha256));
  assert.deepEqual(await files.open(sha256), { size: 5000, bytes }, 'held: the file is not read again');
  await files.remove(sha256);
  assert.equal(await files.open(sha256), undefined, 'removed: no longer served');
});

test('large, corrupted and missing artifacts are not held in memory', async () => {
  const files = new ArtifactFiles(join(dir, 'limits'), { hotFileMaxBytes: 4096 });
  const large = await files.put(bytesOf(4097, 3));
  assert.deepEqual(await files.open(large.sha256), { size: 4097 });
  const small = await files.put(bytesOf(100, 5));
  await writeFile(files.pathOf(small.sha256), bytesOf(100, 9));
  assert.deepEqual(await files.open(small.sha256), { size: 100 }, 'bytes that do not match the hash are not kept');
  assert.equal(await files.open(createHash('sha256').update('none').digest('hex')), undefined);
});

test('the bytes held are bounded: the least recently served artifact goes first', async () => {
  const files = new ArtifactFiles(join(dir, 'bound'), { hotFileMaxBytes: 1000, hotTotalMaxBytes: 2500 });
  const stored = [];
  for (const seed of [1, 3, 5]) stored.push(await files.put(bytesOf(1000, seed)));
  const [first, second, third] = stored.map((s) => s.sha256) as [string, string, string];
  assert.ok((await files.open(first))?.bytes);
  assert.ok((await files.open(second))?.bytes);
  assert.ok((await files.open(first))?.bytes, 'first served again: now the most recent');
  assert.ok((await files.open(third))?.bytes);
  // 3000 bytes would be held: the second (least recently served) was let go, so it is read from the file again.
  await unlink(files.pathOf(second));
  assert.equal(await files.open(second), undefined);
  await unlink(files.pathOf(first));
  assert.ok((await files.open(first))?.bytes, 'the first is still held');
});

test('a removal during a first read does not leave the removed bytes in memory', async () => {
  const told: string[] = [];
  const files = new ArtifactFiles(join(dir, 'race'), { onRemoved: (sha256) => void told.push(sha256) });
  const { sha256 } = await files.put(bytesOf(3000, 11));
  const reading = files.open(sha256);
  // What remove() does after its unlink, here while the first read is under way (the file still there to read).
  files.forget(sha256);
  assert.equal((await reading)?.size, 3000, 'the read under way still answers');
  await unlink(files.pathOf(sha256));
  assert.equal(await files.open(sha256), undefined, 'but the bytes were not kept');
  await files.remove(sha256);
  assert.deepEqual(told, [sha256], 'a removal is told (the download worker forgets the bytes too)');
});
