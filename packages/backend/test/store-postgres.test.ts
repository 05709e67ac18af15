import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { openPostgresStore, POSTGRES_SCHEMA_VERSION, redactedUrl } from '../src/store/postgres.js';
import { findPostgres, type PostgresServer, startPostgres } from './postgres-server.js';
import { runStoreContract, vehicle } from './store-contract.js';
import { harness } from './support.js';

const found = findPostgres();
const skip = 'skip' in found ? found.skip : undefined;
let server: PostgresServer | undefined;
before(async () => {
  if (!('skip' in found)) server = await startPostgres(found);
});
after(async () => {
  await server?.stop();
});

function url(): string {
  if (server === undefined) throw new Error('PostgreSQL is not running');
  return server.url;
}

// Each store of the contract gets a schema of its own in the one server: a fresh database per test, at the cost of
// a CREATE SCHEMA rather than a CREATE DATABASE.
let n = 0;
runStoreContract('PostgreSQL', async () => openPostgresStore({ url: url(), schema: `contract_${n++}` }), skip);

test('PostgreSQL: data survives a reopen and the schema version is recorded', { skip }, async () => {
  const first = await openPostgresStore({ url: url(), schema: 'reopen' });
  await first.commit({ vehicles: [vehicle('R1')] });
  await first.close();
  const second = await openPostgresStore({ url: url(), schema: 'reopen' });
  assert.equal((await second.getVehicle('R1'))?.vin, 'R1');
  await second.close();
  assert.ok(POSTGRES_SCHEMA_VERSION >= 1);
});

test('PostgreSQL: backends opening a new schema together migrate it once', { skip }, async () => {
  const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore({ url: url(), schema: 'together' })));
  await stores[0]?.commit({ vehicles: [vehicle('T1')] });
  assert.equal(await stores[2]?.countVehicles(), 1);
  await Promise.all(stores.map((s) => s.close()));
});

test('PostgreSQL: commits not awaited apply in call order', { skip }, async () => {
  const store = await openPostgresStore({ url: url(), schema: 'order' });
  const commits = [];
  for (let i = 1; i <= 20; i++) commits.push(store.commit({ vehicles: [vehicle('O1', { updatedAt: i })] }));
  await Promise.all(commits);
  assert.equal((await store.getVehicle('O1'))?.updatedAt, 20);
  await store.close();
});

test('PostgreSQL: a failed commit does not block the ones after it', { skip }, async () => {
  const store = await openPostgresStore({ url: url(), schema: 'after_failure' });
  // Refused by the server inside the transaction (model is NOT NULL): the ROLLBACK path, not a local throw.
  const bad = store.commit({ vehicles: [vehicle('F0'), vehicle('F1', { model: null as unknown as string })] });
  const good = store.commit({ vehicles: [vehicle('F2')] });
  await assert.rejects(bad, { code: 'OTA_ERR_STORE' });
  await good;
  assert.equal(await store.getVehicle('F0'), undefined);
  assert.equal(await store.getVehicle('F1'), undefined);
  assert.equal((await store.getVehicle('F2'))?.vin, 'F2');
  await store.close();
});

test('PostgreSQL: an unreachable server is OTA_ERR_STORE naming the URL, never the password', async () => {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  const target = 'postgres://fleet:s3cret@127.0.0.1:1/otalink';
  await assert.rejects(openPostgresStore({ url: target }), (e: unknown) => {
    const message = String((e as Error).message);
    assert.equal((e as { code?: string }).code, 'OTA_ERR_STORE');
    assert.ok(message.includes('127.0.0.1:1'), message);
    assert.ok(!message.includes('s3cret'), message);
    return true;
  });
  assert.equal(redactedUrl(target), 'postgres://fleet:***@127.0.0.1:1/otalink');
});

test('PostgreSQL: a schema name that is not a plain SQL name is refused before connecting', async () => {
  await assert.rejects(openPostgresStore({ url: 'postgres://127.0.0.1:1/x', schema: 'a; DROP TABLE x' }), {
    code: 'OTA_ERR_STORE',
  });
});

test('PostgreSQL: the whole backend runs a campaign on it, and a restart continues where it stopped', {
  skip,
}, async () => {
  const admin = new pg.Client({ connectionString: url() });
  await admin.connect();
  await admin.query('CREATE DATABASE backend_e2e');
  await admin.end();
  const databaseUrl = url().replace(/\/postgres$/, '/backend_e2e');
  const h = await harness({ databaseUrl });
  try {
    const { id, vins } = await h.campaign(3);
    const [a, b, c] = vins as [string, string, string];
    await h.backend.service.startCampaign(id);
    await h.report(a, id, 1, 1, 'IN_PROGRESS', { step: 'DOWNLOADING', progress: 50 });
    await h.report(a, id, 1, 2, 'SUCCEEDED', { installedVersion: '2.0.0' });
    await h.restart();
    const before = await h.backend.service.getCampaign(id);
    assert.equal(before.state, 'RUNNING');
    assert.equal(before.counts.SUCCEEDED, 1);
    for (const vin of [b, c]) await h.report(vin, id, 1, 1, 'SUCCEEDED', { installedVersion: '2.0.0' });
    const done = await h.backend.service.getCampaign(id);
    assert.equal(done.state, 'COMPLETED');
    assert.equal(done.counts.SUCCEEDED, 3);
    assert.equal((await h.backend.service.getVehicle(a)).installedVersion, '2.0.0');
    assert.equal(existsSync(join(h.dataDir, 'backend.db')), false, 'no SQLite database beside the PostgreSQL one');
  } finally {
    await h.close();
  }
});
