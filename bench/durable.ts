// Durable broker benchmark: our broker with a data directory (store_sync batch, the default, and none) side by side
// with Mosquitto with persistence on, in one run, same load generator (in this process, raw sockets, MQTT 3.1.1).
//
//   node --import tsx bench/durable.ts            full run (~ 2–4 min), table on stdout
//   node --import tsx bench/durable.ts --quick    smaller counts
//   DURABLE_BENCH_ONLY=batch,mosquitto             some candidates only (batch, none, mosquitto)
//   DURABLE_BENCH_NODE_ARGS='--cpu-prof'           extra Node options for our broker's process (profiling)
//   BROKER_MODULE=/abs/path/broker/src/index.ts     our broker from another checkout (before/after comparisons)
//   --bundled                                      our broker bundled by esbuild first (plain JavaScript, no tsx loader):
//                                                  restart then measures the broker, not TypeScript compilation
// Otherwise our broker starts through bin/ts-loader.js as `otalink broker` does: on Node 20 a loader thread and one
// round trip per module through it (with tsx, until 2026-12-06: ~0.4 s of CPU of every start, all of it ~0.55 s;
// --bundled ~0.2 s; Mosquitto ~20 ms).
// See docs/durable-store.md, "Start-up".
//
// Measured per broker, each on a fresh data directory:
//   1. QoS 1 msgs/s from publishers (closed loop, a window of acks each) to offline persistent subscribers, until a
//      message cap or a time limit; every message is queued once per subscriber.
//   2. Drain rate: the subscribers reconnect and receive (and PUBACK) everything queued.
//   3. Restart with 100 k queued QoS 1 messages for one offline subscriber: SIGTERM → exit (Mosquitto writes its
//      database here), then spawn → accepting connections (load), then the subscriber drains them.
// Beside each rate, the broker process's CPU time (user + system, from /proc) per message of that phase, and its CPU
// time from spawn to accepting connections (empty directory and restart): steadier than rates on a shared machine.
// What the acknowledgement means differs and is the point of the comparison: ours sends PUBACK after the commit
// holding the message is fdatasync'ed (batch) or written (none); Mosquitto sends PUBACK at once and writes its
// whole in-memory database only every autosave_interval seconds (1800 here, its default) and at shutdown, so a
// crash loses everything since the last save.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BenchClient } from './durable/client.js';
import { freePort } from './lib/free-port.js';
import { machineInfo } from './lib/machine.js';
import { OTALINK_EXEC_ARGV } from './lib/otalink-loader.js';
import { formatTable } from './lib/table.js';

const QUICK = process.argv.includes('--quick');
const SUBSCRIBERS = 4;
const PUBLISHERS = 50;
const WINDOW = 10;
const PHASE_MS = QUICK ? 2000 : 5000;
const PHASE_CAP = QUICK ? 10_000 : 40_000;
const RESTART_COUNT = QUICK ? 20_000 : 100_000;
const PAYLOAD = Buffer.alloc(256, 0x61);
const MOSQUITTO = '/usr/sbin/mosquitto';
const OURS = fileURLToPath(new URL('./durable/ours.ts', import.meta.url));
const BUNDLED = process.argv.includes('--bundled');

/** `otalink broker` runs from source through bin/ts-loader.js (OTALINK_EXEC_ARGV); --bundled measures the same code as one plain JavaScript file. */
async function oursEntry(): Promise<{ args: string[]; cleanup(): void }> {
  if (!BUNDLED) return { args: [...OTALINK_EXEC_ARGV, OURS], cleanup: () => {} };
  const { buildSync } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'otalink-bench-durable-bundle-'));
  const outfile = join(dir, 'ours.mjs');
  buildSync({
    entryPoints: [OURS],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile,
    logLevel: 'error',
    // CommonJS dependencies (pino) call require().
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  return { args: [outfile], cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
const entry = await oursEntry();

interface Running {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
  /** Ours: ms from createBroker to listening (store load included), without process start-up. */
  loadMs?: number;
}

interface Candidate {
  name: string;
  start(dir: string): Promise<Running>;
}

async function waitListening(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`broker exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`nothing listening on ${port}`);
}

function ours(sync: 'batch' | 'none'): Candidate {
  return {
    name: `otalink (store_sync ${sync}${BUNDLED ? ', bundled' : ''})`,
    async start(dir) {
      const extra = process.env.DURABLE_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
      const child = spawn(process.execPath, [...extra, ...entry.args, JSON.stringify({ dataDir: dir, sync })], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`our broker exited with ${code}`)));
      });
      const match = /^PORT (\d+) (\d+)$/.exec(line);
      return { child, port: Number(match?.[1]), exited, loadMs: Number(match?.[2]) };
    },
  };
}

const mosquitto: Candidate = {
  name: 'mosquitto (persistence true)',
  async start(dir) {
    const port = await freePort();
    // Started as root, mosquitto drops to its own user, which must be able to write its database here.
    chmodSync(dir, 0o777);
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${dir}/`,
        // Mosquitto's defaults, written out: the database is saved every 30 min and at shutdown, not per message.
        'autosave_interval 1800',
        'autosave_on_changes false',
        'max_queued_messages 0',
        'max_inflight_messages 100',
        'set_tcp_nodelay true',
        'log_type error',
        'log_dest stderr',
        '',
      ].join('\n'),
    );
    const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitListening(child, port);
    return { child, port, exited };
  },
};

/**
 * CPU time (user + system, ms) the broker process has used so far, from /proc: far steadier than rates on a shared
 * machine, and the same measure for both brokers. NaN where /proc is missing.
 */
function cpuMs(running: Running): number {
  try {
    const stat = readFileSync(`/proc/${running.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

async function stop(running: Running): Promise<number> {
  const started = performance.now();
  running.child.kill('SIGTERM');
  await running.exited;
  return performance.now() - started;
}

/** Persistent subscribers that subscribe and go offline. */
async function prepareSubscribers(port: number, ids: string[]): Promise<void> {
  for (const id of ids) {
    const { client } = await BenchClient.open(port, id);
    await client.subscribe('bench/durable/#');
    await client.disconnect();
  }
}

/** Closed-loop QoS 1 publishers; returns acked messages within the window and in total. */
async function publish(port: number, limitMs: number, cap: number): Promise<{ rate: number; total: number }> {
  let issued = 0;
  let acked = 0;
  let ackedInWindow = 0;
  const started = performance.now();
  const deadline = started + limitMs;
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) => BenchClient.open(port, `bench-pub-${i}`, true)),
  );
  await Promise.all(
    clients.map(
      ({ client }, i) =>
        new Promise<void>((resolve) => {
          let inFlight = 0;
          let packetId = 0;
          const next = (): void => {
            while (inFlight < WINDOW && issued < cap && performance.now() < deadline) {
              issued++;
              inFlight++;
              packetId = (packetId % 60_000) + 1;
              client.send({
                type: 'publish',
                topic: `bench/durable/${i}`,
                payload: PAYLOAD,
                qos: 1,
                retain: false,
                dup: false,
                packetId,
              });
            }
            if (inFlight === 0) resolve();
          };
          client.onPacket = (packet) => {
            if (packet.type !== 'puback') return;
            inFlight--;
            acked++;
            if (performance.now() <= deadline) ackedInWindow++;
            next();
          };
          next();
        }),
    ),
  );
  const elapsed = Math.min(performance.now(), deadline) - started;
  for (const { client } of clients) await client.disconnect();
  return { rate: (ackedInWindow / elapsed) * 1000, total: acked };
}

/** Reconnects the subscribers and acknowledges until each has `expected` messages (or 5 s pass without one). */
async function drain(port: number, ids: string[], expected: number): Promise<{ rate: number; received: number }> {
  let received = 0;
  let last = performance.now();
  const started = performance.now();
  await Promise.all(
    ids.map(async (id) => {
      const { client } = await BenchClient.open(port, id);
      let mine = 0;
      await new Promise<void>((resolve) => {
        const idle = setInterval(() => {
          if (performance.now() - last > 5000) {
            clearInterval(idle);
            resolve();
          }
        }, 250);
        client.onPacket = (packet) => {
          if (packet.type !== 'publish') return;
          if (packet.packetId !== undefined) client.send({ type: 'puback', packetId: packet.packetId });
          mine++;
          received++;
          last = performance.now();
          if (mine >= expected) {
            clearInterval(idle);
            resolve();
          }
        };
      });
      await client.disconnect();
    }),
  );
  return { rate: (received / (last - started)) * 1000, received };
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.conf')) continue;
    total += statSync(join(dir, name)).size;
  }
  return total;
}

async function measure(candidate: Candidate): Promise<Array<string | number>> {
  const dir = mkdtempSync(join(tmpdir(), 'otalink-bench-durable-'));
  try {
    const subscribers = Array.from({ length: SUBSCRIBERS }, (_, i) => `bench-sub-${i}`);
    // Start-up on an empty directory: the process's own start cost, to read the restart time against.
    const emptyStarted = performance.now();
    let broker = await candidate.start(dir);
    const emptyStartMs = performance.now() - emptyStarted;
    const emptyStartCpuMs = cpuMs(broker);
    await prepareSubscribers(broker.port, subscribers);
    const cpuBefore = cpuMs(broker);
    const load = await publish(broker.port, PHASE_MS, PHASE_CAP);
    const cpuPublished = cpuMs(broker);
    const drained = await drain(broker.port, subscribers, load.total);
    const cpuDrained = cpuMs(broker);
    await stop(broker);
    rmSync(dir, { recursive: true, force: true });

    // Restart with RESTART_COUNT queued for one subscriber.
    const restartDir = mkdtempSync(join(tmpdir(), 'otalink-bench-durable-'));
    try {
      broker = await candidate.start(restartDir);
      await prepareSubscribers(broker.port, ['bench-restart']);
      const queued = await publish(broker.port, 600_000, RESTART_COUNT);
      const shutdownMs = await stop(broker);
      const bytes = dirBytes(restartDir);
      const spawned = performance.now();
      broker = await candidate.start(restartDir);
      const startMs = performance.now() - spawned;
      const startCpuMs = cpuMs(broker);
      const after = await drain(broker.port, ['bench-restart'], queued.total);
      await stop(broker);
      return [
        candidate.name,
        Math.round(load.rate),
        Number((((cpuPublished - cpuBefore) * 1000) / load.total).toFixed(1)),
        load.total,
        Math.round(drained.rate),
        Number((((cpuDrained - cpuPublished) * 1000) / drained.received).toFixed(1)),
        drained.received === load.total * SUBSCRIBERS ? 'all' : `${drained.received}/${load.total * SUBSCRIBERS}`,
        queued.total,
        Math.round(shutdownMs),
        Math.round(emptyStartMs),
        Math.round(emptyStartCpuMs),
        Math.round(startMs),
        Math.round(startCpuMs),
        broker.loadMs === undefined ? '-' : Math.round(broker.loadMs),
        Number((bytes / 1e6).toFixed(1)),
        after.received === queued.total ? 'all' : `${after.received}/${queued.total}`,
      ];
    } finally {
      rmSync(restartDir, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const machine = machineInfo();
console.log(
  `# durable broker benchmark — ${machine.date}, Node ${machine.node}, ${machine.cpu} x${machine.cores}, load ${loadavg()
    .map((n) => n.toFixed(1))
    .join(' ')}`,
);
console.log(
  `# ${PUBLISHERS} publishers x window ${WINDOW}, QoS 1, ${PAYLOAD.length} B payloads, ${SUBSCRIBERS} offline persistent subscribers (each message queued ${SUBSCRIBERS}x), phase ${PHASE_MS} ms or ${PHASE_CAP} messages; restart with ${RESTART_COUNT} queued for 1 subscriber`,
);
const rows: Array<Array<string | number>> = [];
const only = process.env.DURABLE_BENCH_ONLY?.split(',');
const candidates = { batch: ours('batch'), none: ours('none'), mosquitto };
for (const [key, candidate] of Object.entries(candidates)) {
  if (only !== undefined && !only.includes(key)) continue;
  try {
    rows.push(await measure(candidate));
  } catch (error) {
    rows.push([candidate.name, `failed: ${error instanceof Error ? error.message : String(error)}`]);
  }
}
console.log(
  formatTable(
    [
      'broker',
      'QoS1 msgs/s to offline',
      'CPU us/msg',
      'acked',
      'drain msgs/s',
      'CPU us/msg',
      'drained',
      'queued for restart',
      'shutdown ms',
      'empty start ms',
      'empty start CPU ms',
      'restart ms',
      'restart CPU ms',
      'of which load ms',
      'disk MB',
      'after restart',
    ],
    rows,
  ),
);
console.log(
  '# ours: PUBACK after fdatasync of the group commit (batch) or after write() (none); mosquitto: PUBACK at once, database written at autosave (1800 s) and shutdown only',
);
console.log(
  BUNDLED
    ? '# ours bundled by esbuild (no tsx loader); `otalink broker` itself runs from source through tsx, which adds its compile/load time to every start'
    : '# ours run from source through bin/ts-loader.js, as `otalink broker` runs: start-up includes the TypeScript loader (see "empty start ms")',
);
entry.cleanup();
