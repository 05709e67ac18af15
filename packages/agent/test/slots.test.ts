// The A/B slot store on disk: the download is moved (never copied) into the slot with its meta written last, and a
// restart in the middle of an install finds either the download or a verified image.
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { SlotStore } from '../src/slots.js';
import { ARTIFACT, manifest } from './support/fixtures.js';
import { tempDir } from './support/vehicle.js';

test('install moves the download into a new slot directory and writes the meta; a second run finds it installed', async () => {
  const dir = await tempDir();
  try {
    const slots = new SlotStore(dir.path, false);
    const m = manifest();
    await writeFile(slots.downloadPath, ARTIFACT);
    await slots.install('B', m);
    await assert.rejects(stat(slots.downloadPath), { code: 'ENOENT' });
    assert.deepEqual(await readFile(join(slots.slotDir('B'), 'image.bin')), ARTIFACT);
    assert.deepEqual(await slots.checkSlot('B', m), { ok: true });
    // A restart after the move runs install again: the image's hash is checked and the meta rewritten.
    await slots.install('B', m);
    assert.deepEqual(await slots.checkSlot('B', m), { ok: true });
  } finally {
    await dir.remove();
  }
});

test('install over an older image replaces it, and refuses when neither the download nor a matching image is there', async () => {
  const dir = await tempDir();
  try {
    const slots = new SlotStore(dir.path, false);
    await mkdir(slots.slotDir('A'), { recursive: true });
    await writeFile(join(slots.slotDir('A'), 'image.bin'), 'old image');
    await writeFile(
      join(slots.slotDir('A'), 'meta.json'),
      JSON.stringify({ version: '0.9.0', sha256: 'x', artifactId: 'y' }),
    );
    const m = manifest();
    await writeFile(slots.downloadPath, ARTIFACT);
    await slots.install('A', m);
    assert.deepEqual(await slots.checkSlot('A', m), { ok: true });
    await writeFile(join(slots.slotDir('A'), 'image.bin'), 'tampered');
    await assert.rejects(slots.install('A', m), /download is gone/);
    assert.equal((await slots.checkSlot('A', m)).ok, false, 'no meta vouches for the tampered image');
    await assert.rejects(slots.install('B', m), /download is gone/);
  } finally {
    await dir.remove();
  }
});

test('discardDownload removes the file, a directory in its place, or nothing at all', async () => {
  const dir = await tempDir();
  try {
    const slots = new SlotStore(dir.path, false);
    await slots.discardDownload();
    await writeFile(slots.downloadPath, 'part');
    await slots.discardDownload();
    await assert.rejects(stat(slots.downloadPath), { code: 'ENOENT' });
    await mkdir(join(slots.downloadPath, 'inner'), { recursive: true });
    await slots.discardDownload();
    await assert.rejects(stat(slots.downloadPath), { code: 'ENOENT' });
  } finally {
    await dir.remove();
  }
});
