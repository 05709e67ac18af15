// OTA control-plane benchmark (issue 6): time from campaign start to every vehicle SUCCEEDED, status messages the
// backend ingests per second (from its stats()), and the backend's memory, for fleets of 1 k and 10 k simulated
// vehicles with a small artifact and no rate limit.
//
//   node --import tsx bench/ota.ts                         1000 and 10000 vehicles, each with every fleet
//   node --import tsx bench/ota.ts --vehicles 500,2000      or OTA_BENCH_VEHICLES=500,2000
//   options: --shards N (fleet processes, default 2), --artifact-bytes N (default 16384),
//            --fleet light,agent,agent-tmpfs (default all three; or OTA_BENCH_FLEET),
//            --downloads worker,api (default worker): artifacts from the backend's download worker thread (as
//            `otalink up` serves them), or from the API's own listener on the main event loop (one row each)
//   OTA_BENCH_AGENT_DIR=<dir>: the `agent` fleet's state directories go there instead of the run's temp directory
//   OTA_BENCH_CPU_PROF=<dir>: the broker and fleet processes write V8 CPU profiles there (--cpu-prof); for the
//            backend (this process) run `node --cpu-prof --import tsx bench/ota.ts ...`
//
// Three fleets, one row each: `light` is a protocol-level vehicle (bench/ota/vehicle.ts: MQTT, manifest check,
// download and hash, the reports; no disk), which measures the backend; `agent` runs the real TCU agent per vehicle
// (@otalink/sim createFleet: journal, resumable downloader, A/B slots on disk, activation restart), which is what a
// fleet of real vehicles costs the backend, and shows what one agent costs its process (fleet RSS per vehicle);
// `agent-tmpfs` is the same with the agents' state on /dev/shm: ten thousand vehicles' fsyncs (journal, download,
// slots: ~10 per update) queue on this machine's one disk, where real vehicles each have their own flash, so the
// difference between the two rows is the simulator's shared disk, not the control plane.
//
// Processes: this one runs only the backend (engine + SQLite + the HTTPS API, and the download worker thread or
// the API's listener the artifacts are downloaded from), so its memoryUsage() and cpuUsage() are the backend's; the broker (ours, plain TCP on loopback) runs in a child process; the fleet
// runs in `--shards` child processes, each vehicle with its own MQTT connection (persistent session, will), so no
// process comes near the 20 000 open-files limit and 10 k connections stay far below the ~28 k ephemeral ports.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BackendService, createBackend, startHttpServer } from '@otalink/backend';
import { loadOrCreateDevPki } from '@otalink/pki';
import { pino } from 'pino';
import { machineInfo } from './lib/machine.js';
import { formatTable } from './lib/table.js';
import type { FleetShardConfig, ShardMessage } from './ota/fleet-process.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const HARDWARE_ID = 'bench-tcu-1';
const FACTORY_VERSION = '1.0.0';
const MiB = 1024 * 1024;

/** agent-tmpfs: the agent fleet with its state directories on /dev/shm (fsync free, as if every vehicle had its own disk). */
type FleetKind = 'light' | 'agent' | 'agent-tmpfs';
/** Where the artifacts are served from: the backend's download worker thread, or the API's listener (main loop). */
type Downloads = 'worker' | 'api';

interface Result {
  vehicles: number;
  fleet: FleetKind;
  downloads: Downloads;
  /** Sum over the shard processes: before any vehicle, idle once connected, and the peak during the campaign. */
  fleetRssBaseMiB: number;
  fleetRssIdleMiB: number;
  fleetRssPeakMiB: number;
  connectS: number;
  campaignS: number;
  succeeded: number;
  statusPerS: number;
  statusReceived: number;
  rssPeakMiB: number;
  rssEndMiB: number;
  heapPeakMiB: number;
  /** CPU time of the backend process during the campaign (user + system), to tell a busy backend from a slow fleet. */
  backendCpuS: number;
  /** CPU time of the fleet processes (sum, all threads) from ready to done: the agents' own cost. */
  fleetCpuS: number;
  /** Messages the broker dropped from a full session queue (acknowledged to their sender, never delivered). */
  brokerDropped: number;
  /** CPU time of the broker process during the campaign: with the backend's and the fleet's, the machine's budget. */
  brokerCpuS: number;
  /** Longest stall of the backend's main event loop (API, SSE, MQTT ingest) during the campaign. */
  loopMaxMs: number;
  /** Longest poll of the campaign (getCampaign after a 50 ms timer) beyond its 50 ms: the stall a client sees. */
  pollMaxMs: number;
  /** TLS connections the artifact server accepted during the campaign (API listener only: the worker's are its own). */
  tlsFull: number;
  tlsResumed: number;
  outcome: string;
}

function sizes(): {
  vehicles: number[];
  fleets: FleetKind[];
  downloads: Downloads[];
  shards: number;
  artifactBytes: number;
  timeoutS: number;
} {
  const { values } = parseArgs({
    options: {
      vehicles: { type: 'string' },
      fleet: { type: 'string' },
      downloads: { type: 'string' },
      shards: { type: 'string' },
      'artifact-bytes': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const list = (values.vehicles ?? process.env.OTA_BENCH_VEHICLES ?? '1000,10000')
    .split(',')
    .map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 20_000)) {
    throw new Error(`vehicles: expected integers 1..20000, got "${list.join(',')}"`);
  }
  const fleets = (values.fleet ?? process.env.OTA_BENCH_FLEET ?? 'light,agent,agent-tmpfs')
    .split(',')
    .map((s) => s.trim());
  if (fleets.length === 0 || fleets.some((f) => f !== 'light' && f !== 'agent' && f !== 'agent-tmpfs')) {
    throw new Error(`fleet: expected a list of light, agent, agent-tmpfs, got "${fleets.join(',')}"`);
  }
  const downloads = (values.downloads ?? 'worker').split(',').map((s) => s.trim());
  if (downloads.length === 0 || downloads.some((d) => d !== 'worker' && d !== 'api')) {
    throw new Error(`downloads: expected a list of worker, api, got "${downloads.join(',')}"`);
  }
  const shards = Number(values.shards ?? process.env.OTA_BENCH_SHARDS ?? 2);
  if (!Number.isInteger(shards) || shards < 1 || shards > 8) throw new Error('shards: expected 1..8');
  return {
    vehicles: list,
    fleets: fleets as FleetKind[],
    downloads: downloads as Downloads[],
    shards,
    artifactBytes: Number(values['artifact-bytes'] ?? 16 * 1024),
    timeoutS: Number(values.timeout ?? 300),
  };
}

/** Node options of the child processes: tsx, and a CPU profile each when OTA_BENCH_CPU_PROF names a directory. */
function childExecArgv(): string[] {
  const profDir = process.env.OTA_BENCH_CPU_PROF;
  return ['--import', 'tsx', ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])];
}

async function startBrokerProcess(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...childExecArgv(), join(here, 'ota/broker-process.ts')], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /^port (\d+)$/.exec(line);
    if (m !== null) return { url: `mqtt://127.0.0.1:${m[1]}`, child };
  }
  throw new Error('the broker process exited before listening');
}

/**
 * Fails the run when a child process exits before the bench asks it to: the broker gone means no vehicle can ever
 * finish, and without this the bench would wait out its fleet and campaign limits (minutes) and then hang.
 */
class ChildWatch {
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private reject!: (error: Error) => void;
  stopping = false;

  constructor() {
    this.failed = new Promise<never>((_, reject) => {
      this.reject = reject;
    });
    this.failed.catch(() => undefined);
  }

  watch(child: ChildProcess, name: string): void {
    child.once('exit', (code, signal) => {
      if (this.stopping || this.failure !== undefined) return;
      this.failure = new Error(
        `bench ota: the ${name} exited during the run (${signal === null ? `code ${code}` : `signal ${signal}`}); stopping`,
      );
      this.failure.name = 'ChildExited';
      this.reject(this.failure);
    });
  }

  /** Throws the failure, if any. */
  check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** `promise`, unless a watched child exits first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.failed]);
  }
}

async function registerAll(service: BackendService, vins: string[]): Promise<void> {
  for (let i = 0; i < vins.length; i += 500) {
    await Promise.all(
      vins.slice(i, i + 500).map((vin) =>
        service.registerVehicle({
          vin,
          model: 'bench-model',
          hardwareId: HARDWARE_ID,
          installedVersion: FACTORY_VERSION,
        }),
      ),
    );
  }
}

function waitFor<T extends ShardMessage['type']>(
  child: ChildProcess,
  type: T,
  timeoutMs: number,
): Promise<Extract<ShardMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fleet shard: no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: ShardMessage) => {
      if (m.type === type) {
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(m as Extract<ShardMessage, { type: T }>);
      } else if (m.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`fleet shard: ${m.message}`));
      }
    };
    child.on('message', onMessage);
  });
}

async function runOnce(
  n: number,
  fleetKind: FleetKind,
  downloads: Downloads,
  shards: number,
  artifactBytes: number,
  timeoutS: number,
): Promise<Result> {
  const home = mkdtempSync(join(tmpdir(), 'otalink-bench-ota-'));
  // The agents' journals, downloads and slots: under the run's directory, or OTA_BENCH_AGENT_DIR (a tmpfs, say).
  const agentDir = fleetKind === 'agent-tmpfs' ? '/dev/shm' : process.env.OTA_BENCH_AGENT_DIR;
  const agentRoot = agentDir === undefined ? home : mkdtempSync(join(agentDir, 'otalink-bench-agents-'));
  const children: ChildProcess[] = [];
  const closers: Array<() => Promise<void>> = [];
  const watch = new ChildWatch();
  try {
    const broker = await startBrokerProcess();
    children.push(broker.child);
    watch.watch(broker.child, 'broker process');
    const pki = await loadOrCreateDevPki(join(home, 'pki'));
    let service: BackendService | undefined;
    const http = await startHttpServer({
      service: new Proxy({} as BackendService, {
        get(_t, name) {
          const target = service as unknown as Record<string | symbol, unknown>;
          const value = target[name];
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
      host: '127.0.0.1',
      port: 0,
    });
    closers.push(() => http.close());
    const tls = { full: 0, resumed: 0 };
    http.app.server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.isSessionReused()) tls.resumed += 1;
      else tls.full += 1;
    });
    const backend = createBackend({
      dataDir: join(home, 'backend'),
      mqtt: broker.url,
      vinMode: 'simulation',
      ...(downloads === 'api'
        ? { publicBaseUrl: http.url }
        : { downloads: { tls: { cert: pki.server.certPem, key: pki.server.keyPem }, host: '127.0.0.1', port: 0 } }),
      logger: pino({ level: 'silent' }),
    });
    await watch.race(backend.start());
    closers.push(() => backend.close());
    service = backend.service;
    const vins = Array.from({ length: n }, (_, i) => `SIM-${String(i + 1).padStart(6, '0')}`);
    await registerAll(service, vins);
    const bytes = new Uint8Array(artifactBytes).map((_, i) => (i * 131 + 17) & 0xff);
    const artifact = await service.putArtifact(bytes, { name: 'bench', version: '1.1.0', hardwareIds: [HARDWARE_ID] });
    const keys = (await service.listSigningKeys()).map((k) => ({ keyId: k.keyId, publicKey: k.publicKey }));

    const connectStarted = Date.now();
    const perShard = Math.ceil(n / shards);
    for (let s = 0; s < shards; s++) {
      const shardVins = vins.slice(s * perShard, (s + 1) * perShard);
      if (shardVins.length === 0) continue;
      const config: FleetShardConfig & { firstIndex: number; stateRoot: string } = {
        // VINs are SIM-000001..: the shard's first one (the light fleet takes the list, the agent fleet a range).
        firstIndex: s * perShard + 1,
        // Under the run's temp dir, which the parent removes however the shard ends.
        stateRoot: join(agentRoot, `agents-${s}`),
        brokerUrl: broker.url,
        vins: shardVins,
        hardwareId: HARDWARE_ID,
        installedVersion: FACTORY_VERSION,
        trustedKeys: keys,
        caFile: pki.paths.ca.cert,
        connectConcurrency: 100,
        httpSockets: 16,
      };
      children.push(
        fork(
          join(here, fleetKind === 'light' ? 'ota/fleet-process.ts' : 'ota/agent-fleet-process.ts'),
          [JSON.stringify(config)],
          {
            execArgv: childExecArgv(),
            stdio: 'inherit',
            // Thousands of agents share libuv's file-system threads (journal, download, hash, slots): 4 by default.
            env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
          },
        ),
      );
    }
    const fleets = children.slice(1);
    for (const [i, c] of fleets.entries()) watch.watch(c, `fleet process ${i + 1}`);
    const ready = await watch.race(Promise.all(fleets.map((c) => waitFor(c, 'ready', 180_000))));
    const connectS = (Date.now() - connectStarted) / 1000;
    // Let the presence burst settle so it is not counted as campaign work.
    while ((await service.stats()).ingestQueue > 0) {
      watch.check();
      await new Promise((r) => setTimeout(r, 100));
    }

    // A shard that never finishes (the campaign timed out) is a row with its outcome, not a crashed benchmark.
    const done = fleets.map((c) => waitFor(c, 'done', timeoutS * 1000 + 10_000).catch(() => undefined));
    const before = await service.stats();
    const tlsBefore = { ...tls };
    let rssPeak = process.memoryUsage().rss;
    let heapPeak = process.memoryUsage().heapUsed;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      rssPeak = Math.max(rssPeak, m.rss);
      heapPeak = Math.max(heapPeak, m.heapUsed);
    }, 100);
    process.stderr.write(`  fleet connected in ${connectS.toFixed(1)} s; campaign starts\n`);
    const draft = await service.createCampaign({ name: `bench ${n}`, artifact: artifact.sha256, target: { vins } });
    const started = Date.now();
    const cpuBefore = process.cpuUsage();
    broker.child.send({ type: 'cpu-mark' });
    await service.startCampaign(draft.id);
    let campaign = await service.getCampaign(draft.id);
    const deadline = started + timeoutS * 1000;
    let lastProgress = Date.now();
    // The backend's event loop: a long stall (a synchronous store call, a GC) shows here before anywhere else.
    const loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
    let loopMaxNs = 0;
    // What a client of the API sees: the longest a 50 ms poll of the campaign took beyond its 50 ms. A stalled loop
    // shows here even when the histogram above misses it (a 37 s block once reported a max of 0 ms).
    let pollMaxMs = 0;
    while (campaign.counts.SUCCEEDED < n && campaign.state === 'RUNNING' && Date.now() < deadline) {
      const pollStarted = performance.now();
      await new Promise((r) => setTimeout(r, 50));
      watch.check();
      campaign = await service.getCampaign(draft.id);
      pollMaxMs = Math.max(pollMaxMs, performance.now() - pollStarted - 50);
      if (Date.now() - lastProgress >= 2000) {
        lastProgress = Date.now();
        const s = await service.stats();
        const counts = Object.entries(campaign.counts)
          .filter(([, c]) => c > 0)
          .map(([k, c]) => `${k} ${c}`)
          .join(', ');
        process.stderr.write(
          `  ${((Date.now() - started) / 1000).toFixed(1)} s: ${counts}; status received ${s.statusReceived - before.statusReceived}, ingest queue ${s.ingestQueue}, commands ${s.commandsPublished - before.commandsPublished}, backend loop delay max ${(loopDelay.max / 1e6).toFixed(0)} ms\n`,
        );
        loopMaxNs = Math.max(loopMaxNs, loopDelay.max);
        loopDelay.reset();
      }
    }
    const campaignS = (Date.now() - started) / 1000;
    loopDelay.disable();
    loopMaxNs = Math.max(loopMaxNs, loopDelay.max);
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(sampler);
    const after = await service.stats();
    watch.check();
    const shardsDone = await Promise.race([
      Promise.all(done),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000)),
    ]);
    const fleetDone = shardsDone?.every((d) => d !== undefined) ? shardsDone.filter((d) => d !== undefined) : undefined;
    const fleetStatuses = fleetDone?.map((d) => d.statuses);
    const received = after.statusReceived - before.statusReceived;
    const brokerStats = await new Promise<{ droppedQueueFull?: number; cpuS?: number }>((resolve) => {
      const timer = setTimeout(() => resolve({}), 5000);
      broker.child.once('message', (m: { droppedQueueFull?: number; cpuS?: number }) => {
        clearTimeout(timer);
        resolve(m);
      });
      broker.child.send({ type: 'stats' });
    });
    const end = process.memoryUsage();
    return {
      vehicles: n,
      fleet: fleetKind,
      downloads,
      fleetRssBaseMiB: ready.reduce((sum, r) => sum + r.rssBaseMiB, 0),
      fleetRssIdleMiB: ready.reduce((sum, r) => sum + r.rssMiB, 0),
      fleetRssPeakMiB: fleetDone === undefined ? Number.NaN : fleetDone.reduce((sum, d) => sum + d.rssPeakMiB, 0),
      connectS,
      campaignS,
      succeeded: campaign.counts.SUCCEEDED,
      statusPerS: received / campaignS,
      statusReceived: received,
      rssPeakMiB: Math.max(rssPeak, end.rss) / MiB,
      rssEndMiB: end.rss / MiB,
      heapPeakMiB: Math.max(heapPeak, end.heapUsed) / MiB,
      backendCpuS: (cpu.user + cpu.system) / 1e6,
      fleetCpuS: fleetDone === undefined ? Number.NaN : fleetDone.reduce((sum, d) => sum + d.cpuS, 0),
      brokerDropped: brokerStats.droppedQueueFull ?? Number.NaN,
      brokerCpuS: brokerStats.cpuS ?? Number.NaN,
      loopMaxMs: loopMaxNs / 1e6,
      pollMaxMs,
      tlsFull: tls.full - tlsBefore.full,
      tlsResumed: tls.resumed - tlsBefore.resumed,
      outcome:
        campaign.counts.SUCCEEDED === n
          ? 'all SUCCEEDED'
          : `${campaign.state} ${JSON.stringify(campaign.counts)} fleet ${JSON.stringify(fleetStatuses)}`,
    };
  } finally {
    watch.stopping = true;
    for (const child of children.slice(1)) if (child.connected) child.send({ type: 'stop' });
    for (const close of closers.reverse()) await close().catch(() => undefined);
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    }
    rmSync(home, { recursive: true, force: true });
    rmSync(agentRoot, { recursive: true, force: true });
  }
}

const options = sizes();
const results: Result[] = [];
for (const n of options.vehicles) {
  for (const [fleet, downloads] of options.fleets.flatMap((f) => options.downloads.map((d) => [f, d] as const))) {
    process.stderr.write(`bench ota: ${n} vehicles, ${fleet} fleet, downloads from the ${downloads}...\n`);
    const result = await runOnce(n, fleet, downloads, options.shards, options.artifactBytes, options.timeoutS).catch(
      (error: unknown) => {
        const e = error as Error;
        process.stderr.write(`${e.name === 'ChildExited' ? e.message : e.stack}\n`);
        process.exit(1);
      },
    );
    process.stderr.write(
      `bench ota: ${n} ${fleet} ${downloads}: ${result.campaignS.toFixed(1)} s, backend loop max ${result.loopMaxMs.toFixed(0)} ms, longest poll ${result.pollMaxMs.toFixed(0)} ms, ${result.outcome}\n`,
    );
    results.push(result);
  }
}
const info = machineInfo();
process.stdout.write(
  `OTA campaign benchmark: node ${info.node}, ${info.cpu} x${info.cores}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}, ${info.date}\n` +
    `artifact ${options.artifactBytes} B over HTTPS (light: keep-alive pool per process; agent: a connection per download), ${options.shards} fleet processes, broker in its own process\n\n`,
);
process.stdout.write(
  `${formatTable(
    [
      'vehicles',
      'fleet',
      'downloads',
      'connect s',
      'start -> all SUCCEEDED s',
      'backend loop max ms',
      'longest poll ms',
      'status msgs',
      'status msgs/s',
      'backend RSS peak MiB',
      'RSS end MiB',
      'heap peak MiB',
      'backend CPU s',
      'fleet CPU s',
      'broker CPU s',
      'broker dropped',
      'TLS full / resumed',
      'fleet RSS base / idle / peak MiB',
      'KiB/vehicle idle',
      'KiB/vehicle peak',
      'outcome',
    ],
    results.map((r) => [
      r.vehicles,
      r.fleet,
      r.downloads,
      r.connectS,
      r.campaignS,
      r.loopMaxMs,
      r.pollMaxMs,
      r.statusReceived,
      r.statusPerS,
      r.rssPeakMiB,
      r.rssEndMiB,
      r.heapPeakMiB,
      r.backendCpuS,
      r.fleetCpuS,
      r.brokerCpuS,
      r.brokerDropped,
      r.downloads === 'api' ? `${r.tlsFull} / ${r.tlsResumed}` : 'in the worker',
      `${r.fleetRssBaseMiB.toFixed(0)} / ${r.fleetRssIdleMiB.toFixed(0)} / ${r.fleetRssPeakMiB.toFixed(0)}`,
      // Over the shard processes' own baseline (Node, tsx, the modules): what each vehicle adds.
      ((r.fleetRssIdleMiB - r.fleetRssBaseMiB) * 1024) / r.vehicles,
      ((r.fleetRssPeakMiB - r.fleetRssBaseMiB) * 1024) / r.vehicles,
      r.outcome,
    ]),
  )}\n`,
);
