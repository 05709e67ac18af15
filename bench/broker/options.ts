// Command-line flags of the broker benchmark.
import { BROKER_NAMES, type BrokerName } from './brokers.js';

export const SCENARIO_NAMES = ['fanout', 'fanin', 'p2p0', 'p2p1', 'rtt', 'idle', 'connect'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface BenchOptions {
  quick: boolean;
  brokers: BrokerName[];
  scenarios: ScenarioName[];
  /** Measured window of each main run. */
  measureMs: number;
  /**
   * Measured window of each 2× knee run: long enough for a Node broker's heap to reach the size it keeps under that
   * load, so that RSS still rising is growth and not the heap's ramp after the knee run (see scenarios.ts).
   */
  overloadMs: number;
  warmupMs: number;
  /** One step of the knee search (its own warm-up included). */
  stepMs: number;
  /** First offered rate of the knee search, in deliveries per second, and the factor between steps. */
  startRate: number;
  stepFactor: number;
  maxRate: number;
  subscribers: number;
  publishers: number;
  pairs: number;
  idleConnections: number;
  payloadBytes: number;
  rttRate: number;
  rttWarmup: number;
  /** Rounds of the round-trip row, the brokers taking turns; their samples are pooled (see bench/broker.ts). */
  rttRounds: number;
  connectConcurrency: number;
  /** Rounds of the connect row, the brokers taking turns in each (see bench/broker.ts). */
  connectRounds: number;
  json: string | undefined;
}

const USAGE = `usage: node --import tsx bench/broker.ts [--quick] [--brokers=ours,mosquitto,aedes]
  [--scenarios=${SCENARIO_NAMES.join(',')}] [--measure-ms=N] [--overload-ms=N] [--warmup-ms=N] [--step-ms=N]
  [--start-rate=N] [--step-factor=F] [--max-rate=N] [--subscribers=N] [--publishers=N] [--pairs=N]
  [--idle=N] [--payload=BYTES] [--rtt-rate=N] [--rtt-warmup=N] [--rtt-rounds=N]
  [--connect-concurrency=N] [--connect-rounds=N] [--json out.json]`;

export function parseOptions(argv: readonly string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const options: BenchOptions = {
    quick,
    brokers: [...BROKER_NAMES],
    scenarios: [...SCENARIO_NAMES],
    measureMs: quick ? 2000 : 5000,
    overloadMs: quick ? 4000 : 15_000,
    warmupMs: quick ? 500 : 1000,
    stepMs: quick ? 1000 : 1500,
    startRate: 10_000,
    stepFactor: quick ? 1.6 : 1.4,
    maxRate: 3_000_000,
    subscribers: 1000,
    publishers: 1000,
    pairs: 1000,
    idleConnections: quick ? 2000 : 10_000,
    payloadBytes: 16,
    rttRate: 200,
    rttWarmup: 5000,
    rttRounds: quick ? 3 : 8,
    connectConcurrency: 16,
    connectRounds: 3,
    json: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--quick') continue;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new Error(`unknown argument ${arg}\n${USAGE}`);
    const key = match[1] as string;
    let value = match[2];
    if (value === undefined) {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new Error(`--${key} needs a value\n${USAGE}`);
    const number = () => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${key} must be a positive number`);
      return n;
    };
    switch (key) {
      case 'brokers':
        options.brokers = value.split(',').map((name) => {
          if (!(BROKER_NAMES as readonly string[]).includes(name)) throw new Error(`unknown broker ${name}`);
          return name as BrokerName;
        });
        break;
      case 'scenarios':
        options.scenarios = value.split(',').map((name) => {
          if (!(SCENARIO_NAMES as readonly string[]).includes(name)) throw new Error(`unknown scenario ${name}`);
          return name as ScenarioName;
        });
        break;
      case 'measure-ms':
        options.measureMs = number();
        break;
      case 'overload-ms':
        options.overloadMs = number();
        break;
      case 'warmup-ms':
        options.warmupMs = number();
        break;
      case 'step-ms':
        options.stepMs = number();
        break;
      case 'start-rate':
        options.startRate = number();
        break;
      case 'step-factor':
        options.stepFactor = number();
        if (options.stepFactor <= 1) throw new Error('--step-factor must be above 1');
        break;
      case 'max-rate':
        options.maxRate = number();
        break;
      case 'subscribers':
        options.subscribers = Math.round(number());
        break;
      case 'publishers':
        options.publishers = Math.round(number());
        break;
      case 'pairs':
        options.pairs = Math.round(number());
        break;
      case 'idle':
        options.idleConnections = Math.round(number());
        break;
      case 'payload':
        options.payloadBytes = Math.round(number());
        break;
      case 'rtt-rate':
        options.rttRate = number();
        break;
      case 'rtt-warmup':
        options.rttWarmup = Math.round(number());
        break;
      case 'rtt-rounds':
        options.rttRounds = Math.max(1, Math.round(number()));
        break;
      case 'connect-concurrency':
        options.connectConcurrency = Math.round(number());
        break;
      case 'connect-rounds':
        options.connectRounds = Math.max(1, Math.round(number()));
        break;
      case 'json':
        options.json = value;
        break;
      default:
        throw new Error(`unknown flag --${key}\n${USAGE}`);
    }
  }
  return options;
}
