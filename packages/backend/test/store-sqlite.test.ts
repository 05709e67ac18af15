import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openSqliteStore, SCHEMA_VERSION } from '../src/store/sqlite.js';
import { runStoreContract, vehicle } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'otalink-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runStoreContract('SQLite :memory:', async () => openSqliteStore({ path: ':memory:' }));
runStoreContract('SQLite file', async () => openSqliteStore({ path: join(dir, `db-${n++}`, 'backend.db') }));

test('SQLite: data survives a reopen and the schema version is recorded', async () => {
  const path = join(dir, 'reopen', 'backend.db');
  const first = openSqliteStore({ path });
  await first.commit({ vehicles: [vehicle('R1')] });
  await first.close();
  const second = openSqliteStore({ path });
  assert.equal((await second.getVehicle('R1'))?.vin, 'R1');
  await second.close();
  assert.ok(SCHEMA_VERSION >= 1);
});

test('SQLite: an unusable data directory is OTA_ERR_STORE naming the path', () => {
  const file = join(dir, 'not-a-dir');
  writeFileSync(file, 'x');
  const path = join(file, 'sub', 'backend.db');
  assert.throws(
    () => openSqliteStore({ path }),
    (e: unknown) => (e as { code?: string }).code === 'OTA_ERR_STORE' && String((e as Error).message).includes(file),
  );
});
