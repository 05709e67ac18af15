// `otalink sim` as a user runs it: a child process of 40 vehicles against a running stack (our broker with mutual
// TLS and the OTA ACL, the backend behind HTTPS), each vehicle with its own certificate issued by `otalink pki
// vehicle`. `--plan` says in advance how each vehicle ends; with every knob on (offline mid-download, failed
// installation, refused precondition, late arrival) the campaign's final counts and each vehicle's final state must
// be what the plan printed, the offline vehicles must really have lost their link mid-download, and the late ones
// must have been offline when the campaign started.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { ExecutionStatus } from '@otalink/ota';
import { pino } from 'pino';
import { type RunningStack, startStack } from '../../packages/cli/src/stack/stack.js';
import { killChildren, runCli, spawnCli, trustedKeyArgs } from './support/cli-process.js';

const VEHICLES = 40;
const SEED = '7';
const KNOBS = [
  '--offline-mid-download-share',
  '0.2',
  '--offline-ms',
  '1500',
  '--install-fail-share',
  '0.1',
  '--precondition-refuse-share',
  '0.1',
  '--late-join-share',
  '0.15',
  '--late-join-delay-ms',
  // Long enough for the early vehicles to be online over TLS on a loaded machine before the late ones start.
  '12000',
];

interface PlannedVehicle {
  vin: string;
  model: string;
  expected: ExecutionStatus;
  knobs: string[];
}

let stack: RunningStack | undefined;
let home: string | undefined;
after(async () => {
  await killChildren();
  await stack?.close();
  if (home !== undefined) await rm(home, { recursive: true, force: true });
});

test('otalink sim --vehicles 40 over mutual TLS: every knob plays out and the campaign ends as --plan predicted', {
  timeout: 240_000,
}, async () => {
  home = await mkdtemp(join(tmpdir(), 'otalink-e2e-sim-'));
  stack = await startStack({
    home,
    httpPort: 0,
    dashboardPort: false,
    mqttPort: 0,
    logger: pino({ level: process.env.OTA_E2E_LOG ?? 'silent' }),
    sysIntervalSeconds: 0,
    sampleArtifact: false,
  });
  const service = stack.backend.service;
  const caFile = join(home, 'pki', 'ca.pem');
  const keyArgs = await trustedKeyArgs(stack.http.url, caFile, join(home, 'keys'));

  // The plan: one line per VIN, the same for the same seed and knobs.
  const planned = await runCli(['sim', '--vehicles', String(VEHICLES), '--seed', SEED, ...KNOBS, '--plan']);
  assert.equal(planned.code, 0, planned.stderr);
  const plan: PlannedVehicle[] = planned.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [vin = '', model = '', expected = '', knobs = ''] = line.split('\t');
      return { vin, model, expected: expected as ExecutionStatus, knobs: knobs === '-' ? [] : knobs.split(',') };
    });
  assert.equal(plan.length, VEHICLES);
  const withKnob = (knob: string) => plan.filter((v) => v.knobs.includes(knob));
  const late = withKnob('late-join');
  const offline = withKnob('offline-mid-download');
  // The seed gives every knob at least one vehicle, and some vehicles with none, or the test proves less.
  for (const knob of ['precondition-refuse', 'install-fail', 'offline-mid-download', 'late-join']) {
    assert.ok(withKnob(knob).length > 0, `seed ${SEED} gives no vehicle ${knob}`);
  }
  assert.ok(plan.some((v) => v.knobs.length === 0));
  assert.deepEqual(
    plan.map((v) => v.expected),
    plan.map((v) =>
      v.knobs.includes('precondition-refuse')
        ? 'REJECTED'
        : v.knobs.includes('install-fail')
          ? 'ROLLED_BACK'
          : 'SUCCEEDED',
    ),
  );
  const predicted: Partial<Record<ExecutionStatus, number>> = {};
  for (const v of plan) predicted[v.expected] = (predicted[v.expected] ?? 0) + 1;

  // One certificate per VIN (CN = VIN), issued by the stack's dev CA.
  const certs = await runCli(['pki', 'vehicle', '--dir', join(home, 'pki'), ...plan.map((v) => v.vin)]);
  assert.equal(certs.code, 0, certs.stderr);

  // A vehicle whose certificate is missing is a usage error before anything connects.
  const missing = await runCli([
    'sim',
    '--vehicles',
    String(VEHICLES + 1),
    '--mqtt',
    stack.urls.mqttVehicles,
    '--ca',
    caFile,
    '--cert-dir',
    join(home, 'pki', 'vehicles'),
    ...keyArgs,
  ]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no certificate and key for SIM-000040/);

  for (const v of plan) {
    await service.registerVehicle({ vin: v.vin, model: v.model, hardwareId: 'tcu-v2', installedVersion: '2.0.3' });
  }
  // 64 KiB at 32 KiB/s: every download lasts about two seconds, so the offline knob lands in the middle of one.
  const artifact = await service.putArtifact(new Uint8Array(64 * 1024).fill(0x5a), {
    name: 'e2e sim update',
    version: '2.1.0',
    hardwareIds: ['tcu-v2'],
  });

  const sim = spawnCli([
    'sim',
    '--vehicles',
    String(VEHICLES),
    '--seed',
    SEED,
    ...KNOBS,
    '--download-bps',
    '32768',
    '--mqtt',
    stack.urls.mqttVehicles,
    '--ca',
    caFile,
    '--cert-dir',
    join(home, 'pki', 'vehicles'),
    '--artifact-ca',
    caFile,
    '--state-dir',
    join(home, 'sim-state'),
    ...keyArgs,
  ]);

  // Every vehicle but the late ones comes online with its own identity; the late ones are not there yet.
  const deadline = Date.now() + 60_000;
  const early = plan.filter((v) => !v.knobs.includes('late-join'));
  for (;;) {
    const online = await Promise.all(early.map(async (v) => (await service.getVehicle(v.vin)).online));
    if (online.every(Boolean)) break;
    assert.ok(Date.now() < deadline, `early vehicles not online in time:\n${sim.stdout()}\n${sim.stderr()}`);
    await delay(200);
  }
  for (const v of late) assert.equal((await service.getVehicle(v.vin)).online, false, `${v.vin} is late`);

  const draft = await service.createCampaign({
    name: 'e2e sim',
    artifact: artifact.sha256,
    target: { vins: plan.map((v) => v.vin) },
    preconditions: { parked: true },
  });
  await service.startCampaign(draft.id);
  let campaign = await service.getCampaign(draft.id);
  const end = Date.now() + 120_000;
  while (campaign.state === 'RUNNING' && Date.now() < end) {
    await delay(250);
    campaign = await service.getCampaign(draft.id);
  }
  assert.equal(campaign.state, 'COMPLETED', `${JSON.stringify(campaign.counts)}\n${sim.stdout()}`);
  for (const status of ['SUCCEEDED', 'ROLLED_BACK', 'REJECTED'] as const) {
    assert.equal(campaign.counts[status], predicted[status] ?? 0, `${status}: ${JSON.stringify(campaign.counts)}`);
  }

  const finalStatus = new Map<string, ExecutionStatus>();
  const executions = await service.listExecutions(draft.id, { limit: 1000 });
  for (const e of executions.items) finalStatus.set(e.vin, e.status);
  for (const v of plan) assert.equal(finalStatus.get(v.vin), v.expected, `${v.vin} (${v.knobs.join(',')})`);
  const refused = withKnob('precondition-refuse')[0]?.vin ?? '';
  const refusal = (await service.executionHistory(draft.id, refused)).executions[0];
  assert.equal(refusal?.reason?.code, 'AGENT_ERR_NOT_PARKED', JSON.stringify(refusal));

  // The offline knob cut each of its vehicles' link once, in the middle of a download (printed on every line).
  sim.proc.kill('SIGTERM');
  const exit = await sim.exited;
  assert.equal(exit.code, 0, sim.stderr().slice(-4000));
  const lastLine = sim.stdout().trim().split('\n').at(-1) ?? '';
  assert.match(lastLine, new RegExp(`offline-cuts ${offline.length} `), lastLine);
  assert.match(lastLine, new RegExp(`started ${VEHICLES}/${VEHICLES} `), lastLine);
});
