import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { TrustedKeys, verifyManifest } from '@otalink/ota';
import { verifyEd25519 } from '@otalink/ota/node';
import type { CampaignEvent } from '../src/api.js';
import { verifyArtifactSignature } from '../src/artifacts/signed-url.js';
import { createBackend } from '../src/backend.js';
import { silentLogger } from '../src/logger.js';
import { harness } from './support.js';

describe('backend service', () => {
  test('vehicles: validation with the offending field, upsert keeps registration time, paging with cursors', async () => {
    const h = await harness({ vinMode: 'strict' });
    const s = h.backend.service;
    try {
      await assert.rejects(s.registerVehicle({ vin: 'SIM-1', model: 'ID.4', hardwareId: 'tcu-v2' }), {
        code: 'OTA_ERR_VALIDATION',
        field: 'vin',
        status: 400,
      });
      await assert.rejects(
        s.registerVehicle({ vin: 'WVWZZZ1JZXW000001', model: 'ID 4', hardwareId: 'tcu-v2' } as never),
        { code: 'OTA_ERR_VALIDATION', field: 'model' },
      );
      const vins = ['WVWZZZ1JZXW000003', 'WVWZZZ1JZXW000001', 'WVWZZZ1JZXW000002'];
      for (const vin of vins) await s.registerVehicle({ vin, model: 'ID.4', region: 'EU', hardwareId: 'tcu-v2' });
      const first = await s.registerVehicle({ vin: vins[0] as string, model: 'ID.4', hardwareId: 'tcu-v2' });
      h.clock.advance(5000);
      const again = await s.registerVehicle({
        vin: vins[0] as string,
        model: 'ID.4',
        hardwareId: 'tcu-v2',
        attributes: { trim: 'pro' },
      });
      assert.equal(again.registeredAt, first.registeredAt);
      assert.equal(again.updatedAt, first.updatedAt + 5000);
      const page1 = await s.listVehicles({ limit: 2 });
      assert.deepEqual(
        page1.items.map((v) => v.vin),
        [vins[1], vins[2]],
      );
      assert.ok(page1.nextCursor);
      const page2 = await s.listVehicles({ limit: 2, cursor: page1.nextCursor });
      assert.deepEqual(
        page2.items.map((v) => v.vin),
        [vins[0]],
      );
      assert.equal(page2.nextCursor, undefined);
      await assert.rejects(s.getVehicle('WVWZZZ1JZXW000009'), { code: 'OTA_ERR_NOT_FOUND', status: 404 });
      await assert.rejects(s.listVehicles({ limit: 0 }), { code: 'OTA_ERR_VALIDATION', field: 'limit' });
    } finally {
      await h.close();
    }
  });

  test('presence updates online state and inventory and registers unknown vehicles', async () => {
    const h = await harness();
    try {
      const inventory = {
        installedVersion: '1.2.0',
        hardwareId: 'tcu-v2',
        agentVersion: '0.1.0',
        model: 'ID.7',
        slots: { active: 'A' as const, A: { version: '1.2.0' }, B: {} },
      };
      h.backend.engine.ingestPresence('SIM-9', {
        v: 1,
        msgId: crypto.randomUUID(),
        ts: 1,
        type: 'presence',
        online: true,
        inventory,
      });
      await h.backend.engine.flushNow();
      const v = await h.backend.service.getVehicle('SIM-9');
      assert.deepEqual([v.model, v.hardwareId, v.installedVersion, v.online], ['ID.7', 'tcu-v2', '1.2.0', true]);
      assert.equal(v.lastSeen, h.clock.now());
      h.clock.advance(10);
      h.backend.engine.ingestPresence('SIM-9', {
        v: 1,
        msgId: crypto.randomUUID(),
        ts: 2,
        type: 'presence',
        online: false,
      });
      await h.backend.engine.flushNow();
      const off = await h.backend.service.getVehicle('SIM-9');
      assert.equal(off.online, false);
      assert.deepEqual(off.inventory, inventory);
      await h.tick(1000);
      const fleet = h.sink.fleet.filter((f) => f.model === 'ID.7').at(-1);
      assert.equal(fleet?.vehicles, 1);
      assert.deepEqual(fleet?.versions, { '1.2.0': 1 });
    } finally {
      await h.close();
    }
  });

  test('artifacts: stored by SHA-256 from a stream, idempotent, checked against a given hash', async () => {
    const h = await harness();
    const s = h.backend.service;
    try {
      const bytes = Buffer.alloc(300_000, 7);
      const meta = { name: 'fw', version: '2.1.0', hardwareIds: ['tcu-v2'] };
      const info = await s.putArtifact(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), meta);
      assert.equal(info.size, bytes.length);
      const again = await s.putArtifact(bytes, { ...meta, name: 'other' });
      assert.deepEqual(again, info);
      const file = await s.openArtifact(info.sha256);
      assert.equal(file.etag, `"${info.sha256}"`);
      assert.deepEqual(readFileSync(file.path), bytes);
      await assert.rejects(s.putArtifact(Buffer.from('x'), { ...meta, sha256: 'a'.repeat(64) }), {
        code: 'OTA_ERR_VALIDATION',
        field: 'sha256',
      });
      await assert.rejects(s.putArtifact(Buffer.from('x'), { ...meta, version: 'v2' }), { field: 'version' });
      await assert.rejects(s.getArtifact('b'.repeat(64)), { code: 'OTA_ERR_NOT_FOUND' });
      assert.equal((await s.listArtifacts()).items.length, 1);
    } finally {
      await h.close();
    }
  });

  test('signed URLs verify until they expire and not for another artifact or a changed signature', async () => {
    const h = await harness();
    const s = h.backend.service;
    try {
      const sha = 'c'.repeat(64);
      const url = new URL(s.signArtifactUrl(sha, 60_000));
      assert.equal(url.origin, 'https://127.0.0.1:8443');
      assert.equal(url.pathname, `/artifacts/${sha}`);
      const exp = url.searchParams.get('exp') ?? undefined;
      const sig = url.searchParams.get('sig') ?? undefined;
      assert.equal(s.verifyArtifactUrl(sha, exp, sig), true);
      assert.equal(s.verifyArtifactUrl('d'.repeat(64), exp, sig), false);
      assert.equal(s.verifyArtifactUrl(sha, String(Number(exp) + 1), sig), false);
      assert.equal(s.verifyArtifactUrl(sha, exp, undefined), false);
      h.clock.advance(61_000);
      assert.equal(s.verifyArtifactUrl(sha, exp, sig), false);
      const secret = readFileSync(`${h.dataDir}/keys/url-secret`);
      assert.deepEqual(verifyArtifactSignature(secret, sha, exp, sig, h.clock.now()), { ok: false, code: 'EXPIRED' });
    } finally {
      await h.close();
    }
  });

  test('manifests verify with the listed key; rotation signs new campaigns with a new key, the old stays listed', async () => {
    const h = await harness();
    const s = h.backend.service;
    try {
      const { id, vins } = await h.campaign(2);
      await s.startCampaign(id);
      const first = h.sink.ofType('job.notify')[0];
      assert.ok(first);
      const keys = await s.listSigningKeys();
      assert.equal(keys.length, 1);
      const trusted = new TrustedKeys(
        keys.map((k) => ({ keyId: k.keyId, publicKey: Buffer.from(k.publicKey, 'base64') })),
      );
      const options = {
        trustedKeys: trusted,
        verifySignature: verifyEd25519,
        hardwareId: 'tcu-v2',
        now: h.clock.now(),
      };
      assert.equal(verifyManifest(first.manifest, { ...options, installedVersion: '1.0.0' }).ok, true);
      const rotated = await s.rotateKey();
      const after = await s.listSigningKeys();
      assert.deepEqual(
        after.map((k) => k.active),
        [false, true],
      );
      assert.equal(after[1]?.keyId, rotated.keyId);
      const second = await s.createCampaign({
        name: 'again',
        artifact: first.manifest.manifest.sha256,
        target: { vins },
      });
      await s.cancelCampaign(id);
      h.sink.clear();
      await s.startCampaign(second.id);
      const next = h.sink.ofType('job.notify')[0];
      assert.equal(next?.manifest.manifest.keyId, rotated.keyId);
      assert.notEqual(rotated.keyId, first.manifest.manifest.keyId);
      trusted.add(rotated.keyId, Buffer.from(rotated.publicKey, 'base64'));
      assert.equal(verifyManifest(next?.manifest, { ...options, installedVersion: '1.0.0' }).ok, true);
      // Keys survive a restart.
      await h.restart();
      assert.deepEqual(
        (await h.backend.service.listSigningKeys()).map((k) => k.keyId),
        after.map((k) => k.keyId),
      );
    } finally {
      await h.close();
    }
  });

  test('campaign validation and selector targeting', async () => {
    const h = await harness();
    const s = h.backend.service;
    try {
      for (const [vin, region, hw] of [
        ['SIM-A', 'EU', 'tcu-v2'],
        ['SIM-B', 'US', 'tcu-v2'],
        ['SIM-C', 'EU', 'tcu-v1'],
        ['SIM-D', 'EU', 'tcu-v2'],
      ] as const) {
        await s.registerVehicle({
          vin,
          model: 'ID.4',
          region,
          hardwareId: hw,
          attributes: { trim: vin === 'SIM-D' ? 'base' : 'pro' },
        });
      }
      const art = await s.putArtifact(Buffer.from('fw'), { name: 'fw', version: '3.0.0', hardwareIds: ['tcu-v2'] });
      await assert.rejects(s.createCampaign({ name: 'x', artifact: 'e'.repeat(64), target: { vins: ['SIM-A'] } }), {
        field: 'artifact',
      });
      await assert.rejects(
        s.createCampaign({
          name: 'x',
          artifact: art.sha256,
          target: { vins: ['SIM-A'] },
          rollout: { kind: 'waves', waves: [{ percent: 50, successThreshold: 0 }] },
        }),
        { code: 'OTA_ERR_VALIDATION', field: 'rollout' },
      );
      await assert.rejects(s.createCampaign({ name: '', artifact: art.sha256, target: { vins: ['SIM-A'] } }), {
        field: 'name',
      });
      const bad = await s.createCampaign({ name: 'x', artifact: art.sha256, target: { vins: ['SIM-A', 'SIM-C'] } });
      await assert.rejects(s.startCampaign(bad.id), { code: 'OTA_ERR_VALIDATION', field: 'target/vins/1' });
      const unknown = await s.createCampaign({ name: 'x', artifact: art.sha256, target: { vins: ['SIM-Z'] } });
      await assert.rejects(s.startCampaign(unknown.id), { code: 'OTA_ERR_VALIDATION', field: 'target/vins/0' });
      const selected = await s.createCampaign({
        name: 'eu pro',
        artifact: art.sha256,
        target: { selector: { region: 'EU', attributes: { trim: 'pro' } } },
      });
      assert.equal(selected.state, 'DRAFT');
      const started = await s.startCampaign(selected.id);
      assert.equal(started.targets, 1, 'SIM-C has other hardware, SIM-D another trim, SIM-B another region');
      assert.deepEqual(h.sink.notified(), ['SIM-A']);
      await assert.rejects(s.startCampaign(selected.id), { code: 'OTA_ERR_INVALID_STATE' });
      await assert.rejects(s.getCampaign('nope'), { code: 'OTA_ERR_NOT_FOUND' });
      const list = await s.listCampaigns({ limit: 2 });
      assert.deepEqual(
        list.items.map((c) => c.id),
        [selected.id, unknown.id],
      );
      const rest = await s.listCampaigns({ limit: 2, cursor: list.nextCursor });
      assert.deepEqual(
        rest.items.map((c) => c.id),
        [bad.id],
      );
      const executions = await s.listExecutions(selected.id, { status: 'NOTIFIED' });
      assert.deepEqual(
        executions.items.map((e) => e.vin),
        ['SIM-A'],
      );
    } finally {
      await h.close();
    }
  });

  test('live events: execution changes, counts and campaign state, only after the commit', async () => {
    const h = await harness({});
    try {
      const { id, vins } = await h.campaign(2);
      const events: CampaignEvent[] = [];
      const unsubscribe = await h.backend.service.subscribeCampaign(id, (e) => events.push(e));
      await h.backend.service.startCampaign(id);
      await h.report(vins[0] as string, id, 1, 1, 'IN_PROGRESS', { progress: 30 });
      await h.tick(1000);
      assert.ok(events.some((e) => e.type === 'campaign.state' && e.to === 'RUNNING'));
      const progress = events.find((e) => e.type === 'execution' && e.status === 'IN_PROGRESS');
      assert.equal(progress?.type === 'execution' ? progress.progress : undefined, 30);
      const counts = events.filter((e) => e.type === 'counts').at(-1);
      assert.equal(counts?.type === 'counts' ? counts.counts.IN_PROGRESS : undefined, 1);
      unsubscribe();
      const seen = events.length;
      await h.report(vins[0] as string, id, 1, 2, 'SUCCEEDED');
      assert.equal(events.length, seen);
      await assert.rejects(
        h.backend.service.subscribeCampaign('nope', () => undefined),
        { code: 'OTA_ERR_NOT_FOUND' },
      );
    } finally {
      await h.close();
    }
  });

  test('an unusable data directory fails start with OTA_ERR_STORE naming the path; calls before start are refused', async () => {
    const backend = createBackend({
      dataDir: '/dev/null/otalink',
      publicBaseUrl: 'https://127.0.0.1:1',
      logger: silentLogger,
    });
    assert.throws(() => backend.service.stats(), { code: 'OTA_ERR_UNAVAILABLE' });
    await assert.rejects(backend.start(), (e: unknown) => {
      const err = e as { code?: string; message?: string };
      return err.code === 'OTA_ERR_STORE' && (err.message ?? '').includes('/dev/null/otalink');
    });
    await backend.close();
  });
});
