// Client benchmark: otalink's MQTT client and MQTT.js side by side in one run, against the same Mosquitto.
//
//   node --import tsx bench/client.ts                  full run (~ 5 min), table on stdout
//   node --import tsx bench/client.ts --quick          fewer messages and 2 000 idle clients
//   node --import tsx bench/client.ts --json out.json  also write every measurement as JSON
//   node --import tsx bench/client.ts --only=publish,drain --window=20
//   node --import tsx bench/client.ts --only=publish-our-broker    the publish rows against our broker
//   node --import tsx bench/client.ts --only=store     ours on its default file store (a client id, no store option)
//
// Every case runs in its own Node process (bench/client/worker.ts) against a freshly started Mosquitto, so no
// case inherits another's heap, JIT state or broker state. Both clients get the same window of unacknowledged
// QoS 1/2 publishes: Mosquitto's max_inflight_messages, which Mosquitto 2.0 also announces to 5.0 clients as its
// Receive Maximum (20 by default). Ours keeps that window itself (Receive Maximum, and maxInflight for 3.1.1);
// MQTT.js ignores Receive Maximum, so its promise API is driven with the same number of publishes outstanding.
// Publish rows also give the broker's CPU share over the timed rounds (from /proc): a broker near 100 % of a core is
// the ceiling for both clients. The same publish rows run against our broker too (its own process, the same window).
//
// A window of 20 makes the 5.0 rows depend on wake-ups as much as on either client: Mosquitto handles one packet per
// loop turn and writes each PUBACK at once, and a write to a client asleep in epoll pays for waking it on the other
// core (costly in a VM). A client that spends more CPU per message is asleep less often. `taskset -c 0 npm run
// bench:client -- --only=publish` puts every process on one core: no cross-core wake-ups, the rate then follows the
// CPU both processes spend per message.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleSizes } from './client/bundle.js';
import { mqttjs } from './client/libs.js';
import { BenchMosquitto, LOOPBACK_HOSTS, type MosquittoSettings, mosquittoVersion } from './client/mosquitto.js';
import { BenchOtalinkBroker } from './client/otalink-broker.js';
import type { CaseResult, CaseSpec } from './client/protocol.js';
import { killCases, runCase } from './client/run-case.js';
import { machineInfo } from './lib/machine.js';
import { median } from './lib/measure.js';
import { formatTable } from './lib/table.js';

type Section = 'publish' | 'publish-our-broker' | 'receive' | 'memory' | 'drain' | 'store' | 'bundle';
const SECTIONS: Section[] = ['publish', 'publish-our-broker', 'receive', 'memory', 'drain', 'store', 'bundle'];
const LIBS = ['otalink', 'mqttjs'] as const;

interface Options {
  quick: boolean;
  json: string | undefined;
  only: Section[];
  /** 5.0: Mosquitto's max_inflight_messages, i.e. the Receive Maximum it announces. */
  window: number;
  /** 3.1.1 has no Receive Maximum: ours sends without a cap by default (65 535 ids), MQTT.js gets the same bound. */
  window311: number;
  publishMessages: number;
  rounds: number;
  /** Least duration of a publish round (and of its warm-up), in batches of publishMessages. */
  roundMs: number;
  floodMessages: number;
  idleClients: number;
  drainMessages: number;
  cpuProf: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  let json: string | undefined;
  let only = SECTIONS;
  let window = 20;
  let window311 = 65_535;
  let cpuProf: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--json') json = argv[++i];
    else if (arg.startsWith('--json=')) json = arg.slice(7);
    else if (arg.startsWith('--only=')) only = arg.slice(7).split(',') as Section[];
    else if (arg.startsWith('--window=')) window = Number(arg.slice(9));
    else if (arg.startsWith('--window311=')) window311 = Number(arg.slice(12));
    else if (arg.startsWith('--cpu-prof=')) cpuProf = arg.slice(11);
    else if (arg !== '--quick') throw new Error(`unknown option ${arg}`);
  }
  for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`unknown section ${s} (${SECTIONS.join(', ')})`);
  for (const w of [window, window311]) {
    if (!Number.isInteger(w) || w < 1 || w > 65535) throw new Error('--window and --window311 must be 1..65535');
  }
  return {
    quick,
    json,
    only,
    window,
    window311,
    publishMessages: quick ? 5000 : 20_000,
    rounds: quick ? 1 : 3,
    roundMs: quick ? 300 : 1000,
    floodMessages: quick ? 50_000 : 200_000,
    idleClients: quick ? 2000 : 10_000,
    drainMessages: 10_000,
    cpuProf,
  };
}

const versionName = (v: 4 | 5) => (v === 4 ? '3.1.1' : '5.0');
const rate = (r: CaseResult) => (r.ok && r.rates.length > 0 ? median(r.rates) : Number.NaN);

function fmtRate(r: CaseResult | undefined): string {
  if (r === undefined) return 'not run';
  if (!r.ok) return `failed: ${r.error ?? 'unknown'}`;
  const base = `${Math.round(rate(r)).toLocaleString('en-US')}/s`;
  if (r.received !== undefined && r.sent !== undefined && r.received < r.sent) {
    return `${base} (${r.received.toLocaleString('en-US')} of ${r.sent.toLocaleString('en-US')})`;
  }
  return base;
}

function cpuOf(r: CaseResult | undefined): number {
  return r?.ok && r.cpuUs !== undefined && r.cpuUs.length > 0 ? median(r.cpuUs) : Number.NaN;
}

function fmtCpu(r: CaseResult | undefined): string {
  const us = cpuOf(r);
  return Number.isFinite(us) ? `${us.toFixed(1)} µs` : '-';
}

function fmtRatio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '-';
}

function fmtBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n >= 10_240 ? `${(n / 1024).toFixed(1)} KB` : `${Math.round(n).toLocaleString('en-US')} B`;
}

function cpuRow(label: string, r: Partial<Record<'otalink' | 'mqttjs', CaseResult>>): string[] {
  return [label, fmtCpu(r.otalink), fmtCpu(r.mqttjs), fmtRatio(cpuOf(r.otalink), cpuOf(r.mqttjs)), ''];
}

/** "client % · broker %" of one core over the timed rounds (medians). */
function fmtShares(r: CaseResult | undefined): string {
  if (!r?.ok) return '-';
  const pct = (values: number[] | undefined) =>
    values !== undefined && values.length > 0 ? `${Math.round(median(values))}%` : '?';
  return `${pct(r.clientCpuPct)} · ${pct(r.brokerCpuPct)}`;
}

function shareRow(r: Partial<Record<'otalink' | 'mqttjs', CaseResult>>): string[] {
  return ['  CPU, % of one core: client · broker', fmtShares(r.otalink), fmtShares(r.mqttjs), '', ''];
}

/** The broker's CPU per message, and the rate that would fill one core at that cost: its ceiling. */
function fmtBrokerCost(r: CaseResult | undefined): string {
  const us = r?.ok && r.brokerCpuUs !== undefined && r.brokerCpuUs.length > 0 ? median(r.brokerCpuUs) : Number.NaN;
  if (!Number.isFinite(us) || us <= 0) return '-';
  return `${us.toFixed(1)} µs (≤ ${Math.round(1000 / us)}k/s)`;
}

function brokerRow(r: Partial<Record<'otalink' | 'mqttjs', CaseResult>>): string[] {
  return ['  broker CPU per message (its ceiling)', fmtBrokerCost(r.otalink), fmtBrokerCost(r.mqttjs), '', ''];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const settings: MosquittoSettings = { maxInflightMessages: options.window, maxQueuedMessages: 1_000_000 };
  const machine = machineInfo();
  const load = () =>
    loadavg()
      .map((n) => n.toFixed(2))
      .join(' ');
  const header = [
    `MQTT client benchmark · ${machine.date}${options.quick ? ' · --quick' : ''}`,
    `Node ${machine.node} · otalink @otalink/mqtt (this tree) · MQTT.js ${mqttjs.version} · mosquitto ${mosquittoVersion()} · ${machine.cpu} × ${machine.cores}`,
    `load average at start: ${load()} (other work on this machine shows up as noise)`,
    `mosquitto: max_inflight_messages ${settings.maxInflightMessages} (= Receive Maximum announced to 5.0 clients), max_queued_messages ${settings.maxQueuedMessages}, persistence false, set_tcp_nodelay true; restarted for every case`,
    `window (unacknowledged QoS 1/2 publishes), the same for both clients: 5.0 ${options.window} (ours: the Receive Maximum; MQTT.js: publishAsync with ${options.window} outstanding); 3.1.1 ${options.window311} (no Receive Maximum: ours' default, no cap; MQTT.js: as many outstanding)`,
    `publish: batches of ${options.publishMessages} × 64 B to one topic, no subscriber, for at least ${options.roundMs} ms a round; median of ${options.rounds} round(s) after a warm-up round; QoS 0 timed to the PUBACK of a QoS 1 message behind each batch`,
  ];
  process.stdout.write(`${header.join('\n')}\n\n`);

  const results: Record<string, Partial<Record<(typeof LIBS)[number], CaseResult>>> = {};
  const rows: string[][] = [];
  const base: Omit<CaseSpec, 'lib' | 'scenario' | 'version' | 'qos'> = {
    host: LOOPBACK_HOSTS[0],
    port: 0,
    window: options.window,
    messages: options.publishMessages,
    rounds: options.rounds,
    // Rounds of equal time, not count: 20 000 messages took ours 0.1 s, before V8 had optimized its hot path or grown
    // its young generation, and the row timed a client's first fraction of a second (QoS 1 5.0 against our broker:
    // 12.0 µs a message after a 2 000-message warm-up, 4-6 µs after a second of it; MQTT.js 21.5 and 10-12 µs).
    roundMs: options.roundMs,
    clients: options.idleClients,
  };

  const publishCase = (lib: (typeof LIBS)[number], version: 4 | 5, qos: 0 | 1 | 2): Omit<CaseSpec, 'port'> => ({
    ...base,
    lib,
    scenario: 'publish',
    version,
    qos,
    window: version === 5 ? options.window : options.window311,
  });
  // Ours with its default window: the server's Receive Maximum in 5.0, none in 3.1.1 (MQTT.js replays its offline
  // queue without any window either way).
  const drainCase = (lib: (typeof LIBS)[number], version: 4 | 5): Omit<CaseSpec, 'port'> => ({
    ...base,
    lib,
    scenario: 'drain',
    version,
    qos: 1,
    messages: options.drainMessages,
    window: 65_535,
  });

  async function both(
    key: string,
    make: (lib: (typeof LIBS)[number]) => Omit<CaseSpec, 'port'>,
    timeoutMs: number,
    server: 'mosquitto' | 'otalink' = 'mosquitto',
  ) {
    results[key] = {};
    for (const lib of LIBS) {
      const made = make(lib);
      // Ours enforces its Receive Maximum on QoS 2 in 3.1.1 too: it gets the case's window, as the clients do.
      const broker =
        server === 'mosquitto' ? await BenchMosquitto.create(settings) : new BenchOtalinkBroker(made.window);
      try {
        await broker.start();
        process.stderr.write(`${key} · ${lib}…`);
        const nodeFlags =
          options.cpuProf !== undefined && lib === 'otalink' ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProf}`] : [];
        const spec = { ...made, port: broker.port, brokerPid: broker.pid };
        const result = await runCase(spec, broker, { timeoutMs, nodeFlags });
        (results[key] as Record<string, CaseResult>)[lib] = result;
        process.stderr.write(` ${result.ok ? 'ok' : `failed: ${result.error}`}\n`);
      } finally {
        await broker.stop();
      }
    }
    return results[key] as Partial<Record<(typeof LIBS)[number], CaseResult>>;
  }

  for (const server of ['mosquitto', 'otalink'] as const) {
    if (!options.only.includes(server === 'mosquitto' ? 'publish' : 'publish-our-broker')) continue;
    const against = server === 'mosquitto' ? '' : ' · our broker';
    for (const version of [4, 5] as const) {
      for (const qos of [0, 1, 2] as const) {
        const r = await both(
          `publish QoS ${qos} ${versionName(version)}${against}`,
          (lib) => publishCase(lib, version, qos),
          300_000,
          server,
        );
        const aim = qos === 1 && server === 'mosquitto' ? '≥ 3× MQTT.js' : '';
        const ratio = rate(r.otalink ?? { ok: false, rates: [] }) / rate(r.mqttjs ?? { ok: false, rates: [] });
        rows.push([
          `publish QoS ${qos}, ${versionName(version)}${against} (msg/s)`,
          fmtRate(r.otalink),
          fmtRate(r.mqttjs),
          fmtRatio(rate(r.otalink ?? { ok: false, rates: [] }), rate(r.mqttjs ?? { ok: false, rates: [] })),
          aim === '' ? '' : `${aim}: ${ratio >= 3 ? 'met' : 'not met'}`,
        ]);
        rows.push(cpuRow('  client CPU per message', r));
        rows.push(shareRow(r));
        rows.push(brokerRow(r));
      }
    }
  }

  if (options.only.includes('receive')) {
    for (const version of [4, 5] as const) {
      const r = await both(
        `receive QoS 0 ${versionName(version)}`,
        (lib) => ({ ...base, lib, scenario: 'receive', version, qos: 0, messages: options.floodMessages }),
        300_000,
      );
      rows.push([
        `receive QoS 0, ${versionName(version)} (msg/s, ${options.floodMessages.toLocaleString('en-US')} flooded)`,
        fmtRate(r.otalink),
        fmtRate(r.mqttjs),
        fmtRatio(rate(r.otalink ?? { ok: false, rates: [] }), rate(r.mqttjs ?? { ok: false, rates: [] })),
        '',
      ]);
      rows.push(cpuRow('  client CPU per message', r));
    }
  }

  if (options.only.includes('memory')) {
    const r = await both(
      `memory ${options.idleClients} idle clients`,
      (lib) => ({
        ...base,
        lib,
        scenario: 'memory',
        version: 5,
        qos: 0,
        hosts: [...LOOPBACK_HOSTS],
        clients: options.idleClients,
      }),
      600_000,
    );
    const cell = (c: CaseResult | undefined, field: 'heapPerClient' | 'rssPerClient') =>
      c === undefined ? 'not run' : c.ok ? fmtBytes(c[field]) : `failed: ${c.error}`;
    const heapRatio = fmtRatio(r.otalink?.heapPerClient ?? Number.NaN, r.mqttjs?.heapPerClient ?? Number.NaN);
    const heap = r.otalink?.heapPerClient ?? Number.NaN;
    rows.push([
      `heap per idle client (${options.idleClients.toLocaleString('en-US')} in one process, 5.0)`,
      cell(r.otalink, 'heapPerClient'),
      cell(r.mqttjs, 'heapPerClient'),
      heapRatio,
      `≤ 10 KB: ${heap <= 10_240 ? 'met' : 'not met'}`,
    ]);
    rows.push([
      'RSS per idle client',
      cell(r.otalink, 'rssPerClient'),
      cell(r.mqttjs, 'rssPerClient'),
      fmtRatio(r.otalink?.rssPerClient ?? Number.NaN, r.mqttjs?.rssPerClient ?? Number.NaN),
      '',
    ]);
  }

  if (options.only.includes('drain')) {
    for (const version of [4, 5] as const) {
      const r = await both(
        `drain ${options.drainMessages} ${versionName(version)}`,
        (lib) => drainCase(lib, version),
        300_000,
      );
      const ours = rate(r.otalink ?? { ok: false, rates: [] });
      rows.push([
        `drain ${options.drainMessages.toLocaleString('en-US')} stored QoS 1 after reconnect, ${versionName(version)} (msg/s)`,
        fmtRate(r.otalink),
        fmtRate(r.mqttjs),
        fmtRatio(ours, rate(r.mqttjs ?? { ok: false, rates: [] })),
        `≥ 20 000/s: ${ours >= 20_000 ? 'met' : 'not met'}`,
      ]);
      rows.push(cpuRow('  client CPU per message (queueing included)', r));
    }
  }

  if (options.only.includes('store')) {
    // What the default costs: a client given an id (and no store option) writes every QoS 1/2 message to its file
    // store, fsync once per batch, before it sends it. MQTT.js, given no stores, keeps them in memory.
    const storeDir = mkdtempSync(join(tmpdir(), 'otalink-bench-store-'));
    try {
      for (const version of [4, 5] as const) {
        const r = await both(
          `publish QoS 1 ${versionName(version)} · default file store`,
          (lib) => ({ ...publishCase(lib, version, 1), storeDir: join(storeDir, `publish-${version}-${lib}`) }),
          300_000,
        );
        rows.push([
          `publish QoS 1, ${versionName(version)}, ours on its default file store (msg/s)`,
          fmtRate(r.otalink),
          fmtRate(r.mqttjs),
          fmtRatio(rate(r.otalink ?? { ok: false, rates: [] }), rate(r.mqttjs ?? { ok: false, rates: [] })),
          '',
        ]);
        rows.push(cpuRow('  client CPU per message', r));
      }
      for (const version of [4, 5] as const) {
        const r = await both(
          `drain ${options.drainMessages} ${versionName(version)} · default file store`,
          (lib) => ({ ...drainCase(lib, version), storeDir: join(storeDir, `drain-${version}-${lib}`) }),
          300_000,
        );
        const ours = rate(r.otalink ?? { ok: false, rates: [] });
        rows.push([
          `drain ${options.drainMessages.toLocaleString('en-US')} stored QoS 1, ${versionName(version)}, ours on its default file store (msg/s)`,
          fmtRate(r.otalink),
          fmtRate(r.mqttjs),
          fmtRatio(ours, rate(r.mqttjs ?? { ok: false, rates: [] })),
          `≥ 20 000/s: ${ours >= 20_000 ? 'met' : 'not met'}`,
        ]);
      }
    } finally {
      rmSync(storeDir, { recursive: true, force: true });
    }
  }

  let bundles: Awaited<ReturnType<typeof bundleSizes>> | undefined;
  if (options.only.includes('bundle')) {
    bundles = await bundleSizes();
    rows.push([
      'browser bundle, minified + gzipped (whole package)',
      fmtBytes(bundles.ours.gzipped),
      fmtBytes(bundles.mqttjs.gzipped),
      fmtRatio(bundles.ours.gzipped, bundles.mqttjs.gzipped),
      '',
    ]);
    rows.push([
      'browser bundle, minified + gzipped (connect() only)',
      fmtBytes(bundles.oursConnect.gzipped),
      fmtBytes(bundles.mqttjs.gzipped),
      fmtRatio(bundles.oursConnect.gzipped, bundles.mqttjs.gzipped),
      '',
    ]);
  }

  process.stdout.write(`load average at end: ${load()}\n\n`);
  process.stdout.write(`${formatTable(['measure', 'otalink', 'MQTT.js', 'ratio', 'aim'], rows)}\n`);
  const receiveMaxima = Object.entries(results)
    .filter(([key]) => key.endsWith('5.0'))
    .map(([, r]) => r.otalink?.serverReceiveMaximum)
    .filter((n) => n !== undefined);
  const notes = [
    '',
    `Receive Maximum Mosquitto announced to our 5.0 client: ${[...new Set(receiveMaxima)].join(', ') || 'not measured'}.`,
    'ratio: otalink / MQTT.js (for msg/s higher is better for otalink; for µs and bytes lower is).',
    'client CPU per message: user + system CPU of the measured process (GC and JIT threads included) over the timed',
    "  rounds, divided by the messages: the client's own cost, less sensitive than msg/s to a busy shared machine.",
    'CPU, % of one core: the client process and the broker process (utime + stime from /proc/<pid>/stat, 10 ms',
    '  ticks) over the timed rounds, divided by their wall time. A broker near 100% is the ceiling for both clients;',
    '  both well below 100% means the rate is bound by the window (messages in flight per round trip) and the round',
    "  trip's latency, on a shared machine mostly the wait for a core (see the load average).",
    "broker CPU per message: the broker's CPU over the round divided by its messages; 1 s / that = the rate at which",
    '  the broker alone would fill one core, the most any client can get from it (10 ms ticks: coarse on short rounds).',
    `our broker: @otalink/broker in its own Node process, restarted for every case, its Receive Maximum the case's window`,
    `  (5.0 ${options.window}, as Mosquitto's; 3.1.1 ${options.window311}, the window of the 3.1.1 rows); the same clients.`,
    'receive: a separate process floods pre-encoded QoS 0 PUBLISHes; the rate runs from the first to the last message',
    '  the measured client got; a count means Mosquitto dropped the rest (max_queued_messages).',
    'memory: heapUsed and RSS after forced GC, before and after connecting the clients (keepalive 600 s, spread over',
    `  ${LOOPBACK_HOSTS.join(', ')}), divided by the number of clients.`,
    'drain: a persistent session, ours at its default window (the Receive Maximum in 5.0, none in 3.1.1); Mosquitto',
    '  is killed, 10 000 QoS 1 publishes are queued offline (ours: its session queue; MQTT.js: its offline queue and',
    '  in-memory outgoing store), Mosquitto restarts on the same port; timed from the CONNACK to the last PUBACK.',
    'default file store: the same publish and drain cases with ours given a client id and no store option, so it',
    '  keeps every QoS 1 message in its file store (a log, fdatasync once per batch, a tmpfs or disk as tmpdir is)',
    '  before sending it and deletes it at its PUBACK. MQTT.js has no file store of its own and runs as above.',
  ];
  if (bundles !== undefined) {
    notes.push(
      `bundle: ours = ${bundles.ours.what} (${fmtBytes(bundles.ours.minified)} minified),`,
      `  and ${bundles.oursConnect.what} (${fmtBytes(bundles.oursConnect.minified)} minified); esbuild, platform browser,`,
      '  ES2022, nothing external: the package\'s "browser" field swaps the TCP/TLS transports and the file store for stubs',
      '  and drops ws (a browser has its own WebSocket); test/e2e/client-browser.test.ts runs it. MQTT.js = its shipped browser',
      `  bundle, ${bundles.mqttjs.what} (${fmtBytes(bundles.mqttjs.minified)} minified, Node polyfills included). gzip -9.`,
    );
  }
  process.stdout.write(`${notes.join('\n')}\n`);
  if (options.json !== undefined) {
    writeFileSync(
      options.json,
      `${JSON.stringify({ header, machine, options, settings, results, bundles, rows }, null, 2)}\n`,
    );
    process.stdout.write(`\nJSON written to ${options.json}\n`);
  }
}

// A signal would otherwise end the runner without 'exit' handlers, leaving Mosquitto running (case processes also
// exit by themselves when the IPC channel closes).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killCases();
    process.exit(130);
  });
}

main().then(
  () => {
    killCases();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killCases();
    process.exit(1);
  },
);
