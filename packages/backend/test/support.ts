// Test doubles for the backend engine: a fake clock, a sink that records commands, and a harness that starts a
// backend in a temp dir with simulated VINs and lets a test play the vehicles.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createMessage,
  type FleetStatus,
  type JobNotify,
  type OtaMessage,
  type ReportableStatus,
  type Step,
} from '@otalink/ota';
import type { CampaignCreate } from '../src/api.js';
import { type Backend, type BackendOptions, createBackend } from '../src/backend.js';
import type { Clock } from '../src/clock.js';
import type { CommandSink } from '../src/engine/orchestrator.js';
import { silentLogger } from '../src/logger.js';

export class FakeClock implements Clock {
  private t: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_780_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, delayMs), fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Moves time forward, firing due timers in order (each at its own time). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers)
        if (entry[1].at <= end && (next === undefined || entry[1].at < next[1].at)) next = entry;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

export class RecordingSink implements CommandSink {
  readonly sent: { vin: string; message: OtaMessage }[] = [];
  readonly fleet: FleetStatus[] = [];

  send(vin: string, message: OtaMessage): void {
    this.sent.push({ vin, message });
  }

  publishFleet(_model: string, message: FleetStatus): void {
    this.fleet.push(message);
  }

  ofType<T extends OtaMessage['type']>(type: T, vin?: string): Extract<OtaMessage, { type: T }>[] {
    return this.sent
      .filter((s) => s.message.type === type && (vin === undefined || s.vin === vin))
      .map((s) => s.message as Extract<OtaMessage, { type: T }>);
  }

  notified(): string[] {
    return this.sent.filter((s) => s.message.type === 'job.notify').map((s) => s.vin);
  }

  clear(): void {
    this.sent.length = 0;
  }
}

export interface Harness {
  backend: Backend;
  clock: FakeClock;
  sink: RecordingSink;
  dataDir: string;
  /** Reopens a backend on the same data directory (after close), with a fresh sink. */
  restart(): Promise<void>;
  close(): Promise<void>;
  /** Plays a vehicle's job.status and waits for the commit. */
  report(
    vin: string,
    campaignId: string,
    executionNumber: number,
    seq: number,
    status: ReportableStatus,
    extra?: {
      step?: Step;
      progress?: number;
      reason?: { code: string; text: string };
      installedVersion?: string;
      paused?: boolean;
    },
  ): Promise<void>;
  tick(ms: number): Promise<void>;
  /** Registers vehicles SIM-1..SIM-n, uploads an artifact, creates a campaign for them; returns its id. */
  campaign(n: number, spec?: Partial<CampaignCreate>): Promise<{ id: string; vins: string[] }>;
}

export async function harness(options: Partial<BackendOptions> = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-backend-'));
  const clock = new FakeClock();
  const h = {
    clock,
    dataDir,
    sink: new RecordingSink(),
  } as Harness;
  const open = async () => {
    h.backend = createBackend({
      dataDir,
      publicBaseUrl: 'https://127.0.0.1:8443',
      vinMode: 'simulation',
      clock,
      logger: silentLogger,
      commandSink: h.sink,
      ...options,
    });
    await h.backend.start();
  };
  await open();
  h.restart = async () => {
    await h.backend.close();
    h.sink = new RecordingSink();
    await open();
  };
  h.close = async () => {
    await h.backend.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  h.report = async (vin, campaignId, executionNumber, seq, status, extra = {}) => {
    const body = { jobId: campaignId, executionNumber, seq, status, ...extra };
    if (status === 'IN_PROGRESS' && body.step === undefined) body.step = 'DOWNLOADING';
    h.backend.engine.ingestStatus(vin, createMessage('job.status', body, { ts: clock.now() }));
    await h.backend.engine.flushNow();
  };
  h.tick = async (ms) => {
    clock.advance(ms);
    await h.backend.engine.flushNow();
  };
  h.campaign = async (n, spec = {}) => {
    const vins = Array.from({ length: n }, (_, i) => `SIM-${String(i + 1).padStart(3, '0')}`);
    for (const vin of vins) {
      await h.backend.service.registerVehicle({ vin, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' });
    }
    const artifact = await h.backend.service.putArtifact(Buffer.from('firmware 2.0.0'), {
      name: 'tcu-firmware',
      version: '2.0.0',
      hardwareIds: ['tcu-v2'],
    });
    const campaign = await h.backend.service.createCampaign({
      name: 'test',
      artifact: artifact.sha256,
      target: { vins },
      ...spec,
    });
    return { id: campaign.id, vins };
  };
  return h;
}

export function notifyOf(sink: RecordingSink, vin: string): JobNotify | undefined {
  return sink.ofType('job.notify', vin).at(-1);
}
