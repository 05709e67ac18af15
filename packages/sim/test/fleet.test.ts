// 50 simulated vehicles against a real broker, the test playing the backend: the seeded knobs produce exactly the
// outcomes planFleet predicted (REJECTED for refused preconditions, ROLLED_BACK for failed health checks, SUCCEEDED
// for the rest, including vehicles that lost their link mid-download and vehicles that joined late).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import { sha256Hex } from '@otalink/ota/node';
import { startArtifactServer } from '../../agent/test/support/artifact-server.js';
import { manifest, newKey, oldKey, signed } from '../../agent/test/support/fixtures.js';
import { TestBackend } from '../../agent/test/support/test-backend.js';
import { jobFields, silent } from '../../agent/test/support/vehicle.js';
import { createFleet, planFleet } from '../src/index.js';

const knobs = {
  preconditionRefuseShare: 0.2,
  installFailShare: 0.15,
  offlineMidDownloadShare: 0.2,
  offlineDurationMs: 800,
  lateJoinShare: 0.1,
  lateJoinDelayMs: 1500,
  downloadBytesPerSecond: 256 * 1024,
};

test('planFleet is deterministic by seed and follows the shares', () => {
  const a = planFleet({ vehicles: 1000, knobs, seed: 42 });
  const b = planFleet({ vehicles: 1000, knobs, seed: 42 });
  const c = planFleet({ vehicles: 1000, knobs, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const share = (f: (v: (typeof a)[number]) => boolean) => a.filter(f).length / a.length;
  assert.ok(Math.abs(share((v) => v.preconditionRefuse) - 0.2) < 0.05);
  assert.ok(Math.abs(share((v) => v.installFail) - 0.15) < 0.05);
  assert.ok(Math.abs(share((v) => v.lateJoin) - 0.1) < 0.05);
  assert.equal(a[7]?.vin, 'SIM-000007');
  for (const v of a) {
    assert.equal(v.expected, v.preconditionRefuse ? 'REJECTED' : v.installFail ? 'ROLLED_BACK' : 'SUCCEEDED');
  }
});

test('planFleet with firstIndex: a range of the fleet, each VIN with the same knobs as in the whole fleet', () => {
  const whole = planFleet({ vehicles: 300, knobs, seed: 9 });
  const middle = planFleet({ vehicles: 100, firstIndex: 100, knobs, seed: 9 });
  assert.equal(middle[0]?.vin, 'SIM-000100');
  assert.deepEqual(middle, whole.slice(100, 200));
});

test('50 vehicles, one campaign: every vehicle ends as predicted', { timeout: 120_000 }, async () => {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: silent,
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const url = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const artifacts = await startArtifactServer();
  const bytes = Buffer.alloc(128 * 1024, 7);
  artifacts.put('/fw.bin', bytes);
  const stateRoot = await mkdtemp(join(tmpdir(), 'otalink-sim-'));
  const backend = await TestBackend.start(url);
  const fleet = await createFleet({
    vehicles: 50,
    mqtt: { url },
    trustedKeys: [
      { keyId: 'oem-2025', publicKey: oldKey.publicKey },
      { keyId: 'oem-2026', publicKey: newKey.publicKey },
    ],
    stateRoot,
    download: { ca: artifacts.ca ?? '', initialDelayMs: 50, maxDelayMs: 400, maxAttempts: 50 },
    knobs,
    seed: 7,
    connectConcurrency: 10,
    logger: silent,
  });
  try {
    const predicted = planFleet({ vehicles: 50, knobs, seed: 7 });
    assert.deepEqual(fleet.plan, predicted);
    assert.ok(predicted.some((v) => v.expected === 'REJECTED'));
    assert.ok(predicted.some((v) => v.expected === 'ROLLED_BACK'));
    assert.ok(predicted.some((v) => v.offlineMidDownload && v.expected === 'SUCCEEDED'));
    assert.ok(predicted.some((v) => v.lateJoin));
    await fleet.ramped;
    const now = Date.now();
    const signedManifest = signed(
      manifest(
        { url: artifacts.url('/fw.bin'), issuedAt: now - 60_000, expiresAt: now + 3600_000, sha256: sha256Hex(bytes) },
        bytes,
      ),
    );
    // The backend releases every vehicle at once; late joiners are not connected yet and catch up by sync.
    for (const v of predicted) {
      await backend.notify(v.vin, jobFields(signedManifest, { preconditions: { parked: true } }));
    }
    const outcome = (vin: string) => backend.execution(vin, 'job-1')?.status;
    await backend.waitFor(
      () => predicted.every((v) => ['SUCCEEDED', 'REJECTED', 'ROLLED_BACK'].includes(outcome(v.vin) ?? '')),
      100_000,
      'every vehicle to finish',
    );
    for (const v of predicted) assert.equal(outcome(v.vin), v.expected, `${v.vin} (${JSON.stringify(v)})`);
    for (const v of predicted.filter((p) => p.expected === 'REJECTED')) {
      assert.equal(backend.execution(v.vin, 'job-1')?.reason?.code, 'AGENT_ERR_NOT_PARKED');
    }
    // Vehicles that lost their link mid-download resumed it: some requests carried a Range.
    assert.ok(artifacts.requests.some((r) => r.range !== undefined));
    const c = fleet.counters;
    assert.equal(c.started, 50);
    assert.ok(c.messagesIn >= 50 && c.messagesOut >= 50 * 3);
    const finished = (c.states.SUCCEEDED ?? 0) + (c.states.REJECTED ?? 0) + (c.states.ROLLED_BACK ?? 0);
    assert.equal(finished, 50);
    assert.equal(c.states.SUCCEEDED, predicted.filter((v) => v.expected === 'SUCCEEDED').length);
    assert.deepEqual(
      backend.ignored.filter((i) => !i.endsWith('DUPLICATE')),
      [],
    );
  } finally {
    await fleet.close();
    await backend.close();
    await artifacts.close();
    await broker.close();
    await rm(stateRoot, { recursive: true, force: true });
  }
});
