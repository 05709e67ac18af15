// N agents in one process, each with its own MQTT connection, state directory and cuttable link, over the real
// broker. Idle vehicles cost no timer: wake-ups and link restores share one ticker; connects ramp up with bounded
// concurrency so the broker is not hit by N CONNECTs in the same millisecond.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AgentOptions,
  type AgentRunner,
  createTickerScheduler,
  Link,
  MAX_OPEN_JOURNALS,
  runAgent,
  setMaxOpenJournals,
  type VehicleConditions,
} from '@otalink/agent';
import type { ClientOptions } from '@otalink/mqtt';
import type { JobStatus, TrustedKey, TrustedKeys } from '@otalink/ota';
import type { Logger } from 'pino';
import { type FleetKnobs, planFleet, type VehiclePlan } from './plan.js';

/**
 * Up to this many vehicles a fleet keeps every journal open (a vehicle holds its MQTT socket and its journal, and
 * while it downloads a TLS socket and the file: 5000 stay within the 20 000 files one process may hold here).
 * Larger fleets share the agent's default budget (each write past it reopens its log).
 */
export const FLEET_OPEN_JOURNALS = 5000;

/** How many journal files a fleet of `vehicles` keeps open at most. */
export function fleetOpenJournals(vehicles: number): number {
  return vehicles <= FLEET_OPEN_JOURNALS ? Math.max(MAX_OPEN_JOURNALS, vehicles) : MAX_OPEN_JOURNALS;
}

export interface FleetOptions {
  vehicles: number;
  /** The first vehicle's number (default 0): VINs are vinPrefix + the number in six digits. */
  firstIndex?: number;
  /** Broker URL and client options shared by all vehicles. */
  mqtt: ClientOptions & { url: string };
  /** Per-vehicle identity: TLS client certificate/key (read by the caller) or user name and password. */
  identity?: (vin: string, index: number) => Pick<ClientOptions, 'tls' | 'username' | 'password'>;
  vinPrefix?: string;
  models?: string[];
  hardwareId?: string;
  installedVersion?: string;
  trustedKeys: TrustedKeys | Iterable<TrustedKey>;
  /** One sub-directory per VIN is created here. */
  stateRoot: string;
  download?: AgentOptions['download'];
  topicPrefix?: string;
  knobs?: FleetKnobs;
  seed?: number;
  /** Connects in flight at once during the ramp (default 100). */
  connectConcurrency?: number;
  /** fsync the journals (default false: thousands of vehicles share one disk). */
  fsync?: boolean;
  logger?: Logger;
}

export interface FleetCounters {
  messagesIn: number;
  messagesOut: number;
  /** Vehicles started so far (late joiners count once they start). */
  started: number;
  /** Vehicles whose MQTT session is up now. */
  connected: number;
  /** Vehicles by the status of their latest report (`IN_PROGRESS:DOWNLOADING` for steps). */
  states: Record<string, number>;
  /** Links cut by the offline-mid-download knob (at most one per such vehicle). */
  offlineCuts: number;
}

export interface Fleet {
  readonly plan: VehiclePlan[];
  readonly counters: FleetCounters;
  /** The latest report of each vehicle that sent one. */
  readonly latest: ReadonlyMap<string, JobStatus>;
  /** Resolves when every vehicle that is not a late joiner has started (late joiners follow on their timer). */
  readonly ramped: Promise<void>;
  runner(vin: string): AgentRunner | undefined;
  close(): Promise<void>;
}

const PARKED: VehicleConditions = { parked: true, batteryPercent: 80, ownerConsent: true };
const REFUSING: VehicleConditions = { parked: false, batteryPercent: 10, ownerConsent: false };

export async function createFleet(options: FleetOptions): Promise<Fleet> {
  const plan = planFleet(options);
  setMaxOpenJournals(fleetOpenJournals(plan.length));
  const knobs = options.knobs ?? {};
  const scheduler = createTickerScheduler(100);
  const runners = new Map<string, AgentRunner>();
  const latest = new Map<string, JobStatus>();
  const connectedVins = new Set<string>();
  const counters: FleetCounters = {
    messagesIn: 0,
    messagesOut: 0,
    started: 0,
    connected: 0,
    states: {},
    offlineCuts: 0,
  };
  let closing = false;
  const cancelLate: Array<() => void> = [];
  await mkdir(options.stateRoot, { recursive: true });

  const stateKey = (s: JobStatus) => (s.status === 'IN_PROGRESS' ? `IN_PROGRESS:${s.step}` : s.status);

  const startVehicle = async (vehicle: VehiclePlan): Promise<void> => {
    if (closing) return;
    const link = new Link(scheduler);
    let cut = false;
    const agentOptions: AgentOptions = {
      vin: vehicle.vin,
      stateDir: join(options.stateRoot, vehicle.vin),
      hardwareId: options.hardwareId ?? 'tcu-v2',
      model: vehicle.model,
      installedVersion: options.installedVersion ?? '2.0.3',
      trustedKeys: options.trustedKeys,
      mqtt: {
        reconnect: { initialDelayMs: 500, maxDelayMs: 10_000 },
        ...options.mqtt,
        ...options.identity?.(vehicle.vin, vehicle.index),
      },
      topics: { vinMode: 'simulation', ...(options.topicPrefix === undefined ? {} : { prefix: options.topicPrefix }) },
      download: {
        ...options.download,
        ...(knobs.downloadBytesPerSecond === undefined ? {} : { bytesPerSecond: knobs.downloadBytesPerSecond }),
      },
      vehicle: vehicle.preconditionRefuse ? REFUSING : PARKED,
      hooks: vehicle.installFail
        ? { healthCheck: () => ({ ok: false, text: 'simulated: the new version does not come up' }) }
        : {},
      fsync: options.fsync ?? false,
      scheduler,
      link,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    };
    const runner = await runAgent(agentOptions, {
      report: (status) => {
        const before = latest.get(vehicle.vin);
        if (before !== undefined) counters.states[stateKey(before)] = (counters.states[stateKey(before)] ?? 1) - 1;
        latest.set(vehicle.vin, status);
        counters.states[stateKey(status)] = (counters.states[stateKey(status)] ?? 0) + 1;
      },
      state: (state) => {
        if (!vehicle.offlineMidDownload || cut) return;
        const current = state.current;
        if (current?.phase === 'DOWNLOADING' && current.download.bytesDone > 0) {
          cut = true;
          counters.offlineCuts += 1;
          link.cut(knobs.offlineDurationMs ?? 2000);
        }
      },
      message: (direction) => {
        if (direction === 'in') counters.messagesIn += 1;
        else counters.messagesOut += 1;
      },
    });
    runners.set(vehicle.vin, runner);
    counters.started += 1;
    trackConnection(vehicle.vin, runner);
    await firstConnect(runner, 15_000);
  };

  const trackConnection = (vin: string, runner: AgentRunner) => {
    // The client object changes across lifetimes; poll it on the shared ticker rather than a listener per client.
    const poll = () => {
      if (closing) return;
      const up = runner.agent.client.state === 'connected';
      if (up && !connectedVins.has(vin)) connectedVins.add(vin);
      else if (!up && connectedVins.has(vin)) connectedVins.delete(vin);
      counters.connected = connectedVins.size;
      scheduler.at(Date.now() + 1000, poll);
    };
    poll();
  };

  const early = plan.filter((v) => !v.lateJoin);
  const late = plan.filter((v) => v.lateJoin);
  const ramped = (async () => {
    const concurrency = Math.max(1, options.connectConcurrency ?? 100);
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, early.length) }, async () => {
      while (next < early.length && !closing) {
        const vehicle = early[next++] as VehiclePlan;
        await startVehicle(vehicle).catch((error: unknown) =>
          options.logger?.warn({ err: error, vin: vehicle.vin }, 'vehicle failed to start'),
        );
      }
    });
    await Promise.all(workers);
  })();
  const lateStart = Date.now() + (knobs.lateJoinDelayMs ?? 10_000);
  for (const vehicle of late) {
    cancelLate.push(
      scheduler.at(lateStart, () => {
        void startVehicle(vehicle).catch(() => undefined);
      }),
    );
  }

  return {
    plan,
    counters,
    latest,
    ramped,
    runner: (vin) => runners.get(vin),
    async close() {
      closing = true;
      for (const cancel of cancelLate) cancel();
      await ramped;
      const all = [...runners.values()];
      for (let i = 0; i < all.length; i += 200) {
        await Promise.all(all.slice(i, i + 200).map((r) => r.close().catch(() => undefined)));
      }
      scheduler.close();
    },
  };
}

/** Resolves on the first CONNACK or after `timeoutMs` (a vehicle out of coverage keeps trying on its own). */
function firstConnect(runner: AgentRunner, timeoutMs: number): Promise<void> {
  const client = runner.agent.client;
  if (client.state === 'connected') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const off = client.on('connected', done);
    function done() {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}

/** Removes the simulator's state directories (the CLI does this for a fresh run). */
export function removeFleetState(stateRoot: string): Promise<void> {
  return rm(stateRoot, { recursive: true, force: true });
}
