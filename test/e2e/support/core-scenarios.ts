// The end-to-end core run against any broker: a small campaign to SUCCEEDED, and a vehicle that is offline when the
// campaign starts and catches up when it comes back (its persistent session and the backend's renotify).
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { installedVersionOf } from '@otalink/agent';
import { startHarness, UPDATE_VERSION } from './harness.js';

export async function smallCampaignSucceeds(brokerUrl: string, vehicles = 5): Promise<void> {
  const h = await startHarness({ brokerUrl });
  try {
    const vins = Array.from({ length: vehicles }, (_, i) => `E2E-CORE-${i + 1}`);
    const runners = await Promise.all(vins.map((vin) => h.startVehicle(vin)));
    await h.waitForOnline(vins, 20_000);
    const started = await h.campaign(vins);
    const done = await h.waitForCampaignEnd(started.id, 45_000);
    assert.equal(done.state, 'COMPLETED', JSON.stringify(done.counts));
    assert.equal(done.counts.SUCCEEDED, vehicles, JSON.stringify(done.counts));
    for (const runner of runners) {
      assert.equal(installedVersionOf(runner.agent.state.slots), UPDATE_VERSION);
    }
  } finally {
    await h.close();
  }
}

export async function offlineVehicleCatchesUp(brokerUrl: string): Promise<void> {
  const h = await startHarness({ brokerUrl });
  try {
    const online = 'E2E-ONLINE-1';
    const late = 'E2E-LATE-1';
    await h.startVehicle(online);
    // The late vehicle has been online once (its persistent session exists), then drops off the network.
    const first = await h.startVehicle(late);
    await h.waitForOnline([online, late], 20_000);
    await first.close();
    const started = await h.campaign([online, late], { timers: { renotifyAfterMs: 2000 } });
    await h.waitForExecution(started.id, online, (e) => e.status === 'SUCCEEDED', 30_000);
    const waiting = (await h.service.executionHistory(started.id, late)).executions[0];
    assert.ok(waiting !== undefined && ['QUEUED', 'NOTIFIED'].includes(waiting.status), JSON.stringify(waiting));
    await delay(500);
    const back = await h.startVehicle(late, {}, false);
    const done = await h.waitForCampaignEnd(started.id, 40_000);
    assert.equal(done.state, 'COMPLETED', JSON.stringify(done.counts));
    assert.equal(done.counts.SUCCEEDED, 2, JSON.stringify(done.counts));
    assert.equal(installedVersionOf(back.agent.state.slots), UPDATE_VERSION);
  } finally {
    await h.close();
  }
}
