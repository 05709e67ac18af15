// Issue 6: a campaign to 200 vehicles with 10 % induced failures on the embedded stack (our broker with mutual TLS
// and its ACL, the backend behind HTTPS, 200 real agents with their own certificates). The knobs fail 5 % of the
// vehicles at installation and roll back 5 % at the health check; the campaign must end with exactly those counts,
// and each vehicle in the final state its own knob chose.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { ExecutionStatus } from '@otalink/ota';
import { pino } from 'pino';
import { type AgentFleet, SIM_HARDWARE_ID, simulatedFleet } from '../../packages/cli/src/stack/fleet.js';
import { waitForOnline } from '../../packages/cli/src/stack/online.js';
import { type RunningStack, startStack } from '../../packages/cli/src/stack/stack.js';

const VEHICLES = 200;
const FATE_STATUS = { succeed: 'SUCCEEDED', 'install-fail': 'FAILED', rollback: 'ROLLED_BACK' } as const;

test('200 vehicles, 5 % install failures + 5 % rollbacks: 180 / 10 / 10, each vehicle as its knob says', {
  timeout: 180_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), 'otalink-e2e-fleet-'));
  let stack: RunningStack | undefined;
  try {
    stack = await startStack({
      home,
      httpPort: 0,
      dashboardPort: false,
      mqttPort: 0,
      logger: pino({ level: process.env.OTA_E2E_LOG ?? 'silent' }),
      sysIntervalSeconds: 0,
      // A 16 KiB artifact instead of the 256 KiB sample: 200 downloads over TLS are most of this test's time.
      sampleArtifact: false,
      fleet: simulatedFleet({ vehicles: VEHICLES, knobs: { installFailPercent: 5, rollbackPercent: 5 } }),
    });
    const fleet = stack.fleet as AgentFleet;
    const online = await waitForOnline(stack.backend, VEHICLES, 60_000);
    assert.ok(online.complete, `only ${online.online} of ${VEHICLES} online`);
    const service = stack.backend.service;
    const artifact = await service.putArtifact(new Uint8Array(16 * 1024).fill(0x42), {
      name: 'e2e fleet update',
      version: '1.1.0',
      hardwareIds: [SIM_HARDWARE_ID],
    });
    const draft = await service.createCampaign({
      name: 'e2e 200',
      artifact: artifact.sha256,
      target: { vins: [...fleet.vins] },
    });
    await service.startCampaign(draft.id);
    let campaign = await service.getCampaign(draft.id);
    const deadline = Date.now() + 120_000;
    while (campaign.state === 'RUNNING' && Date.now() < deadline) {
      await delay(250);
      campaign = await service.getCampaign(draft.id);
    }
    assert.equal(campaign.state, 'COMPLETED', JSON.stringify(campaign.counts));
    // The knobs' shares computed here, not taken from the fleet: round(200 × 5 %) = 10 each.
    assert.equal(campaign.counts.SUCCEEDED, 180, JSON.stringify(campaign.counts));
    assert.equal(campaign.counts.FAILED, 10, JSON.stringify(campaign.counts));
    assert.equal(campaign.counts.ROLLED_BACK, 10, JSON.stringify(campaign.counts));

    const finalStatus = new Map<string, ExecutionStatus>();
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await service.listExecutions(draft.id, {
        limit: 1000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const e of result.items) finalStatus.set(e.vin, e.status);
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
    assert.equal(finalStatus.size, VEHICLES);
    for (const [vin, fate] of fleet.fates) assert.equal(finalStatus.get(vin), FATE_STATUS[fate], vin);
    const failed = [...fleet.fates].find(([, fate]) => fate === 'install-fail')?.[0] ?? '';
    const failure = (await service.executionHistory(draft.id, failed)).executions[0];
    assert.equal(failure?.reason?.code, 'AGENT_ERR_INSTALL_FAILED');
    const rolled = [...fleet.fates].find(([, fate]) => fate === 'rollback')?.[0] ?? '';
    const rollback = (await service.executionHistory(draft.id, rolled)).executions[0];
    assert.equal(rollback?.reason?.code, 'AGENT_ERR_HEALTH_CHECK');
  } finally {
    await stack?.close();
    await rm(home, { recursive: true, force: true });
  }
});
