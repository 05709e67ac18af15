// The results table: one row per measurement, one column per broker, and the aim last.
import type { BrokerName } from './brokers.js';
import type { BenchOptions, ScenarioName } from './options.js';

export interface Row {
  key: string;
  scenario: ScenarioName;
  label: (options: BenchOptions) => string;
  aim: string;
}

export const ROWS: readonly Row[] = [
  { key: 'fanout', scenario: 'fanout', label: (o) => `fan-out 1→${o.subscribers} QoS 0, deliveries/s`, aim: '≥ 200 k' },
  { key: 'fanout2x', scenario: 'fanout', label: () => 'fan-out at 2× knee: % of peak, RSS', aim: '≥ 90 %, bounded' },
  { key: 'fanin', scenario: 'fanin', label: (o) => `fan-in ${o.publishers}→1 (+) QoS 0, msgs/s`, aim: '≥ 75 k' },
  { key: 'fanin2x', scenario: 'fanin', label: () => 'fan-in at 2× knee: % of peak, RSS', aim: '≥ 90 %, bounded' },
  { key: 'p2p0', scenario: 'p2p0', label: (o) => `p2p ${o.pairs} pairs QoS 0, msgs/s`, aim: '≥ 50 k' },
  { key: 'p2p02x', scenario: 'p2p0', label: () => 'p2p QoS 0 at 2× knee: % of peak, RSS', aim: '≥ 90 %, bounded' },
  { key: 'p2p1', scenario: 'p2p1', label: (o) => `p2p ${o.pairs} pairs QoS 1, msgs/s`, aim: '≥ 35 k' },
  { key: 'p2p12x', scenario: 'p2p1', label: () => 'p2p QoS 1 at 2× knee: % of peak, RSS', aim: '≥ 90 %, bounded' },
  {
    key: 'rtt',
    scenario: 'rtt',
    label: (o) => `QoS 1 publish→delivery ms p50 / p99 (${o.rttRate}/s, warm)`,
    aim: 'p99 ≤ 1 ms',
  },
  { key: 'rttAck', scenario: 'rtt', label: () => 'QoS 1 publish→PUBACK ms p50 / p99', aim: '' },
  {
    key: 'idle',
    scenario: 'idle',
    label: (o) => `RSS per idle connection (${o.idleConnections}, 1 sub each)`,
    aim: '≤ 8 KB',
  },
  {
    key: 'idleMeasured',
    scenario: 'idle',
    label: () => '  RSS growth ÷ connections (V8 young gen. growth)',
    aim: '',
  },
  { key: 'connect', scenario: 'connect', label: () => 'connects/s (CONNECT, CONNACK, close)', aim: '≥ 5 k' },
  { key: 'connectCpu', scenario: 'connect', label: () => 'broker CPU per connect', aim: '' },
  { key: 'connectGenCpu', scenario: 'connect', label: () => 'generator CPU per connect (both)', aim: '' },
];

export type Cells = Partial<Record<BrokerName, Record<string, string>>>;

export function tableRows(options: BenchOptions, cells: Cells): string[][] {
  return ROWS.filter((row) => options.scenarios.includes(row.scenario)).map((row) => [
    row.label(options),
    ...options.brokers.map((broker) => cells[broker]?.[row.key] ?? '-'),
    row.aim,
  ]);
}
