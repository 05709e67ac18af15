// The first admin token: created on the first start with an empty store, written 0600 to the data directory,
// never logged in full, not created again once any token exists; and the tokens live in the store as hashes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createBackend } from '../src/backend.js';
import type { Logger } from '../src/logger.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const root = mkdtempSync(join(tmpdir(), 'otalink-auth-'));
after(() => rmSync(root, { recursive: true, force: true }));

function recordingLogger(lines: string[]): Logger {
  const log = (obj: object, msg?: string) => lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  return { debug: log, info: log, warn: log, error: log };
}

function backendIn(dataDir: string, lines: string[]) {
  return createBackend({ dataDir, publicBaseUrl: 'https://127.0.0.1:8443', logger: recordingLogger(lines) });
}

test('first start: an admin token in <dataDir>/admin-token, mode 0600, working, logged by id only', async () => {
  const dataDir = join(root, 'first');
  const lines: string[] = [];
  const backend = backendIn(dataDir, lines);
  await backend.start();
  try {
    const file = join(dataDir, 'admin-token');
    assert.equal(backend.adminTokenFile, file);
    if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = readFileSync(file, 'utf8').trim();
    assert.match(token, /^otk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const info = await backend.service.authenticateApiToken(token);
    assert.equal(info?.role, 'admin');
    const secret = token.split('.')[1] as string;
    assert.ok(!lines.some((l) => l.includes(secret)), 'the secret is never logged');
    assert.ok(
      lines.some((l) => l.includes(info?.id ?? '?')),
      'its id is',
    );
  } finally {
    await backend.close();
  }
  // The store holds the hash, not the secret.
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const store = openSqliteStore({ path: join(dataDir, 'backend.db') });
  const records = await store.listApiTokens();
  await store.close();
  assert.equal(records.length, 1);
  assert.ok(!JSON.stringify(records).includes(token.split('.')[1] as string));
});

test('later starts keep the tokens; a deleted file is not recreated while tokens exist', async () => {
  const dataDir = join(root, 'again');
  const first = backendIn(dataDir, []);
  await first.start();
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8');
  await first.close();
  const second = backendIn(dataDir, []);
  await second.start();
  assert.equal(readFileSync(join(dataDir, 'admin-token'), 'utf8'), token, 'same token after a restart');
  assert.equal((await second.service.listApiTokens()).length, 1);
  await second.close();
  unlinkSync(join(dataDir, 'admin-token'));
  const third = backendIn(dataDir, []);
  await third.start();
  assert.throws(() => statSync(join(dataDir, 'admin-token')), /ENOENT/);
  assert.equal((await third.service.listApiTokens()).length, 1);
  await third.close();
});

test('adminTokenFile: false creates no token', async () => {
  const dataDir = join(root, 'none');
  const backend = createBackend({
    dataDir,
    publicBaseUrl: 'https://127.0.0.1:8443',
    logger: recordingLogger([]),
    adminTokenFile: false,
  });
  await backend.start();
  try {
    assert.equal(backend.adminTokenFile, undefined);
    assert.deepEqual(await backend.service.listApiTokens(), []);
    const { token, info } = await backend.service.createApiToken({ name: 'embedder', role: 'operator' });
    assert.equal((await backend.service.authenticateApiToken(token))?.id, info.id);
    await backend.service.revokeApiToken(info.id);
    assert.equal(await backend.service.authenticateApiToken(token), undefined);
  } finally {
    await backend.close();
  }
});
