// One shard of the bench's fleet made of REAL agents (@otalink/sim createFleet: @otalink/agent per vehicle, its own
// MQTT connection, journal, resumable downloader and A/B slots in its own directory under config.stateRoot, restart
// in-process at activation). Same protocol with the parent as fleet-process.ts: `ready` once every vehicle has
// connected, `done` once every vehicle reported a final status, plus this process's memory so the bench can show
// what one agent costs.
import { readFileSync, rmSync } from 'node:fs';
import { createFleet } from '@otalink/sim';
import { cpuSecondsSince } from './cpu.js';
import type { FleetShardConfig, ShardMessage } from './fleet-process.js';

const FINAL = ['SUCCEEDED', 'FAILED', 'REJECTED', 'ROLLED_BACK', 'CANCELED', 'TIMED_OUT'];

const send = (message: ShardMessage) => process.send?.(message);
const config = JSON.parse(process.argv[2] ?? '{}') as FleetShardConfig & { firstIndex: number; stateRoot: string };
const rssBase = process.memoryUsage().rss;
const stateRoot = config.stateRoot;
let rssPeak = process.memoryUsage().rss;
const sampler = setInterval(() => {
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
}, 200);

const started = Date.now();
const fleet = await createFleet({
  vehicles: config.vins.length,
  firstIndex: config.firstIndex,
  vinPrefix: 'SIM-',
  models: ['bench-model'],
  mqtt: { url: config.brokerUrl, keepalive: 300 },
  hardwareId: config.hardwareId,
  installedVersion: config.installedVersion,
  trustedKeys: config.trustedKeys.map((k) => ({
    keyId: k.keyId,
    publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64')),
  })),
  stateRoot,
  download: { ca: readFileSync(config.caFile, 'utf8') },
  connectConcurrency: config.connectConcurrency,
  fsync: false,
});
const expected = new Set(config.vins);
if (!fleet.plan.every((v) => expected.has(v.vin))) {
  send({ type: 'error', message: 'the agent shard simulates other VINs than the bench registered' });
}
await fleet.ramped;
// Connected means the CONNACK arrived: wait for every session, not just for the connects to have been started.
while (fleet.counters.connected < config.vins.length && Date.now() - started < 120_000) {
  await new Promise((r) => setTimeout(r, 100));
}
const idle = process.memoryUsage();
const cpuAtReady = process.cpuUsage();
send({
  type: 'ready',
  connected: fleet.counters.connected,
  connectMs: Date.now() - started,
  rssMiB: idle.rss / 1048576,
  rssBaseMiB: rssBase / 1048576,
});

const poll = setInterval(() => {
  const states = fleet.counters.states;
  const finished = FINAL.reduce((sum, s) => sum + (states[s] ?? 0), 0);
  if (finished < config.vins.length) return;
  clearInterval(poll);
  const statuses: Record<string, number> = {};
  for (const s of FINAL) if ((states[s] ?? 0) > 0) statuses[s] = states[s] ?? 0;
  send({
    type: 'done',
    statuses,
    rssPeakMiB: Math.max(rssPeak, process.memoryUsage().rss) / 1048576,
    cpuS: cpuSecondsSince(cpuAtReady),
  });
}, 100);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(poll);
  clearInterval(sampler);
  await fleet.close().catch(() => undefined);
  rmSync(stateRoot, { recursive: true, force: true });
  process.exit(0);
}
process.on('disconnect', () => void stop());
// The parent's last word after `stop` (it removes the state directories itself).
process.on('SIGTERM', () => process.exit(0));
process.on('message', (m: unknown) => {
  if (typeof m === 'object' && m !== null && (m as { type?: string }).type === 'stop') void stop();
});
