// Messages between the benchmark runner and its generator processes (over the fork IPC channel).
import type { QoS } from '@otalink/mqtt/codec';

export interface OpenCommand {
  cmd: 'open';
  /** Name of this set of clients in the generator, used by later commands. */
  group: string;
  port: number;
  /** Clients `first` .. `first + count - 1`; `%i` in topics becomes this global index. */
  first: number;
  count: number;
  clientPrefix: string;
  subscribe?: { filter: string; qos: QoS };
  /** Source addresses to spread sockets over (each holds at most ~28 k ephemeral ports). */
  localAddresses: string[];
  /** Connections in progress at once. */
  concurrency: number;
  timeoutMs: number;
}

export interface PublishCommand {
  cmd: 'publish';
  group: string;
  /** Messages per second over the whole group; 0 stops. */
  rate: number;
  topic: string;
  qos: QoS;
  payloadBytes: number;
  /** QoS 1: unacknowledged PUBLISHes per client before the generator holds back (counted as `held`). */
  maxInflight: number;
}

export interface RttCommand {
  cmd: 'rtt';
  port: number;
  clientId: string;
  topic: string;
  rate: number;
  warmupMs: number;
  /** Closed-loop round trips before the timed phase, so the broker's JIT has settled (see worker.ts warmUp). */
  warmupRoundTrips: number;
  durationMs: number;
  payloadBytes: number;
}

export interface ConnectLoopCommand {
  cmd: 'connectLoop';
  port: number;
  clientPrefix: string;
  durationMs: number;
  concurrency: number;
  localAddresses: string[];
}

export type Command =
  | OpenCommand
  | PublishCommand
  | RttCommand
  | ConnectLoopCommand
  | { cmd: 'stats' }
  | { cmd: 'close'; group?: string; timeoutMs: number };

export type Request = Command & { id: number };

export interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface Counters {
  /** PUBLISHes the rate asked for. */
  offered: number;
  /** PUBLISHes written to sockets. */
  sent: number;
  /** Offered but not written: socket buffer over its high-water mark or the QoS 1 window full. */
  held: number;
  /** PUBLISHes received (deliveries). */
  received: number;
  /** PUBACKs received. */
  acked: number;
  /** Sockets that closed or failed after being opened. */
  lost: number;
  clients: number;
}

export interface StatsResult {
  groups: Record<string, Counters>;
  /** CPU time this generator process has used so far (user + system). */
  cpuMs: number;
}

export interface RttResult {
  sent: number;
  delivered: number;
  acked: number;
  deliveryMs: { p50: number; p99: number; max: number };
  pubackMs: { p50: number; p99: number; max: number };
  /** Every measured time, in ms, so that rounds can be pooled before taking percentiles. */
  deliverySamples: number[];
  pubackSamples: number[];
}

export interface ConnectLoopResult {
  completed: number;
  errors: number;
  elapsedMs: number;
  firstError?: string;
  /** Socket creation to CONNACK. */
  handshakeMs: { p50: number; p99: number };
}

export function emptyCounters(): Counters {
  return { offered: 0, sent: 0, held: 0, received: 0, acked: 0, lost: 0, clients: 0 };
}

export function addCounters(a: Counters, b: Counters): Counters {
  return {
    offered: a.offered + b.offered,
    sent: a.sent + b.sent,
    held: a.held + b.held,
    received: a.received + b.received,
    acked: a.acked + b.acked,
    lost: a.lost + b.lost,
    clients: a.clients + b.clients,
  };
}

export function subCounters(a: Counters, b: Counters): Counters {
  return {
    offered: a.offered - b.offered,
    sent: a.sent - b.sent,
    held: a.held - b.held,
    received: a.received - b.received,
    acked: a.acked - b.acked,
    lost: a.lost - b.lost,
    clients: a.clients,
  };
}
