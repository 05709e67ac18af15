// Issue 6: updates a vehicle must refuse. Each vehicle gets a campaign it cannot accept (a tampered artifact, a
// manifest signed by a key it does not trust, an older version, an expired manifest, another hardware) and must end
// REJECTED at the backend with the refusal's code, its A/B slots untouched. The vehicles are offline while the
// campaigns start (the backend registered them as compatible), as vehicles that changed since registration would be.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { AgentRunner } from '@otalink/agent';
import type { ExecutionView } from '@otalink/backend';
import { startOurBroker } from './support/brokers.js';
import { artifactBytes, FACTORY_VERSION, HARDWARE_ID, MODEL, startHarness } from './support/harness.js';

function foreignKey(): { keyId: string; publicKey: Uint8Array } {
  const { publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  // The raw 32-byte Ed25519 key is the tail of its SPKI encoding.
  return { keyId: 'someone-else-1', publicKey: new Uint8Array(der.subarray(der.length - 32)) };
}

test('tampered artifact, unknown key, older version, expired manifest, wrong hardware: REJECTED with the reason, nothing installed', {
  timeout: 90_000,
}, async () => {
  const broker = await startOurBroker();
  const h = await startHarness({ brokerUrl: broker.url });
  try {
    const cases = {
      'E2E-TAMPERED': 'OTA_ERR_HASH_MISMATCH',
      'E2E-UNKNOWN-KEY': 'OTA_ERR_UNKNOWN_KEY',
      'E2E-OLDER': 'OTA_ERR_NOT_NEWER',
      'E2E-EXPIRED': 'OTA_ERR_MANIFEST_EXPIRED',
      'E2E-WRONG-HW': 'OTA_ERR_HARDWARE_MISMATCH',
    } as const;
    for (const vin of Object.keys(cases)) {
      await h.service.registerVehicle({
        vin,
        model: MODEL,
        hardwareId: HARDWARE_ID,
        installedVersion: FACTORY_VERSION,
      });
    }
    const campaignOf = new Map<string, string>();

    // Tampered: a second artifact, signed into the manifest at start, then changed on the backend's disk.
    const second = await h.service.putArtifact(
      artifactBytes(48 * 1024).map((b) => b ^ 0x5a),
      {
        name: 'e2e update (to be tampered)',
        version: '1.2.0',
        hardwareIds: [HARDWARE_ID],
      },
    );
    const tamperedDraft = await h.service.createCampaign({
      name: 'tampered',
      artifact: second.sha256,
      target: { vins: ['E2E-TAMPERED'] },
    });
    campaignOf.set('E2E-TAMPERED', (await h.service.startCampaign(tamperedDraft.id)).id);
    // Changed where the backend stores it, before anything read it: the backend keeps a small artifact in memory
    // once read and checked against its hash, so a later change on disk would never reach a vehicle.
    const handle = await open(join(h.home, 'backend', 'artifacts', second.sha256), 'r+');
    await handle.write(Buffer.from('tampered after signing'), 0, undefined, 1000);
    await handle.close();

    const main = await h.campaign(['E2E-UNKNOWN-KEY', 'E2E-OLDER', 'E2E-WRONG-HW']);
    for (const vin of ['E2E-UNKNOWN-KEY', 'E2E-OLDER', 'E2E-WRONG-HW']) campaignOf.set(vin, main.id);
    // Expiry has no clock-skew tolerance: a one-second manifest is stale by the time this vehicle shows up.
    const expiring = await h.campaign(['E2E-EXPIRED'], { manifestTtlMs: 1000 });
    campaignOf.set('E2E-EXPIRED', expiring.id);

    const runners = new Map<string, AgentRunner>();
    runners.set('E2E-TAMPERED', await h.startVehicle('E2E-TAMPERED', {}, false));
    runners.set('E2E-UNKNOWN-KEY', await h.startVehicle('E2E-UNKNOWN-KEY', { trustedKeys: [foreignKey()] }, false));
    runners.set('E2E-OLDER', await h.startVehicle('E2E-OLDER', { installedVersion: '2.0.0' }, false));
    runners.set('E2E-WRONG-HW', await h.startVehicle('E2E-WRONG-HW', { hardwareId: 'e2e-tcu-other' }, false));
    await delay(1500);
    runners.set('E2E-EXPIRED', await h.startVehicle('E2E-EXPIRED', {}, false));

    for (const [vin, code] of Object.entries(cases)) {
      const campaignId = campaignOf.get(vin) ?? '';
      const execution: ExecutionView = await h.waitForExecution(
        campaignId,
        vin,
        (e) => e.status !== 'QUEUED' && e.status !== 'NOTIFIED' && e.status !== 'IN_PROGRESS',
        30_000,
      );
      assert.equal(execution.status, 'REJECTED', `${vin}: ${JSON.stringify(execution)}`);
      assert.equal(execution.reason?.code, code, `${vin}: ${JSON.stringify(execution.reason)}`);
      const state = runners.get(vin)?.agent.state;
      assert.ok(state !== undefined);
      // Nothing installed: still on slot A with what it had, slot B never written.
      assert.equal(state.slots.active, 'A', vin);
      assert.equal(state.slots.A.version, vin === 'E2E-OLDER' ? '2.0.0' : FACTORY_VERSION, vin);
      assert.equal(state.slots.B.version, undefined, vin);
      assert.equal(runners.get(vin)?.lifetimes, 1, `${vin} restarted (an activation happened)`);
    }
  } finally {
    await h.close();
    await broker.close();
  }
});
