// End to end with a real broker (ours, and Mosquitto when installed): the test plays the backend, publishes a
// signed job.notify and follows the vehicle's reports up to SUCCEEDED (or ROLLED_BACK) and its retained presence,
// over MQTT 3.1.1 and 5.0, with the activation restart done in-process from the journal.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireProgram } from '../../../test/support/system.js';
import { Mosquitto } from '../../mqtt/test/client/mosquitto.js';
import { runAgent } from '../src/index.js';
import type { ArtifactServer } from './support/artifact-server.js';
import { ARTIFACT, T0 } from './support/fixtures.js';
import { type LiveRig, startLiveRig } from './support/live-rig.js';
import { TestBackend } from './support/test-backend.js';
import { jobFields, tempDir, vehicleOptions } from './support/vehicle.js';

let rig: LiveRig;
let url: string;
let artifacts: ArtifactServer;

before(async () => {
  rig = await startLiveRig({ '/fw-2.1.0.bin': ARTIFACT });
  ({ url, artifacts } = rig);
});
after(() => rig.close());

const liveManifest = () => rig.liveManifest('/fw-2.1.0.bin');

async function updateOnce(brokerUrl: string, vin: string, protocolVersion: 4 | 5) {
  const dir = await tempDir();
  const backend = await TestBackend.start(brokerUrl, protocolVersion);
  const runner = await runAgent(
    vehicleOptions(vin, dir.path, brokerUrl, artifacts.ca, {
      mqtt: { url: brokerUrl, protocolVersion, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
    }),
  );
  try {
    await backend.waitFor(() => backend.presence.get(vin)?.online === true, 10_000, 'presence online');
    const first = backend.presence.get(vin);
    assert.equal(first?.inventory?.installedVersion, '2.0.3');
    assert.equal(first?.inventory?.hardwareId, 'tcu-v2');
    assert.equal(first?.inventory?.model, 'ID.4');
    assert.equal(first?.inventory?.slots.active, 'A');
    await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');

    await backend.notify(vin, jobFields(liveManifest()));
    await backend.waitFor(
      () => backend.statuses.get(vin)?.some((s) => s.status !== 'IN_PROGRESS') === true,
      30_000,
      'an outcome',
    );
    const lines = backend.statusLine(vin);
    assert.deepEqual(
      lines.filter((l, i) => l !== lines[i - 1]),
      [
        'IN_PROGRESS DOWNLOADING',
        'IN_PROGRESS VERIFYING',
        'IN_PROGRESS INSTALLING',
        'IN_PROGRESS ACTIVATING',
        'SUCCEEDED',
      ],
    );
    const seqs = (backend.statuses.get(vin) ?? []).map((s) => s.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length, 'seq strictly increasing, no duplicate');
    const execution = backend.execution(vin, 'job-1');
    assert.equal(execution?.status, 'SUCCEEDED');
    assert.equal(execution?.installedVersion, '2.1.0');
    assert.deepEqual(backend.ignored, []);
    assert.equal(runner.lifetimes, 2, 'activated by a restart from the journal');

    await backend.waitFor(
      () => backend.presence.get(vin)?.inventory?.installedVersion === '2.1.0',
      10_000,
      'presence with the new version',
    );
    const presence = backend.presence.get(vin);
    assert.equal(presence?.online, true);
    assert.deepEqual(presence?.inventory?.slots, { active: 'B', A: { version: '2.0.3' }, B: { version: '2.1.0' } });

    // The retained presence as a newcomer sees it.
    const late = await TestBackend.start(brokerUrl, protocolVersion);
    try {
      await late.waitFor(() => late.presence.get(vin) !== undefined, 10_000, 'retained presence');
      assert.equal(late.presence.get(vin)?.inventory?.installedVersion, '2.1.0');
    } finally {
      await late.close();
    }

    await runner.close();
    await backend.waitFor(() => backend.presence.get(vin)?.online === false, 10_000, 'presence offline');
  } finally {
    await runner.kill();
    await backend.close();
    await dir.remove();
  }
}

describe('agent against our broker', () => {
  test('MQTT 5.0: notify → SUCCEEDED, presence and inventory', async () => {
    await updateOnce(url, 'SIM-E2E-5', 5);
  });

  test('MQTT 3.1.1: notify → SUCCEEDED, presence and inventory', async () => {
    await updateOnce(url, 'SIM-E2E-4', 4);
  });

  test('a failing health check rolls back and the presence keeps the old version', async () => {
    const vin = 'SIM-E2E-RB';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    const runner = await runAgent(
      vehicleOptions(vin, dir.path, url, artifacts.ca, {
        hooks: { healthCheck: () => ({ ok: false, text: 'tcu-core crashed at boot' }) },
      }),
    );
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await backend.notify(vin, jobFields(liveManifest()));
      await backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'ROLLED_BACK', 30_000, 'rollback');
      assert.equal(backend.execution(vin, 'job-1')?.reason?.code, 'AGENT_ERR_HEALTH_CHECK');
      assert.equal(backend.execution(vin, 'job-1')?.installedVersion, '2.0.3');
      await backend.waitFor(() => backend.presence.get(vin)?.inventory?.slots.active === 'A', 10_000, 'presence A');
      assert.equal(runner.agent.state.slots.active, 'A');
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });

  test('a manifest from an untrusted signer is REJECTED over MQTT and nothing is downloaded', async () => {
    const vin = 'SIM-E2E-REJ';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    const runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca));
    const before = artifacts.requests.length;
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      const bad = liveManifest();
      await backend.notify(vin, jobFields({ ...bad, manifest: { ...bad.manifest, size: bad.manifest.size + 1 } }));
      await backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'REJECTED', 10_000, 'rejection');
      assert.equal(backend.execution(vin, 'job-1')?.reason?.code, 'OTA_ERR_BAD_SIGNATURE');
      assert.equal(artifacts.requests.length, before);
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });

  test('offline while notified: the job waits in the persistent session, then separateInstall waits for job.resume', async () => {
    const vin = 'SIM-E2E-OFF';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    let runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca));
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await runner.close();
      // Notified while the vehicle is away: the broker queues it in the vehicle's session.
      await backend.notify(vin, jobFields(liveManifest(), { separateInstall: true }));
      runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca));
      await backend.waitFor(
        () => backend.statusLine(vin).includes('IN_PROGRESS VERIFYING paused'),
        30_000,
        'waiting for the go-ahead (separateInstall)',
      );
      await backend.resume(vin, 'job-1');
      await backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'SUCCEEDED', 30_000, 'success');
      assert.deepEqual(backend.ignored, []);
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });
});

describe('agent against Mosquitto', () => {
  test('MQTT 5.0 and 3.1.1 through Mosquitto: notify → SUCCEEDED', async (t) => {
    const binary = requireProgram(t, 'mosquitto');
    if (binary === undefined) return;
    const mosquitto = await Mosquitto.start(binary);
    try {
      await updateOnce(mosquitto.url, 'SIM-MOSQ-5', 5);
      await updateOnce(mosquitto.url, 'SIM-MOSQ-4', 4);
    } finally {
      await mosquitto.stop();
    }
  });
});

void T0;
