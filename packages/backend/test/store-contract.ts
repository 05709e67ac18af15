// The BackendStore contract, runnable against any implementation (SQLite file, SQLite :memory:, PostgreSQL):
// call runStoreContract(label, open) from a *.test.ts file.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCampaign, createExecution } from '@otalink/ota';
import type { Vehicle } from '../src/api.js';
import type { BackendStore, StoredCampaign, StoredExecution } from '../src/store/types.js';

export function vehicle(vin: string, extra: Partial<Vehicle> = {}): Vehicle {
  return {
    vin,
    model: 'ID.4',
    hardwareId: 'tcu-v2',
    attributes: {},
    registeredAt: 1000,
    updatedAt: 1000,
    online: false,
    ...extra,
  };
}

export function storedCampaign(id: string, createdAt = 1000): StoredCampaign {
  return {
    id,
    name: `campaign ${id}`,
    jobId: id,
    spec: { name: id, artifact: 'a'.repeat(64), target: { vins: ['V1'] } },
    rollout: createCampaign(id, {
      rollout: { kind: 'waves', waves: [{ percent: 100, successThreshold: 0 }] },
      maxRetries: 0,
    }),
    timers: {
      renotifyAfterMs: 60_000,
      renotifyBackoff: 2,
      maxRenotifyIntervalMs: 3_600_000,
      stepTimeoutMs: 600_000,
      inProgressTimeoutMs: 21_600_000,
    },
    createdAt,
    targets: 0,
    released: 0,
  };
}

export function storedExecution(campaignId: string, vin: string, n = 1, status: StoredExecution['status'] = 'QUEUED') {
  const e: StoredExecution = {
    ...createExecution({ jobId: campaignId, executionNumber: n, vin, campaignId }, 2000),
    updatedAt: 2000,
  };
  e.status = status;
  return e;
}

/** `skip`: why this implementation cannot be tested here (a one-line reason), or undefined to run. */
export function runStoreContract(label: string, open: () => Promise<BackendStore>, skip?: string): void {
  describe(`BackendStore contract: ${label}`, { skip }, () => {
    const withStore = (name: string, fn: (store: BackendStore) => Promise<void>) =>
      test(name, async () => {
        const store = await open();
        try {
          await fn(store);
        } finally {
          await store.close();
        }
      });

    withStore('API tokens: upsert by id, revocation, listed oldest first', async (store) => {
      const token = (id: string, createdAt: number) => ({
        id,
        name: `token ${id}`,
        role: 'viewer' as const,
        createdAt,
        secretHash: 'ab'.repeat(32),
      });
      assert.deepEqual(await store.listApiTokens(), []);
      await store.commit({ apiTokens: [token('b'.repeat(16), 2000), token('a'.repeat(16), 3000)] });
      assert.deepEqual(
        (await store.listApiTokens()).map((t) => t.id),
        ['b'.repeat(16), 'a'.repeat(16)],
      );
      await store.commit({ apiTokens: [{ ...token('b'.repeat(16), 2000), revokedAt: 5000 }] });
      assert.equal((await store.getApiToken('b'.repeat(16)))?.revokedAt, 5000);
      assert.equal((await store.getApiToken('b'.repeat(16)))?.secretHash, 'ab'.repeat(32));
      assert.equal(await store.getApiToken('c'.repeat(16)), undefined);
      assert.equal((await store.listApiTokens()).length, 2);
    });

    withStore('vehicles: upsert, get, list by VIN with keyset paging and filters', async (store) => {
      await store.commit({
        vehicles: [
          vehicle('V3', { region: 'EU' }),
          vehicle('V1', { region: 'EU', attributes: { trim: 'pro' } }),
          vehicle('V2', { model: 'ID.3', region: 'US', installedVersion: '1.0.0' }),
        ],
      });
      assert.equal((await store.getVehicle('V1'))?.attributes.trim, 'pro');
      assert.equal(await store.getVehicle('NOPE'), undefined);
      const page1 = await store.listVehicles({ limit: 2 });
      assert.deepEqual(
        page1.map((v) => v.vin),
        ['V1', 'V2'],
      );
      const page2 = await store.listVehicles({ limit: 2, after: 'V2' });
      assert.deepEqual(
        page2.map((v) => v.vin),
        ['V3'],
      );
      assert.deepEqual(
        (await store.listVehicles({ limit: 10, model: 'ID.4' })).map((v) => v.vin),
        ['V1', 'V3'],
      );
      assert.deepEqual(
        (await store.listVehicles({ limit: 10, region: 'US' })).map((v) => v.vin),
        ['V2'],
      );
      await store.commit({ vehicles: [vehicle('V1', { region: 'US', attributes: {} })] });
      assert.equal((await store.getVehicle('V1'))?.region, 'US');
      assert.equal(await store.countVehicles(), 3);
      assert.deepEqual((await store.getVehicles(['V2', 'V9', 'V3'])).map((v) => v.vin).sort(), ['V2', 'V3']);
    });

    withStore('vehicles: selector on columns and attributes', async (store) => {
      await store.commit({
        vehicles: [
          vehicle('A1', { region: 'EU', attributes: { trim: 'pro', color: 'red' } }),
          vehicle('A2', { region: 'EU', attributes: { trim: 'base' } }),
          vehicle('A3', { region: 'US', attributes: { trim: 'pro' }, installedVersion: '2.0.0' }),
          vehicle('A4', { model: 'ID.3', hardwareId: 'tcu-v1' }),
        ],
      });
      const vins = async (s: Parameters<BackendStore['selectVehicles']>[0]) =>
        (await store.selectVehicles(s)).map((v) => v.vin);
      assert.deepEqual(await vins({ model: 'ID.4' }), ['A1', 'A2', 'A3']);
      assert.deepEqual(await vins({ model: 'ID.4', attributes: { trim: 'pro' } }), ['A1', 'A3']);
      assert.deepEqual(await vins({ region: 'EU', attributes: { trim: 'pro' } }), ['A1']);
      assert.deepEqual(await vins({ hardwareId: 'tcu-v1' }), ['A4']);
      assert.deepEqual(await vins({ installedVersion: '2.0.0' }), ['A3']);
      assert.deepEqual(await vins({}), ['A1', 'A2', 'A3', 'A4']);
    });

    withStore(
      'presence updates known vehicles, registers new ones only when asked, and feeds fleetSummary',
      async (store) => {
        await store.commit({ vehicles: [vehicle('P1', { installedVersion: '1.0.0' })] });
        const inventory = {
          installedVersion: '1.1.0',
          hardwareId: 'tcu-v2',
          agentVersion: '0.1.0',
          slots: { active: 'A' as const, A: { version: '1.1.0' }, B: {} },
        };
        await store.commit({
          presence: [
            { vin: 'P1', online: true, lastSeen: 5000, inventory },
            { vin: 'P2', online: true, lastSeen: 5000, inventory, register: { model: 'ID.4', hardwareId: 'tcu-v2' } },
            { vin: 'P3', online: true, lastSeen: 5000 },
          ],
        });
        const p1 = await store.getVehicle('P1');
        assert.equal(p1?.online, true);
        assert.equal(p1?.lastSeen, 5000);
        assert.equal(p1?.installedVersion, '1.1.0');
        assert.deepEqual(p1?.inventory, inventory);
        assert.equal((await store.getVehicle('P2'))?.model, 'ID.4');
        assert.equal(await store.getVehicle('P3'), undefined);
        await store.commit({ presence: [{ vin: 'P1', online: false, lastSeen: 6000 }] });
        const offline = await store.getVehicle('P1');
        assert.equal(offline?.online, false);
        assert.deepEqual(offline?.inventory, inventory, 'an offline presence keeps the last inventory');
        await store.commit({ installedVersions: [{ vin: 'P1', version: '2.0.0', at: 7000 }] });
        assert.equal((await store.getVehicle('P1'))?.installedVersion, '2.0.0');
        assert.deepEqual(await store.fleetSummary('ID.4'), {
          vehicles: 2,
          online: 1,
          versions: { '2.0.0': 1, '1.1.0': 1 },
        });
        assert.deepEqual(await store.fleetSummary('none'), { vehicles: 0, online: 0, versions: {} });
      },
    );

    withStore('artifacts: idempotent put, newest first with paging', async (store) => {
      const art = (c: string, at: number) => ({
        sha256: c.repeat(64),
        size: 10,
        name: `n${c}`,
        version: '1.0.0',
        hardwareIds: ['tcu-v2'],
        createdAt: at,
      });
      await store.commit({ artifacts: [art('a', 1), art('b', 2)] });
      await store.commit({ artifacts: [art('c', 3), { ...art('a', 9), name: 'changed' }] });
      assert.equal((await store.getArtifact('a'.repeat(64)))?.name, 'na', 'same bytes, first metadata kept');
      assert.equal(await store.getArtifact('d'.repeat(64)), undefined);
      const first = await store.listArtifacts({ limit: 2 });
      assert.deepEqual(
        first.map((a) => a.name),
        ['nc', 'nb'],
      );
      const next = await store.listArtifacts({ limit: 2, after: 'b'.repeat(64) });
      assert.deepEqual(
        next.map((a) => a.name),
        ['na'],
      );
    });

    withStore('signing keys: upsert keeps the active flag current', async (store) => {
      const key = (id: string, active: boolean, at: number) => ({
        keyId: id,
        publicKey: 'AAAA',
        publicKeyPem: 'pem',
        createdAt: at,
        active,
      });
      await store.commit({ signingKeys: [key('k1', true, 1)] });
      await store.commit({ signingKeys: [key('k1', false, 1), key('k2', true, 2)] });
      const keys = await store.listSigningKeys();
      assert.deepEqual(
        keys.map((k) => [k.keyId, k.active]),
        [
          ['k1', false],
          ['k2', true],
        ],
      );
    });

    withStore('campaigns: upsert, newest first, by state, transitions in order', async (store) => {
      await store.commit({ campaigns: [storedCampaign('c1'), storedCampaign('c2')] });
      await store.commit({ campaigns: [storedCampaign('c3')] });
      const running = {
        ...storedCampaign('c2'),
        rollout: { ...storedCampaign('c2').rollout, state: 'RUNNING' as const },
      };
      await store.commit({
        campaigns: [running],
        campaignTransitions: [
          { campaignId: 'c2', at: 5, from: 'DRAFT', to: 'RUNNING', cause: 'start' },
          { campaignId: 'c2', at: 5, from: 'RUNNING', to: 'PAUSED', cause: 'pause' },
        ],
      });
      assert.equal((await store.getCampaign('c2'))?.rollout.state, 'RUNNING');
      assert.equal(await store.getCampaign('zz'), undefined);
      assert.deepEqual(
        (await store.listCampaigns({ limit: 2 })).map((c) => c.id),
        ['c3', 'c2'],
      );
      assert.deepEqual(
        (await store.listCampaigns({ limit: 2, after: 'c2' })).map((c) => c.id),
        ['c1'],
      );
      assert.deepEqual(
        (await store.campaignsInStates(['RUNNING', 'PAUSED'])).map((c) => c.id),
        ['c2'],
      );
      assert.deepEqual(
        (await store.campaignsInStates([])).map((c) => c.id),
        [],
      );
      assert.deepEqual(
        (await store.campaignTransitions('c2')).map((t) => t.cause),
        ['start', 'pause'],
      );
    });

    withStore('targets keep rollout order and release flags', async (store) => {
      await store.commit({
        campaigns: [storedCampaign('c1')],
        targets: [
          {
            campaignId: 'c1',
            targets: [
              { vin: 'Z', model: 'm1' },
              { vin: 'A', model: 'm2' },
            ],
          },
        ],
      });
      await store.commit({
        targets: [
          {
            campaignId: 'c1',
            targets: [
              { vin: 'M', model: 'm1' },
              { vin: 'Z', model: 'm1' },
            ],
          },
        ],
      });
      await store.commit({ released: [{ campaignId: 'c1', vins: ['A'] }] });
      assert.deepEqual(await store.listTargets('c1'), [
        { vin: 'Z', model: 'm1', released: false },
        { vin: 'A', model: 'm2', released: true },
        { vin: 'M', model: 'm1', released: false },
      ]);
    });

    withStore('executions: upsert, latest per vehicle, status filter, paging, history, counts', async (store) => {
      await store.commit({
        campaigns: [storedCampaign('c1')],
        targets: [
          {
            campaignId: 'c1',
            targets: [
              { vin: 'V1', model: 'm1' },
              { vin: 'V2', model: 'm2' },
              { vin: 'V3', model: 'm1' },
            ],
          },
        ],
        executions: [storedExecution('c1', 'V1'), storedExecution('c1', 'V2'), storedExecution('c1', 'V3')],
      });
      await store.commit({
        executions: [
          { ...storedExecution('c1', 'V1', 1, 'FAILED'), lastSeq: 4 },
          storedExecution('c1', 'V1', 2, 'NOTIFIED'),
          storedExecution('c1', 'V2', 1, 'SUCCEEDED'),
        ],
        transitions: [
          {
            campaignId: 'c1',
            jobId: 'c1',
            vin: 'V1',
            executionNumber: 1,
            at: 1,
            from: 'QUEUED',
            to: 'NOTIFIED',
            cause: 'notify',
          },
          {
            campaignId: 'c1',
            jobId: 'c1',
            vin: 'V1',
            executionNumber: 1,
            at: 2,
            from: 'NOTIFIED',
            to: 'FAILED',
            cause: 'vehicle-status',
            seq: 4,
            reason: { code: 'X', text: 'y' },
          },
        ],
      });
      const latest = await store.latestExecutions('c1');
      assert.deepEqual(latest.map((e) => [e.vin, e.executionNumber, e.status]).sort(), [
        ['V1', 2, 'NOTIFIED'],
        ['V2', 1, 'SUCCEEDED'],
        ['V3', 1, 'QUEUED'],
      ]);
      assert.deepEqual(
        (await store.listExecutions('c1', { limit: 2 })).map((e) => e.vin),
        ['V1', 'V2'],
      );
      assert.deepEqual(
        (await store.listExecutions('c1', { limit: 2, after: 'V2' })).map((e) => e.vin),
        ['V3'],
      );
      assert.deepEqual(
        (await store.listExecutions('c1', { limit: 9, status: 'SUCCEEDED' })).map((e) => e.vin),
        ['V2'],
      );
      const history = await store.executionsOf('c1', 'V1');
      assert.deepEqual(
        history.map((e) => [e.executionNumber, e.status, e.lastSeq]),
        [
          [2, 'NOTIFIED', 0],
          [1, 'FAILED', 4],
        ],
      );
      const transitions = await store.transitionsOf('c1', 'V1');
      assert.deepEqual(
        transitions.map((t) => t.to),
        ['NOTIFIED', 'FAILED'],
      );
      assert.deepEqual(transitions[1]?.reason, { code: 'X', text: 'y' });
      const counts = await store.countByStatus('c1');
      assert.equal(counts.NOTIFIED, 1);
      assert.equal(counts.SUCCEEDED, 1);
      assert.equal(counts.QUEUED, 1);
      assert.equal(counts.FAILED, 0, 'only latest executions count');
      const m1 = await store.countByStatus('c1', 'm1');
      assert.equal(m1.NOTIFIED + m1.QUEUED + m1.SUCCEEDED, 2);
      assert.equal(m1.SUCCEEDED, 0);
      assert.equal((await store.countByStatus('other')).QUEUED, 0);
    });

    withStore('a batch that repeats a key: the later row wins; hundreds of rows keep their order', async (store) => {
      await store.commit({
        vehicles: [vehicle('D1', { updatedAt: 1 }), vehicle('D2'), vehicle('D1', { updatedAt: 2 })],
        executions: [storedExecution('c1', 'D1', 1, 'QUEUED'), storedExecution('c1', 'D1', 1, 'NOTIFIED')],
      });
      assert.equal((await store.getVehicle('D1'))?.updatedAt, 2);
      assert.equal((await store.executionsOf('c1', 'D1'))[0]?.status, 'NOTIFIED');
      // More rows than one multi-row statement takes, over two batches: rollout order is the order given.
      const vins = Array.from({ length: 450 }, (_, i) => `T${String(449 - i).padStart(3, '0')}`);
      await store.commit({
        targets: [{ campaignId: 'c1', targets: vins.slice(0, 300).map((vin) => ({ vin, model: 'ID.4' })) }],
      });
      await store.commit({
        targets: [{ campaignId: 'c1', targets: vins.slice(250).map((vin) => ({ vin, model: 'ID.4' })) }],
        released: [{ campaignId: 'c1', vins: vins.slice(0, 420) }],
      });
      const targets = await store.listTargets('c1');
      assert.deepEqual(
        targets.map((t) => t.vin),
        vins,
      );
      assert.equal(targets.filter((t) => t.released).length, 420);
    });

    withStore('a failing batch leaves nothing behind', async (store) => {
      const broken = { ...storedCampaign('bad'), targets: 10n as unknown as number };
      await assert.rejects(store.commit({ vehicles: [vehicle('X1')], campaigns: [broken] }), { code: 'OTA_ERR_STORE' });
      assert.equal(await store.getVehicle('X1'), undefined);
    });

    withStore('seen message ids expire by prune', async (store) => {
      await store.commit({
        seenMessageIds: [
          { msgId: 'm1', at: 10 },
          { msgId: 'm2', at: 20 },
        ],
      });
      await store.commit({ seenMessageIds: [{ msgId: 'm1', at: 30 }] });
      assert.equal(await store.hasSeenMessageId('m1'), true);
      assert.equal(await store.hasSeenMessageId('m3'), false);
      assert.equal(await store.pruneSeenMessageIds(15), 1);
      assert.equal(await store.hasSeenMessageId('m1'), false);
      assert.equal(await store.hasSeenMessageId('m2'), true);
    });

    test('a closed store refuses with OTA_ERR_CLOSED', async () => {
      const store = await open();
      await store.close();
      await assert.rejects(store.getVehicle('V1'), { code: 'OTA_ERR_CLOSED' });
      await store.close();
    });
  });
}
