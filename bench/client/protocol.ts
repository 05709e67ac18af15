// What the runner and a case process say to each other over the IPC channel.
import type { LibName } from './libs.js';

export interface CaseSpec {
  lib: LibName;
  scenario: 'publish' | 'receive' | 'memory' | 'drain' | 'flood';
  host: string;
  port: number;
  version: 4 | 5;
  qos: 0 | 1 | 2;
  /** Unacknowledged QoS 1/2 publishes allowed (ours: maxInflight; MQTT.js: bounded from outside). */
  window: number;
  messages: number;
  rounds: number;
  /** Publish: each round (and the warm-up) goes on in batches of `messages` until it has lasted this long. */
  roundMs?: number;
  clients: number;
  hosts?: string[];
  batch?: number;
  payloadBytes?: number;
  /** The broker's process, whose CPU share the publish case measures over its timed rounds. */
  brokerPid?: number;
  /**
   * Publish, drain: ours on its default file store (a client id, no store option) in this directory, fsync per
   * batch. MQTT.js has no file store of its own: it keeps its default, memory.
   */
  storeDir?: string;
}

export interface CaseResult {
  ok: boolean;
  error?: string | undefined;
  /** Messages per second, one per timed round. */
  rates: number[];
  /** Client process CPU µs per message, one per timed round (publish, receive, drain). */
  cpuUs?: number[];
  /** CPU of this client process, % of one core, one per timed round (publish). */
  clientCpuPct?: number[];
  /** CPU of the broker process over the same round, % of one core (publish; where /proc exists). */
  brokerCpuPct?: number[];
  /** The broker's CPU µs per message over the same round (10 ms ticks spread over the round's messages). */
  brokerCpuUs?: number[];
  serverReceiveMaximum?: number | undefined;
  received?: number;
  sent?: number;
  heapPerClient?: number;
  rssPerClient?: number;
  clients?: number;
}

export type WorkerMessage =
  | { type: 'request'; what: 'kill-broker' | 'start-broker' | 'flood' }
  | { type: 'result'; result: CaseResult };

export type RunnerReply = { type: 'done'; what: string };
