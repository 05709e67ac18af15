// `otalink agent --vin VIN` as a vehicle runs it: a child process with its own client certificate (CN = VIN, issued
// by `otalink pki vehicle`) over mutual TLS to the stack's broker, the artifact over HTTPS. The activation of the
// new version ends the process with exit code 75, and this test plays the supervisor (systemd Restart=always): it
// starts the next lifetime, which boots the new slot, passes its health check and reports SUCCEEDED. A second
// vehicle, run with --supervise, is SIGKILLed in the middle of its download; started again, it continues from the
// bytes its state directory holds (Range request, 206) instead of starting over, and ends SUCCEEDED without exiting.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Journal } from '@otalink/agent';
import type { ArtifactInfo, CampaignView } from '@otalink/backend';
import { pino } from 'pino';
import { type RunningStack, startStack } from '../../packages/cli/src/stack/stack.js';
import { type CliProcess, killChildren, runCli, spawnCli, trustedKeyArgs } from './support/cli-process.js';

const RESTART_EXIT_CODE = 75;
// ISO 3779 VINs: the agent runs in strict VIN mode, as on a real vehicle.
const VIN_RESTART = 'WVWZZZE1ZMP000001';
const VIN_KILLED = 'WVWZZZE1ZMP000002';
const VIN_PARKING = 'WVWZZZE1ZMP000003';

let stack: RunningStack;
let home: string;
let keyArgs: string[];

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'otalink-e2e-agent-'));
  stack = await startStack({
    home,
    httpPort: 0,
    dashboardPort: false,
    mqttPort: 0,
    logger: pino({ level: process.env.OTA_E2E_LOG ?? 'silent' }),
    sysIntervalSeconds: 0,
    sampleArtifact: false,
  });
  keyArgs = await trustedKeyArgs(stack.http.url, join(home, 'pki', 'ca.pem'), join(home, 'keys'));
  const certs = await runCli(['pki', 'vehicle', '--dir', join(home, 'pki'), VIN_RESTART, VIN_KILLED, VIN_PARKING]);
  assert.equal(certs.code, 0, certs.stderr);
});

after(async () => {
  await killChildren();
  await stack?.close();
  if (home !== undefined) await rm(home, { recursive: true, force: true });
});

function agentArgs(vin: string, extra: string[] = []): string[] {
  const pki = join(home, 'pki');
  return [
    'agent',
    '--vin',
    vin,
    '--state-dir',
    join(home, 'vehicles', vin),
    '--mqtt',
    stack.urls.mqttVehicles,
    '--cafile',
    join(pki, 'ca.pem'),
    '--cert',
    join(pki, 'vehicles', `${vin}.pem`),
    '--key',
    join(pki, 'vehicles', `${vin}-key.pem`),
    '--artifact-ca',
    join(pki, 'ca.pem'),
    ...keyArgs,
    ...extra,
  ];
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, `${what}: not in ${timeoutMs} ms`);
    await delay(100);
  }
}

async function online(vin: string, agent: CliProcess): Promise<void> {
  await until(
    `${vin} online\n${agent.stderr().slice(-3000)}`,
    async () => ((await stack.backend.service.getVehicle(vin)).online ? true : undefined),
    30_000,
  );
}

async function campaignTo(vin: string, artifact: ArtifactInfo): Promise<CampaignView> {
  const service = stack.backend.service;
  const draft = await service.createCampaign({
    name: `e2e ${vin}`,
    artifact: artifact.sha256,
    target: { vins: [vin] },
  });
  await service.startCampaign(draft.id);
  return draft;
}

async function finished(campaignId: string, timeoutMs: number): Promise<CampaignView> {
  return until(
    'campaign completed',
    async () => {
      const campaign = await stack.backend.service.getCampaign(campaignId);
      return campaign.state === 'RUNNING' ? undefined : campaign;
    },
    timeoutMs,
  );
}

function logLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function slotImageHash(vin: string, slot: 'A' | 'B'): Promise<string> {
  const bytes = await readFile(join(home, 'vehicles', vin, 'slots', slot, 'image.bin'));
  return createHash('sha256').update(bytes).digest('hex');
}

async function activeSlot(vin: string): Promise<string> {
  const state = await new Journal(join(home, 'vehicles', vin)).read();
  return state?.slots.active ?? 'none';
}

test('otalink agent: installs into the inactive slot, exits 75 to restart, the next lifetime reports SUCCEEDED', {
  timeout: 120_000,
}, async () => {
  const service = stack.backend.service;
  await service.registerVehicle({ vin: VIN_RESTART, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' });
  const artifact = await service.putArtifact(new Uint8Array(96 * 1024).fill(0x31), {
    name: 'agent e2e update',
    version: '1.1.0',
    hardwareIds: ['tcu-v2'],
  });

  const first = spawnCli(agentArgs(VIN_RESTART));
  await online(VIN_RESTART, first);
  const draft = await campaignTo(VIN_RESTART, artifact);
  // The supervisor's side of the contract: 75 means "start me again", anything else is an end.
  // (an unref'd guard: a pending timer would hold the test process open after the test)
  const firstExit = await Promise.race([
    first.exited,
    delay(60_000, undefined, { ref: false }).then(() => ({ code: 'no exit in 60 s', signal: null })),
  ]);
  assert.equal(firstExit.code, RESTART_EXIT_CODE, first.stderr().slice(-3000));
  // Before the restart: the new version sits in slot B, on trial; slot A still holds the factory version.
  const beforeRestart = await service.executionHistory(draft.id, VIN_RESTART);
  assert.notEqual(beforeRestart.executions[0]?.status, 'SUCCEEDED');
  assert.equal(await slotImageHash(VIN_RESTART, 'B'), artifact.sha256);

  const second = spawnCli(agentArgs(VIN_RESTART));
  const campaign = await finished(draft.id, 60_000);
  assert.equal(campaign.state, 'COMPLETED', JSON.stringify(campaign.counts));
  assert.equal(campaign.counts.SUCCEEDED, 1, JSON.stringify(campaign.counts));
  const vehicle = await service.getVehicle(VIN_RESTART);
  assert.equal(vehicle.installedVersion, '1.1.0');
  assert.equal(await activeSlot(VIN_RESTART), 'B');
  const log = logLines(second.stderr());
  assert.ok(!log.some((l) => l.msg === 'download starts'), 'the second lifetime downloads nothing');

  // A clean stop is exit 0: no restart wanted.
  second.proc.kill('SIGTERM');
  assert.equal((await second.exited).code, 0, second.stderr().slice(-3000));
});

test('otalink agent --supervise: SIGKILLed mid-download, restarted, resumes with Range from its journal', {
  timeout: 120_000,
}, async () => {
  const service = stack.backend.service;
  await service.registerVehicle({ vin: VIN_KILLED, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' });
  const size = 384 * 1024;
  const content = new Uint8Array(size);
  for (let i = 0; i < size; i++) content[i] = (i * 31) & 0xff;
  const artifact = await service.putArtifact(content, {
    name: 'agent e2e resume',
    version: '1.2.0',
    hardwareIds: ['tcu-v2'],
  });
  // 64 KiB/s: the download takes six seconds, long enough to kill the process in the middle of it.
  const extra = ['--supervise', '--download-bps', String(64 * 1024)];
  const partial = join(home, 'vehicles', VIN_KILLED, 'download.part');

  const first = spawnCli(agentArgs(VIN_KILLED, extra));
  await online(VIN_KILLED, first);
  const draft = await campaignTo(VIN_KILLED, artifact);
  const sizeAtKill = await until(
    'a third of the download on disk',
    async () => {
      const length = await stat(partial).then(
        (s) => s.size,
        () => 0,
      );
      return length >= size / 3 ? length : undefined;
    },
    30_000,
  );
  first.proc.kill('SIGKILL');
  assert.equal((await first.exited).signal, 'SIGKILL');
  const onDisk = (await stat(partial)).size;
  assert.ok(onDisk >= sizeAtKill && onDisk < size, `${onDisk} of ${size} bytes on disk after the kill`);

  const second = spawnCli(agentArgs(VIN_KILLED, extra));
  const campaign = await finished(draft.id, 60_000);
  assert.equal(campaign.state, 'COMPLETED', JSON.stringify(campaign.counts));
  assert.equal(campaign.counts.SUCCEEDED, 1, `${JSON.stringify(campaign.counts)}\n${second.stderr().slice(-3000)}`);

  // The second process asked for the rest only, and the server answered with that range.
  const responses = logLines(second.stderr()).filter(
    (l) => l.msg === 'download resumes' || l.msg === 'download starts',
  );
  assert.deepEqual(
    responses.map((l) => ({ msg: l.msg, status: l.status, offset: l.offset })),
    [{ msg: 'download resumes', status: 206, offset: onDisk }],
  );
  // --supervise restarted in-process for the activation: still the same process, now on slot B with the artifact.
  assert.equal(second.proc.exitCode, null);
  assert.equal(await activeSlot(VIN_KILLED), 'B');
  assert.equal(await slotImageHash(VIN_KILLED, 'B'), artifact.sha256);
  assert.equal((await service.getVehicle(VIN_KILLED)).installedVersion, '1.2.0');

  second.proc.kill('SIGTERM');
  assert.equal((await second.exited).code, 0, second.stderr().slice(-3000));
});

test('otalink agent --conditions: an unparked vehicle holds the update (paused), installs once the file says parked', {
  timeout: 120_000,
}, async () => {
  const service = stack.backend.service;
  await service.registerVehicle({ vin: VIN_PARKING, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' });
  const artifact = await service.putArtifact(new Uint8Array(8 * 1024).fill(0x77), {
    name: 'agent e2e parked',
    version: '1.3.0',
    hardwareIds: ['tcu-v2'],
  });
  const conditions = join(home, 'conditions.json');
  await writeFile(conditions, JSON.stringify({ parked: false, batteryPercent: 80, ownerConsent: true }));
  const agent = spawnCli(
    agentArgs(VIN_PARKING, ['--supervise', '--conditions', conditions, '--precondition-wait-ms', '60000']),
  );
  await online(VIN_PARKING, agent);
  const draft = await service.createCampaign({
    name: 'e2e parked',
    artifact: artifact.sha256,
    target: { vins: [VIN_PARKING] },
    preconditions: { parked: true },
  });
  await service.startCampaign(draft.id);
  // Downloaded and verified, then held: the vehicle says it waits, nothing is installed.
  const waiting = await until(
    'the execution waits for the precondition',
    async () => {
      const execution = (await service.executionHistory(draft.id, VIN_PARKING)).executions[0];
      return execution?.waiting === true || execution?.paused === true ? execution : undefined;
    },
    30_000,
  );
  assert.equal(waiting.status, 'IN_PROGRESS', JSON.stringify(waiting));
  assert.equal(await activeSlot(VIN_PARKING), 'A');

  // The vehicle parks: the next check (every 10 s) reads the file again and the update goes on.
  await writeFile(conditions, JSON.stringify({ parked: true, batteryPercent: 80, ownerConsent: true }));
  const campaign = await finished(draft.id, 60_000);
  assert.equal(campaign.counts.SUCCEEDED, 1, `${JSON.stringify(campaign.counts)}\n${agent.stderr().slice(-3000)}`);
  assert.equal(await activeSlot(VIN_PARKING), 'B');
  agent.proc.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0, agent.stderr().slice(-3000));
});
