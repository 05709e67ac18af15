// One shard of the bench's fleet in its own process: connects its simulated vehicles (a bounded number of CONNECTs
// at a time), tells the parent `ready`, then `done` with the final statuses once every vehicle has finished.
// Input: a JSON FleetShardConfig in argv[2]. Talks to the parent over the fork IPC channel.
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { OtaTopics, TrustedKeys } from '@otalink/ota';
import { cpuSecondsSince } from './cpu.js';
import { SimVehicle, type VehicleContext } from './vehicle.js';

export interface FleetShardConfig {
  brokerUrl: string;
  vins: string[];
  hardwareId: string;
  installedVersion: string;
  /** Raw Ed25519 public keys, base64. */
  trustedKeys: Array<{ keyId: string; publicKey: string }>;
  caFile: string;
  connectConcurrency: number;
  httpSockets: number;
}

export type ShardMessage =
  /** rssMiB: the shard process's memory once its vehicles are connected and idle; rssBaseMiB: before any vehicle. */
  | { type: 'ready'; connected: number; connectMs: number; rssMiB: number; rssBaseMiB: number }
  /**
   * rssPeakMiB: the highest memory the shard process reached (sampled every 200 ms); cpuS: the process's CPU time
   * (user + system, all threads) from `ready` to `done`, which load from other processes inflates far less than
   * the wall-clock time.
   */
  | { type: 'done'; statuses: Record<string, number>; rssPeakMiB: number; cpuS: number }
  | { type: 'error'; message: string };

const send = (message: ShardMessage) => process.send?.(message);
const config = JSON.parse(process.argv[2] ?? '{}') as FleetShardConfig;
const rssBase = process.memoryUsage().rss;
const statuses: Record<string, number> = {};
let finished = 0;
let rssPeak = process.memoryUsage().rss;
const sampler = setInterval(() => {
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
}, 200);
let cpuAtReady = process.cpuUsage();
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: config.httpSockets });
const ctx: VehicleContext = {
  brokerUrl: config.brokerUrl,
  topics: new OtaTopics({ vinMode: 'simulation' }),
  trustedKeys: new TrustedKeys(
    config.trustedKeys.map((k) => ({ keyId: k.keyId, publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64')) })),
  ),
  hardwareId: config.hardwareId,
  installedVersion: config.installedVersion,
  httpsAgent,
  ca: readFileSync(config.caFile, 'utf8'),
  finished(_vin, status) {
    statuses[status] = (statuses[status] ?? 0) + 1;
    finished++;
    if (finished === vehicles.length) {
      send({
        type: 'done',
        statuses,
        rssPeakMiB: Math.max(rssPeak, process.memoryUsage().rss) / 1048576,
        cpuS: cpuSecondsSince(cpuAtReady),
      });
    }
  },
};
const vehicles = config.vins.map((vin) => new SimVehicle(vin, ctx));

async function connectAll(): Promise<void> {
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < vehicles.length) {
      const vehicle = vehicles[next++];
      if (vehicle !== undefined) await vehicle.start();
    }
  };
  await Promise.all(Array.from({ length: config.connectConcurrency }, worker));
  cpuAtReady = process.cpuUsage();
  send({
    type: 'ready',
    connected: vehicles.length,
    connectMs: Date.now() - started,
    rssMiB: process.memoryUsage().rss / 1048576,
    rssBaseMiB: rssBase / 1048576,
  });
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(sampler);
  await Promise.all(vehicles.map((v) => v.client.end({ force: true }).catch(() => undefined)));
  httpsAgent.destroy();
  process.exit(0);
}
process.on('disconnect', () => void stop());
process.on('message', (m: unknown) => {
  if (typeof m === 'object' && m !== null && (m as { type?: string }).type === 'stop') void stop();
});
connectAll().catch((err: unknown) => {
  send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  void stop();
});
