// Broker benchmark: ours, Mosquitto and Aedes measured in one run by the same raw-socket load generator.
//
//   node --import tsx bench/broker.ts                 full run (~ 16 min), table on stdout
//   node --import tsx bench/broker.ts --quick         shorter windows, 2 000 idle connections
//   node --import tsx bench/broker.ts --json out.json also write every measurement as JSON
//   node --import tsx bench/broker.ts --brokers=mosquitto,aedes --scenarios=fanout,rtt
//
// Each broker runs in its own process, restarted for every scenario; the load comes from 2 generator processes
// (pre-encoded MQTT 3.1.1 frames, token-bucket rate per 1 ms tick, one batched write per socket per tick,
// TCP_NODELAY). Throughput rows come from a knee search (offered load raised by --step-factor until delivered
// stops tracking it), then a measured run at the knee and one at twice the knee.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type BrokerName,
  BrokerUnavailable,
  MOSQUITTO_SETTINGS,
  mosquittoVersion,
  ONLY_SCENARIOS,
  type RunningBroker,
  startBroker,
} from './broker/brokers.js';
import { type Generator, startGenerators } from './broker/generators.js';
import { parseOptions, type ScenarioName } from './broker/options.js';
import { killAll } from './broker/proc.js';
import { type Cells, tableRows } from './broker/report.js';
import { connectRounds, type Outcome, rttRounds, runScenario } from './broker/scenarios.js';
import { machineInfo } from './lib/machine.js';
import { formatTable } from './lib/table.js';

const GENERATORS = 2;
/** No scenario may take longer than this, whatever happens. */
const SCENARIO_TIMEOUT_MS = 240_000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  // The abandoned scenario keeps failing against stopped processes after a timeout: never an unhandled rejection.
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function aedesVersion(): string {
  try {
    // aedes' `exports` hides its package.json: find it next to the resolved entry point.
    const entry = createRequire(import.meta.url).resolve('aedes');
    const manifest = JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as { version: string };
    return manifest.version;
  } catch {
    return 'not installed';
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const machine = machineInfo();
  const versions = { node: machine.node, mosquitto: mosquittoVersion(), aedes: aedesVersion() };
  const header = [
    `MQTT broker benchmark · ${machine.date}`,
    `Node ${versions.node} · mosquitto ${versions.mosquitto} · aedes ${versions.aedes} · ${machine.cpu} × ${machine.cores}`,
    `load average at start: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')} (other work on this machine shows up as noise)`,
    `load: ${GENERATORS} generator processes on the same machine, competing with the broker for CPU (identically for all three brokers)`,
    'generator: pre-encoded MQTT 3.1.1 frames (our encode), batched writes, TCP_NODELAY; measured phase read by a framing-only counter',
    `mosquitto: persistence false, set_tcp_nodelay true, max_queued_messages ${MOSQUITTO_SETTINGS.max_queued_messages}, max_inflight_messages ${MOSQUITTO_SETTINGS.max_inflight_messages}`,
    `windows: measure ${options.measureMs} ms (2× knee: ${options.overloadMs} ms) after ${options.warmupMs} ms warm-up; knee steps ${options.stepMs} ms ×${options.stepFactor} from ${options.startRate}/s; payload ${options.payloadBytes} B${options.quick ? ' (--quick)' : ''}`,
  ];
  process.stdout.write(`${header.join('\n')}\n\n`);

  const cells: Cells = {};
  const details: Record<string, Record<string, unknown>> = {};
  for (const brokerName of options.brokers) {
    cells[brokerName] = {};
    details[brokerName] = {};
  }

  /** One scenario on a fresh broker and fresh generators; its cells, or error cells, go into the table. */
  async function runOne(brokerName: BrokerName, scenario: ScenarioName, round = ''): Promise<Outcome | undefined> {
    const brokerCells = cells[brokerName] as Record<string, string>;
    const brokerDetails = details[brokerName] as Record<string, unknown>;
    process.stderr.write(`[${brokerName}] ${scenario}${round}…\n`);
    let broker: RunningBroker | undefined;
    let generators: Generator[] = [];
    try {
      broker = await startBroker(brokerName);
      generators = startGenerators(GENERATORS);
      const outcome: Outcome = await withTimeout(
        runScenario({ broker, generators, options }, scenario),
        SCENARIO_TIMEOUT_MS,
        scenario,
      );
      Object.assign(brokerCells, outcome.cells);
      brokerDetails[scenario] = outcome.details;
      process.stderr.write(`[${brokerName}] ${scenario}${round}: ${Object.values(outcome.cells).join(' | ')}\n`);
      return outcome;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const cell = error instanceof BrokerUnavailable ? 'unavailable' : `error`;
      for (const key of ['', '2x', 'Ack']) brokerCells[`${scenario}${key}`] = cell;
      brokerDetails[scenario] = { error: message };
      process.stderr.write(`[${brokerName}] ${scenario}${round}: ${cell}: ${message}\n`);
      return undefined;
    } finally {
      await Promise.all(generators.map((g) => g.stop()));
      await broker?.stop();
    }
  }

  const takes = (brokerName: BrokerName, scenario: ScenarioName) =>
    (ONLY_SCENARIOS[brokerName] ?? [scenario]).includes(scenario);
  // Rows that run in rounds, the brokers taking turns (each round starting with the next one): a single run of
  // either depends on the few seconds it had of a shared machine, so every broker gets several, spread over the same
  // minutes. The connect row is the median of its rounds; the round-trip row pools its rounds' samples.
  const inRounds = new Map<ScenarioName, { rounds: number; combine: (outcomes: readonly Outcome[]) => Outcome }>([
    ['rtt', { rounds: options.rttRounds, combine: rttRounds }],
    ['connect', { rounds: options.connectRounds, combine: connectRounds }],
  ]);
  for (const brokerName of options.brokers) {
    for (const scenario of options.scenarios) {
      if (!inRounds.has(scenario) && takes(brokerName, scenario)) await runOne(brokerName, scenario);
    }
  }
  for (const [scenario, { rounds: count, combine }] of inRounds) {
    if (!options.scenarios.includes(scenario)) continue;
    const takers = options.brokers.filter((brokerName) => takes(brokerName, scenario));
    const rounds = new Map<BrokerName, Outcome[]>(takers.map((brokerName) => [brokerName, []]));
    for (let round = 0; round < count; round++) {
      for (let i = 0; i < takers.length; i++) {
        const brokerName = takers[(round + i) % takers.length] as BrokerName;
        const label = count > 1 ? ` (round ${round + 1} of ${count})` : '';
        const outcome = await runOne(brokerName, scenario, label);
        if (outcome !== undefined) rounds.get(brokerName)?.push(outcome);
      }
    }
    for (const [brokerName, outcomes] of rounds) {
      if (outcomes.length === 0) continue;
      const combined = combine(outcomes);
      Object.assign(cells[brokerName] as Record<string, string>, combined.cells);
      (details[brokerName] as Record<string, unknown>)[scenario] = combined.details;
      process.stderr.write(
        `[${brokerName}] ${scenario}, ${outcomes.length} rounds: ${Object.values(combined.cells).join(' | ')}\n`,
      );
    }
  }

  process.stdout.write(
    `load average at end: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}\n\n`,
  );
  const table = formatTable(['scenario', ...options.brokers, 'aim'], tableRows(options, cells));
  process.stdout.write(`${table}\n`);
  process.stdout.write(
    '\n≥: the generators could not offer more (CPU) while the broker still delivered all it was sent.\n' +
      '2× knee: delivered at twice the knee rate as % of the peak: the better of the knee run and a run as long at\n' +
      'the offered rate of the best knee-search window; above 100 % means the knee search stopped early (a noisy\n' +
      'window). RSS: broker before → highest during that run, in MB; "growing":\n' +
      'its mean over the last third of the run is > 10 % (+ 8 MB) above its mean over the middle third.\n' +
      'floor: not a broker, a Node server answering CONNECT and SUBSCRIBE with fixed acks and echoing a PUBLISH to\n' +
      'its sender: the most connects/s the generators can drive on this machine now, and what a net.Socket costs\n' +
      'by itself (CPU per connect, RSS per idle connection, one read and one write of latency). Ours accepts plain\n' +
      "TCP on Node's raw handles, without net.Socket, so its idle row can go below this column.\n" +
      'idle: RSS growth less V8 young generation growth (a one-off of a Node heap), ÷ connections.\n',
  );
  if (options.json !== undefined) {
    writeFileSync(options.json, `${JSON.stringify({ header, versions, machine, options, cells, details }, null, 2)}\n`);
    process.stdout.write(`\nJSON written to ${options.json}\n`);
  }
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAll();
    process.exit(1);
  },
);
