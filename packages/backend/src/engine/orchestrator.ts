// The heart of the backend: campaigns and their executions in memory (one entry per released vehicle), driven by
// the OTA package's pure state machines, written to the store in batches, with ONE scheduler for every timer.
//
// Flow of one status report: look up the execution (two map reads), applyStatus, adjust the campaign's counts
// incrementally, queue the row and its transition in the write buffer. The buffer is flushed once per event-loop
// turn in one transaction; rollout planning runs just before the commit for the campaigns that changed, and
// everything the outside world sees (commands to vehicles, live events) is released only after the commit, so
// nothing is announced that a crash could take back.
import {
  applyCampaignEvent,
  applyStatus,
  cancel as cancelExecution,
  createExecution,
  createMessage,
  type Execution,
  type ExecutionStatus,
  type FleetStatus,
  fireDeadline,
  isTerminal,
  type JobNotify,
  type JobStatus,
  nextDeadline,
  notify as notifyExecution,
  type OtaMessage,
  type PendingExecutionEntry,
  type Presence,
  pause as pauseExecution,
  planNextBatch,
  RETRYABLE_STATUSES,
  type RolloutCounts,
  type CampaignEvent as RolloutEvent,
  type Campaign as RolloutState,
  resume as resumeExecution,
  type TimerPolicy,
  type Transition,
} from '@otalink/ota';
import {
  BackendError,
  type CampaignEvent,
  type CampaignListener,
  type CampaignTransitionRecord,
  type StatusCounts,
  type TransitionRecord,
  type Vehicle,
} from '../api.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { emptyCounts } from '../store/sql-store.js';
import type { BackendStore, PresenceUpdate, StoreBatch, StoredCampaign, StoredExecution } from '../store/types.js';
import { Scheduler } from './scheduler.js';

/** Where commands and summaries go: the MQTT bridge, or a recorder in tests. */
export interface CommandSink {
  /** A command for one vehicle (QoS 1 on its command topic). `expiresAt` may become a Message Expiry Interval. */
  send(vin: string, message: OtaMessage, options?: { expiresAt?: number }): void;
  /** The retained per-model summary. */
  publishFleet(model: string, message: FleetStatus): void;
}

export interface OrchestratorOptions {
  store: BackendStore;
  clock: Clock;
  logger: Logger;
  sink: CommandSink;
  /** At most one fleet.status per model per this interval; default 1000 ms. */
  fleetIntervalMs?: number;
  /** At most one `counts` live event per campaign per this interval; default 1000 ms. */
  countsIntervalMs?: number;
  /** Register an unknown vehicle from its online presence (model from the inventory); default true. */
  autoRegister?: boolean;
}

interface Entry {
  exec: StoredExecution;
  model: string;
}

interface LiveCampaign {
  stored: StoredCampaign;
  policy: TimerPolicy;
  /** Latest execution per released vehicle. */
  entries: Map<string, Entry>;
  /** Not released yet, in rollout order. */
  pending: string[];
  models: Map<string, string>;
  modelSet: Set<string>;
  counts: StatusCounts;
  retryCandidates: Map<string, { vin: string; executionNumber: number; finishedAt: number }>;
  /** The stored row must be rewritten at the next flush. */
  dirtyRow: boolean;
}

interface WriteBuffer {
  vehicles: Map<string, Vehicle>;
  executions: Map<string, StoredExecution>;
  transitions: TransitionRecord[];
  campaigns: Map<string, StoredCampaign>;
  campaignTransitions: CampaignTransitionRecord[];
  targets: NonNullable<StoreBatch['targets']>;
  released: Map<string, string[]>;
  presence: Map<string, PresenceUpdate>;
  installedVersions: NonNullable<StoreBatch['installedVersions']>;
  size: number;
}

function emptyBuffer(): WriteBuffer {
  return {
    vehicles: new Map(),
    executions: new Map(),
    transitions: [],
    campaigns: new Map(),
    campaignTransitions: [],
    targets: [],
    released: new Map(),
    presence: new Map(),
    installedVersions: [],
    size: 0,
  };
}

export interface EngineStats {
  statusReceived: number;
  statusApplied: number;
  statusIgnored: Record<string, number>;
  invalidMessages: number;
  presenceReceived: number;
  syncAnswered: number;
  commandsPublished: number;
  ingestBatches: number;
  storeErrors: number;
}

const ACTIVE: ReadonlySet<ExecutionStatus> = new Set<ExecutionStatus>(['QUEUED', 'NOTIFIED', 'IN_PROGRESS']);
const LIVE_STATES = ['RUNNING', 'PAUSED'] as const;
const MAX_SYNC_EXECUTIONS = 64;

export class Orchestrator {
  private readonly store: BackendStore;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sink: CommandSink;
  private readonly scheduler: Scheduler;
  private readonly fleetIntervalMs: number;
  private readonly countsIntervalMs: number;
  private readonly autoRegister: boolean;

  private readonly live = new Map<string, LiveCampaign>();
  /** Executions a vehicle should be working on (NOTIFIED / IN_PROGRESS), for sync. */
  private readonly byVin = new Map<string, Map<string, Entry>>();
  private readonly listeners = new Map<string, Set<CampaignListener>>();
  /** Recently finished campaigns, still shown in fleet summaries once with their final state. */
  private readonly finished = new Map<string, { state: StoredCampaign['rollout']['state']; models: Set<string> }>();
  private readonly lastFleetAt = new Map<string, number>();
  private readonly lastCountsAt = new Map<string, number>();
  private readonly vinModel = new Map<string, string>();

  private buffer = emptyBuffer();
  private afterCommit: (() => void)[] = [];
  private readonly dirtyCampaigns = new Set<string>();
  private flushScheduled = false;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Serialises operator actions per campaign (start, pause, resume, cancel). */
  private readonly locks = new Map<string, Promise<unknown>>();

  readonly stats: EngineStats = {
    statusReceived: 0,
    statusApplied: 0,
    statusIgnored: {},
    invalidMessages: 0,
    presenceReceived: 0,
    syncAnswered: 0,
    commandsPublished: 0,
    ingestBatches: 0,
    storeErrors: 0,
  };

  constructor(options: OrchestratorOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.log = options.logger;
    this.sink = options.sink;
    this.fleetIntervalMs = options.fleetIntervalMs ?? 1000;
    this.countsIntervalMs = options.countsIntervalMs ?? 1000;
    this.autoRegister = options.autoRegister ?? true;
    this.scheduler = new Scheduler(this.clock, (key, now) => this.onDue(key, now));
  }

  get activeTimers(): number {
    return this.scheduler.size;
  }

  get queuedWrites(): number {
    return this.buffer.size;
  }

  get runningCampaigns(): number {
    let n = 0;
    for (const c of this.live.values()) if (c.stored.rollout.state === 'RUNNING') n++;
    return n;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Loads every RUNNING / PAUSED campaign from the store, re-arms its timers and re-sends what may have been lost. */
  async load(): Promise<void> {
    const now = this.clock.now();
    for (const stored of await this.store.campaignsInStates(LIVE_STATES)) {
      const targets = await this.store.listTargets(stored.id);
      const latest = await this.store.latestExecutions(stored.id);
      const live = this.attach(stored, targets, latest);
      for (const entry of live.entries.values()) {
        const exec = entry.exec;
        if (exec.status === 'QUEUED') {
          const update = notifyExecution(exec, now);
          if (update.applied) {
            this.applyUpdate(live, entry, update, now);
            const notified = entry.exec;
            this.afterCommit.push(() => this.sendNotify(live, notified));
          }
        } else if (exec.status === 'NOTIFIED' || exec.status === 'IN_PROGRESS') {
          // A command or an acknowledged status may have been lost with the previous process: a job.notify for a
          // known execution makes the vehicle resend its latest status (or start, if the first notify was lost).
          this.afterCommit.push(() => this.sendNotify(live, exec));
        }
      }
      this.dirtyCampaigns.add(stored.id);
      this.log.info(
        {
          campaignId: stored.id,
          state: stored.rollout.state,
          released: live.entries.size,
          pending: live.pending.length,
        },
        'campaign resumed from the store',
      );
    }
    await this.flushNow();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flushNow();
    } finally {
      this.closed = true;
      this.scheduler.close();
      this.listeners.clear();
    }
  }

  /** Resolves once every queued write is committed and its effects released (tests and orderly shutdown). */
  async flushNow(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      if (this.flushing !== undefined) {
        await this.flushing;
        continue;
      }
      if (this.buffer.size === 0 && this.afterCommit.length === 0 && this.dirtyCampaigns.size === 0) return;
      await this.flush();
    }
  }

  // ------------------------------------------------------------------ campaign control

  /** Serialises operator actions on one campaign. */
  withLock<T>(campaignId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(campaignId) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(campaignId, tail);
    void tail.then(() => {
      if (this.locks.get(campaignId) === tail) this.locks.delete(campaignId);
    });
    return run;
  }

  /** Registrations share the ingest's commits, so many concurrent ones cost one fsync. */
  async saveVehicle(vehicle: Vehicle): Promise<void> {
    this.buffer.vehicles.set(vehicle.vin, vehicle);
    this.buffer.size++;
    this.vinModel.set(vehicle.vin, vehicle.model);
    await this.flushNow();
  }

  /** A campaign was written to the store in DRAFT (no live state yet). */
  async saveDraft(stored: StoredCampaign): Promise<void> {
    this.buffer.campaigns.set(stored.id, stored);
    this.buffer.size++;
    await this.flushNow();
  }

  /** Starts a DRAFT campaign whose targets are resolved and manifest signed by the caller. */
  async start(stored: StoredCampaign, targets: { vin: string; model: string }[]): Promise<StoredCampaign> {
    const now = this.clock.now();
    const update = applyCampaignEvent(stored.rollout, { type: 'start' }, now);
    if (!update.applied) throw new BackendError('OTA_ERR_INVALID_STATE', update.text);
    const next: StoredCampaign = { ...stored, rollout: update.campaign, targets: targets.length, released: 0 };
    this.buffer.targets.push({ campaignId: stored.id, targets });
    this.buffer.size += targets.length;
    this.recordCampaignTransition(next, update.transition);
    const live = this.attach(
      next,
      targets.map((t) => ({ ...t, released: false })),
      [],
    );
    live.dirtyRow = true;
    this.dirtyCampaigns.add(stored.id);
    await this.flushNow();
    return live.stored;
  }

  async pause(stored: StoredCampaign, executions = false): Promise<StoredCampaign> {
    return this.campaignEvent(stored, { type: 'pause' }, executions);
  }

  async resume(stored: StoredCampaign): Promise<StoredCampaign> {
    return this.campaignEvent(stored, { type: 'resume' });
  }

  async cancel(stored: StoredCampaign): Promise<StoredCampaign> {
    return this.campaignEvent(stored, { type: 'cancel' });
  }

  private async campaignEvent(
    stored: StoredCampaign,
    event: RolloutEvent,
    pauseExecutions = false,
  ): Promise<StoredCampaign> {
    const now = this.clock.now();
    const live = this.live.get(stored.id);
    const current = live?.stored ?? stored;
    const update = applyCampaignEvent(current.rollout, event, now);
    if (!update.applied) throw new BackendError('OTA_ERR_INVALID_STATE', update.text);
    let result: StoredCampaign;
    if (live === undefined) {
      result = { ...current, rollout: update.campaign };
      this.buffer.campaigns.set(result.id, result);
      this.buffer.size++;
      this.recordCampaignTransition(result, update.transition);
    } else {
      this.setRollout(live, update.campaign);
      this.recordCampaignTransition(live.stored, update.transition);
      if (event.type === 'cancel' || event.type === 'abort') this.stopAll(live, now);
      else {
        if (event.type === 'pause' && pauseExecutions) this.pauseAll(live, now);
        if (event.type === 'resume') this.resumeAll(live, now);
        this.dirtyCampaigns.add(live.stored.id);
      }
      result = live.stored;
    }
    await this.flushNow();
    return result;
  }

  /** The live row when the campaign is running or paused (fresher than the store between flushes). */
  liveCampaign(id: string): { stored: StoredCampaign; counts: StatusCounts } | undefined {
    const live = this.live.get(id);
    return live === undefined ? undefined : { stored: live.stored, counts: { ...live.counts } };
  }

  subscribe(campaignId: string, listener: CampaignListener): () => void {
    let set = this.listeners.get(campaignId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(campaignId, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(campaignId);
      current?.delete(listener);
      if (current?.size === 0) this.listeners.delete(campaignId);
    };
  }

  // ------------------------------------------------------------------ ingest (called by the MQTT bridge)

  /**
   * A job.status from `vin`. Applied only above the execution's lastSeq; everything else is counted and dropped.
   * `ack` (the MQTT acknowledgement) runs once the change is committed, or at once when nothing is to be written.
   */
  ingestStatus(vin: string, message: JobStatus, ack?: () => void): void {
    if (this.closed) return;
    this.stats.statusReceived++;
    const live = this.live.get(message.jobId);
    if (live === undefined) {
      this.ignored('NO_ACTIVE_CAMPAIGN', vin, message);
      ack?.();
      return;
    }
    const entry = live.entries.get(vin);
    if (entry === undefined) {
      this.ignored('UNKNOWN_EXECUTION', vin, message);
      ack?.();
      return;
    }
    const now = this.clock.now();
    const update = applyStatus(entry.exec, message, now);
    if (!update.applied) {
      this.ignored(update.ignored, vin, message);
      ack?.();
      return;
    }
    this.stats.statusApplied++;
    if (ack !== undefined) this.afterCommit.push(ack);
    this.applyUpdate(live, entry, update, now);
    if (update.execution.status === 'SUCCEEDED' || update.execution.status === 'ROLLED_BACK') {
      const version = update.execution.installedVersion;
      if (version !== undefined) {
        this.buffer.installedVersions.push({ vin, version, at: now });
        this.buffer.size++;
      }
    }
    this.scheduleFlush();
  }

  private ignored(code: string, vin: string, message: JobStatus): void {
    this.stats.statusIgnored[code] = (this.stats.statusIgnored[code] ?? 0) + 1;
    this.log.debug(
      { vin, jobId: message.jobId, executionNumber: message.executionNumber, seq: message.seq, code },
      'status ignored',
    );
  }

  ingestPresence(vin: string, message: Presence, ack?: () => void): void {
    if (this.closed) return;
    this.stats.presenceReceived++;
    if (ack !== undefined) this.afterCommit.push(ack);
    const now = this.clock.now();
    const update: PresenceUpdate = { vin, online: message.online, lastSeen: now };
    if (message.inventory !== undefined) {
      update.inventory = message.inventory;
      const model = message.inventory.model;
      if (model !== undefined) this.vinModel.set(vin, model);
      if (this.autoRegister && message.online) {
        update.register = { model: model ?? 'unknown', hardwareId: message.inventory.hardwareId };
      }
    }
    const previous = this.buffer.presence.get(vin);
    // An offline presence does not carry the inventory; keep one that is still waiting to be written.
    if (previous?.inventory !== undefined && update.inventory === undefined) update.inventory = previous.inventory;
    if (previous?.register !== undefined && update.register === undefined) update.register = previous.register;
    this.buffer.presence.set(vin, update);
    this.buffer.size++;
    const model = this.vinModel.get(vin);
    if (model !== undefined) this.fleetChanged(model, now);
    this.scheduleFlush();
  }

  /** A sync request: answered (after the pending writes commit) with the executions the vehicle should work on. */
  sync(vin: string, clientToken: string, ack?: () => void): void {
    if (this.closed) return;
    if (ack !== undefined) this.afterCommit.push(ack);
    this.afterCommit.push(() => {
      const executions: PendingExecutionEntry[] = [];
      for (const entry of this.byVin.get(vin)?.values() ?? []) {
        const live = this.live.get(entry.exec.campaignId);
        if (live === undefined || executions.length >= MAX_SYNC_EXECUTIONS) continue;
        const status = entry.exec.status;
        if (status !== 'NOTIFIED' && status !== 'IN_PROGRESS') continue;
        executions.push({
          ...this.jobFields(live, entry.exec),
          status,
          lastSeq: entry.exec.lastSeq,
          paused: entry.exec.paused,
        });
      }
      const message = createMessage('sync.result', { clientToken, executions }, { ts: this.clock.now() });
      this.stats.syncAnswered++;
      this.send(vin, message);
    });
    this.scheduleFlush();
  }

  countInvalid(): void {
    this.stats.invalidMessages++;
  }

  // ------------------------------------------------------------------ internals: live state

  private attach(
    stored: StoredCampaign,
    targets: { vin: string; model: string; released: boolean }[],
    latest: StoredExecution[],
  ): LiveCampaign {
    const live: LiveCampaign = {
      stored,
      policy: policyOf(stored),
      entries: new Map(),
      pending: [],
      models: new Map(),
      modelSet: new Set(),
      counts: emptyCounts(),
      retryCandidates: new Map(),
      dirtyRow: false,
    };
    for (const t of targets) {
      live.models.set(t.vin, t.model);
      live.modelSet.add(t.model);
      this.vinModel.set(t.vin, t.model);
      if (!t.released) live.pending.push(t.vin);
    }
    this.live.set(stored.id, live);
    for (const exec of latest) {
      const entry: Entry = { exec, model: live.models.get(exec.vin) ?? 'unknown' };
      live.entries.set(exec.vin, entry);
      this.track(live, entry, undefined);
      this.armTimer(live, entry);
    }
    return live;
  }

  /** Counts, retry candidates and the sync index follow an execution's status. */
  private track(live: LiveCampaign, entry: Entry, previous: ExecutionStatus | undefined): void {
    const exec = entry.exec;
    if (previous !== undefined) live.counts[previous]--;
    live.counts[exec.status]++;
    if (RETRYABLE_STATUSES.has(exec.status)) {
      live.retryCandidates.set(exec.vin, {
        vin: exec.vin,
        executionNumber: exec.executionNumber,
        finishedAt: exec.finishedAt ?? this.clock.now(),
      });
    } else {
      live.retryCandidates.delete(exec.vin);
    }
    if (exec.status === 'NOTIFIED' || exec.status === 'IN_PROGRESS') {
      let mine = this.byVin.get(exec.vin);
      if (mine === undefined) {
        mine = new Map();
        this.byVin.set(exec.vin, mine);
      }
      mine.set(exec.campaignId, entry);
    } else {
      const mine = this.byVin.get(exec.vin);
      if (mine?.get(exec.campaignId) === entry) {
        mine.delete(exec.campaignId);
        if (mine.size === 0) this.byVin.delete(exec.vin);
      }
    }
  }

  private applyUpdate(
    live: LiveCampaign,
    entry: Entry,
    update: { applied: true; execution: Execution; transition?: Transition },
    now: number,
  ): void {
    const previous = entry.exec.status;
    entry.exec = { ...update.execution, updatedAt: now };
    if (previous !== entry.exec.status) this.track(live, entry, previous);
    this.writeExecution(live, entry, update.transition);
    this.armTimer(live, entry);
    if (isTerminal(entry.exec.status) && !isTerminal(previous)) this.dirtyCampaigns.add(live.stored.id);
    this.fleetChanged(entry.model, now);
    this.countsChanged(live, now);
  }

  private writeExecution(live: LiveCampaign, entry: Entry, transition: Transition | undefined): void {
    const exec = entry.exec;
    this.buffer.executions.set(`${exec.campaignId}\u0000${exec.vin}\u0000${exec.executionNumber}`, exec);
    this.buffer.size++;
    const record: TransitionRecord | undefined =
      transition === undefined ? undefined : { ...transition, campaignId: exec.campaignId };
    if (record !== undefined) {
      this.buffer.transitions.push(record);
      this.buffer.size++;
    }
    if (this.listeners.has(live.stored.id)) {
      const event: CampaignEvent = {
        type: 'execution',
        campaignId: exec.campaignId,
        at: exec.updatedAt,
        vin: exec.vin,
        executionNumber: exec.executionNumber,
        status: exec.status,
      };
      if (exec.step !== undefined) event.step = exec.step;
      if (exec.progress !== undefined) event.progress = exec.progress;
      if (exec.bytesDone !== undefined) event.bytesDone = exec.bytesDone;
      if (exec.bytesTotal !== undefined) event.bytesTotal = exec.bytesTotal;
      if (record !== undefined) {
        event.cause = record.cause;
        event.from = record.from;
        if (record.reason !== undefined) event.reason = record.reason;
      }
      this.emitAfterCommit(event);
    }
  }

  private armTimer(live: LiveCampaign, entry: Entry): void {
    const key = execKey(entry.exec.campaignId, entry.exec.vin);
    const deadline = nextDeadline(entry.exec, live.policy);
    if (deadline === undefined) this.scheduler.delete(key);
    else this.scheduler.set(key, deadline.at);
  }

  private setRollout(live: LiveCampaign, rollout: RolloutState): void {
    live.stored = { ...live.stored, rollout };
    live.dirtyRow = true;
  }

  private recordCampaignTransition(
    stored: StoredCampaign,
    t: {
      campaignId: string;
      from: RolloutState['state'];
      to: RolloutState['state'];
      at: number;
      cause: string;
      reason?: string;
    },
  ): void {
    const record = { ...t } as CampaignTransitionRecord;
    this.buffer.campaignTransitions.push(record);
    this.buffer.size++;
    const event: CampaignEvent = {
      type: 'campaign.state',
      campaignId: t.campaignId,
      at: t.at,
      from: t.from,
      to: t.to,
      cause: t.cause,
    };
    if (t.reason !== undefined) event.reason = t.reason;
    this.emitAfterCommit(event);
    this.log.info(
      { campaignId: stored.id, from: t.from, to: t.to, cause: t.cause, reason: t.reason },
      'campaign state',
    );
  }

  /** Cancel or abort: every execution not finished is canceled, with force for the ones the vehicle knows. */
  private stopAll(live: LiveCampaign, now: number): void {
    for (const entry of live.entries.values()) {
      const before = entry.exec.status;
      if (!ACTIVE.has(before)) continue;
      const update = cancelExecution(entry.exec, { force: true }, now);
      if (!update.applied) continue;
      this.applyUpdate(live, entry, update, now);
      if (before === 'NOTIFIED' || before === 'IN_PROGRESS') {
        const exec = entry.exec;
        this.afterCommit.push(() =>
          this.send(
            exec.vin,
            createMessage(
              'job.cancel',
              { jobId: exec.jobId, executionNumber: exec.executionNumber, force: true },
              { ts: this.clock.now() },
            ),
          ),
        );
      }
    }
    this.retire(live, now);
  }

  /** job.pause to every execution in flight; their timers stop until resume. */
  private pauseAll(live: LiveCampaign, now: number): void {
    for (const entry of live.entries.values()) {
      const update = pauseExecution(entry.exec, now);
      if (!update.applied) continue;
      this.applyUpdate(live, entry, update, now);
      const exec = entry.exec;
      this.afterCommit.push(() => this.sendControl('job.pause', exec));
    }
  }

  /** job.resume to every execution the backend paused; resume re-arms their timers from now. */
  private resumeAll(live: LiveCampaign, now: number): void {
    for (const entry of live.entries.values()) {
      if (!entry.exec.paused) continue;
      const update = resumeExecution(entry.exec, now);
      if (!update.applied) continue;
      this.applyUpdate(live, entry, update, now);
      const exec = entry.exec;
      this.afterCommit.push(() => this.sendControl('job.resume', exec));
    }
  }

  private sendControl(type: 'job.pause' | 'job.resume', exec: Execution): void {
    this.send(
      exec.vin,
      createMessage(type, { jobId: exec.jobId, executionNumber: exec.executionNumber }, { ts: this.clock.now() }),
    );
  }

  /** A campaign reached a final state: drop its live state after the final writes. */
  private retire(live: LiveCampaign, now: number): void {
    const id = live.stored.id;
    live.dirtyRow = true;
    this.writeCampaignRow(live);
    for (const entry of live.entries.values()) {
      this.scheduler.delete(execKey(id, entry.exec.vin));
      const mine = this.byVin.get(entry.exec.vin);
      if (mine?.get(id) === entry) {
        mine.delete(id);
        if (mine.size === 0) this.byVin.delete(entry.exec.vin);
      }
    }
    this.scheduler.delete(wakeKey(id));
    this.live.delete(id);
    this.dirtyCampaigns.delete(id);
    const models = live.modelSet;
    this.finished.set(id, { state: live.stored.rollout.state, models });
    if (this.finished.size > 16) this.finished.delete(this.finished.keys().next().value as string);
    for (const model of models) this.fleetChanged(model, now);
    this.emitCounts(live, now);
  }

  private writeCampaignRow(live: LiveCampaign): void {
    if (!live.dirtyRow) return;
    live.dirtyRow = false;
    this.buffer.campaigns.set(live.stored.id, live.stored);
    this.buffer.size++;
  }

  // ------------------------------------------------------------------ rollout planning

  private replan(live: LiveCampaign, now: number): void {
    const stored = live.stored;
    if (stored.rollout.state !== 'RUNNING') return;
    const counts: RolloutCounts = {
      targets: stored.targets,
      succeeded: live.counts.SUCCEEDED,
      failed: live.counts.REJECTED + live.counts.ROLLED_BACK,
      active: live.counts.QUEUED + live.counts.NOTIFIED + live.counts.IN_PROGRESS,
      pendingVins: live.pending,
      retryCandidates: [...live.retryCandidates.values()],
    };
    const batch = planNextBatch(stored.rollout, counts, now);
    const before = stored.rollout;
    const after = batch.campaign;
    if (
      after.wave !== before.wave ||
      after.window !== before.window ||
      after.startedInWindow !== before.startedInWindow
    ) {
      this.setRollout(live, after);
    }
    if (live.stored.decision !== batch.decision || live.stored.decisionText !== batch.text) {
      live.stored = { ...live.stored, decision: batch.decision, decisionText: batch.text };
      live.dirtyRow = true;
    }
    if (batch.decision === 'abort' || batch.decision === 'complete') {
      const update = applyCampaignEvent(
        live.stored.rollout,
        batch.decision === 'abort' ? { type: 'abort', reason: batch.text } : { type: 'complete' },
        now,
      );
      if (update.applied) {
        this.setRollout(live, update.campaign);
        this.recordCampaignTransition(live.stored, update.transition);
        if (batch.decision === 'abort') this.stopAll(live, now);
        else this.retire(live, now);
      }
      return;
    }
    if (batch.start.length > 0) {
      const released = live.pending.splice(0, batch.start.length);
      const list = this.buffer.released.get(stored.id) ?? [];
      for (const vin of released) list.push(vin);
      this.buffer.released.set(stored.id, list);
      live.stored = { ...live.stored, released: live.stored.released + released.length };
      live.dirtyRow = true;
      for (const vin of released) this.release(live, vin, 1, now);
    }
    for (const retry of batch.retry) this.release(live, retry.vin, retry.executionNumber, now);
    if (batch.wakeAt !== undefined) this.scheduler.set(wakeKey(stored.id), batch.wakeAt);
    this.writeCampaignRow(live);
  }

  /** A new execution for one vehicle, notified at once. */
  private release(live: LiveCampaign, vin: string, executionNumber: number, now: number): void {
    const previous = live.entries.get(vin);
    const created = createExecution(
      { jobId: live.stored.jobId, executionNumber, vin, campaignId: live.stored.id },
      now,
    );
    const entry: Entry = { exec: { ...created, updatedAt: now }, model: live.models.get(vin) ?? 'unknown' };
    live.entries.set(vin, entry);
    this.track(live, entry, previous?.exec.status);
    const update = notifyExecution(entry.exec, now);
    if (!update.applied) return;
    this.applyUpdate(live, entry, update, now);
    const exec = entry.exec;
    this.afterCommit.push(() => this.sendNotify(live, exec));
  }

  // ------------------------------------------------------------------ timers

  private onDue(key: string, now: number): void {
    const [kind, id, rest] = splitKey(key);
    if (kind === 'x') {
      const live = this.live.get(id);
      const entry = live?.entries.get(rest);
      if (live === undefined || entry === undefined) return;
      const update = fireDeadline(entry.exec, live.policy, now);
      if (!update.applied) {
        this.armTimer(live, entry);
        return;
      }
      this.applyUpdate(live, entry, update, now);
      if (update.transition?.cause === 'renotify') {
        const exec = entry.exec;
        this.afterCommit.push(() => this.sendNotify(live, exec));
      } else if (update.transition !== undefined) {
        this.log.info(
          { campaignId: id, vin: rest, executionNumber: entry.exec.executionNumber, cause: update.transition.cause },
          'execution timed out',
        );
      }
    } else if (kind === 'w') {
      if (this.live.has(id)) this.dirtyCampaigns.add(id);
    } else if (kind === 'f') {
      void this.publishFleet(id, now);
      return;
    } else if (kind === 'n') {
      const live = this.live.get(id);
      if (live !== undefined) this.emitCounts(live, now);
      return;
    }
    this.scheduleFlush();
  }

  // ------------------------------------------------------------------ outbound

  private jobFields(live: LiveCampaign, exec: Execution): Omit<JobNotify, 'v' | 'msgId' | 'ts' | 'type'> {
    const stored = live.stored;
    const manifest = stored.manifest;
    if (manifest === undefined)
      throw new BackendError('OTA_ERR_INVALID_STATE', `campaign ${stored.id} has no manifest`);
    const deadlines: JobNotify['deadlines'] = {
      stepTimeoutMs: live.policy.stepTimeoutMs,
      inProgressTimeoutMs: live.policy.inProgressTimeoutMs,
    };
    if (stored.spec.notBefore !== undefined) deadlines.notBefore = stored.spec.notBefore;
    if (stored.spec.startBy !== undefined) deadlines.startBy = stored.spec.startBy;
    return {
      jobId: exec.jobId,
      executionNumber: exec.executionNumber,
      campaignId: exec.campaignId,
      manifest,
      deadlines,
      separateInstall: stored.spec.separateInstall ?? false,
      preconditions: stored.spec.preconditions ?? {},
    };
  }

  private sendNotify(live: LiveCampaign, exec: Execution): void {
    const message = createMessage('job.notify', this.jobFields(live, exec), { ts: this.clock.now() });
    this.send(exec.vin, message, { expiresAt: live.stored.manifest?.manifest.expiresAt });
  }

  private send(vin: string, message: OtaMessage, options?: { expiresAt?: number | undefined }): void {
    this.stats.commandsPublished++;
    try {
      this.sink.send(vin, message, options?.expiresAt === undefined ? undefined : { expiresAt: options.expiresAt });
    } catch (e) {
      this.log.error({ vin, type: message.type, err: e }, 'sending a command failed');
    }
  }

  private emitAfterCommit(event: CampaignEvent): void {
    if (!this.listeners.has(event.campaignId)) return;
    this.afterCommit.push(() => this.emit(event));
  }

  private emit(event: CampaignEvent): void {
    for (const listener of this.listeners.get(event.campaignId) ?? []) {
      try {
        listener(event);
      } catch (e) {
        this.log.warn({ campaignId: event.campaignId, err: e }, 'campaign listener threw');
      }
    }
  }

  private countsChanged(live: LiveCampaign, now: number): void {
    if (!this.listeners.has(live.stored.id)) return;
    const last = this.lastCountsAt.get(live.stored.id) ?? Number.NEGATIVE_INFINITY;
    this.scheduler.setEarliest(countsKey(live.stored.id), Math.max(now, last + this.countsIntervalMs));
  }

  private emitCounts(live: LiveCampaign, now: number): void {
    this.lastCountsAt.set(live.stored.id, now);
    this.emitAfterCommit({
      type: 'counts',
      campaignId: live.stored.id,
      at: now,
      state: live.stored.rollout.state,
      targets: live.stored.targets,
      released: live.stored.released,
      counts: { ...live.counts },
    });
    this.scheduleFlush();
  }

  private fleetChanged(model: string, now: number): void {
    const last = this.lastFleetAt.get(model) ?? Number.NEGATIVE_INFINITY;
    this.scheduler.setEarliest(fleetKey(model), Math.max(now, last + this.fleetIntervalMs));
  }

  private async publishFleet(model: string, now: number): Promise<void> {
    this.lastFleetAt.set(model, now);
    try {
      // The summary reads the store: let the writes that triggered it land first.
      await this.flushNow();
      if (this.closed) return;
      const summary = await this.store.fleetSummary(model);
      const campaigns: FleetStatus['campaigns'] = [];
      for (const live of this.live.values()) {
        if (!live.modelSet.has(model)) continue;
        campaigns.push({
          campaignId: live.stored.id,
          state: live.stored.rollout.state,
          counts: await this.store.countByStatus(live.stored.id, model),
        });
      }
      for (const [campaignId, done] of this.finished) {
        if (!done.models.has(model) || campaigns.length >= 256) continue;
        campaigns.push({ campaignId, state: done.state, counts: await this.store.countByStatus(campaignId, model) });
      }
      const message = createMessage(
        'fleet.status',
        {
          model,
          vehicles: summary.vehicles,
          online: summary.online,
          versions: summary.versions,
          campaigns: campaigns.slice(0, 256),
        },
        { ts: this.clock.now() },
      );
      this.sink.publishFleet(model, message);
    } catch (e) {
      if (!this.closed) this.log.warn({ model, err: e }, 'fleet summary failed');
    }
  }

  // ------------------------------------------------------------------ the write buffer

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      // A failed commit is logged, re-queued and retried by flushOnce; nobody awaits this one.
      if (this.flushing === undefined) this.flush().catch(() => undefined);
      else
        this.flushing.then(
          () => this.scheduleFlush(),
          () => this.scheduleFlush(),
        );
    });
  }

  private flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    const run = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    this.flushing = run;
    return run;
  }

  /** Puts a failed batch back in front of what was queued since, newer values winning. */
  private requeue(failed: WriteBuffer, effects: (() => void)[]): void {
    const newer = this.buffer;
    for (const [k, v] of newer.vehicles) failed.vehicles.set(k, v);
    for (const [k, v] of newer.executions) failed.executions.set(k, v);
    for (const [k, v] of newer.campaigns) failed.campaigns.set(k, v);
    for (const [k, v] of newer.presence) failed.presence.set(k, v);
    for (const [k, v] of newer.released) failed.released.set(k, [...(failed.released.get(k) ?? []), ...v]);
    failed.transitions.push(...newer.transitions);
    failed.campaignTransitions.push(...newer.campaignTransitions);
    failed.targets.push(...newer.targets);
    failed.installedVersions.push(...newer.installedVersions);
    failed.size += newer.size;
    this.buffer = failed;
    this.afterCommit = [...effects, ...this.afterCommit];
  }

  private async flushOnce(): Promise<void> {
    const now = this.clock.now();
    // Plan before the commit so the vehicles a finished execution releases are written in the same transaction.
    for (const id of [...this.dirtyCampaigns]) {
      this.dirtyCampaigns.delete(id);
      const live = this.live.get(id);
      if (live !== undefined) this.replan(live, now);
    }
    for (const live of this.live.values()) this.writeCampaignRow(live);
    const buffer = this.buffer;
    const effects = this.afterCommit;
    this.buffer = emptyBuffer();
    this.afterCommit = [];
    if (buffer.size > 0) {
      try {
        await this.store.commit(toBatch(buffer));
        this.stats.ingestBatches++;
      } catch (e) {
        this.stats.storeErrors++;
        this.log.error({ err: e, writes: buffer.size }, 'store commit failed; the batch is kept and retried');
        // Memory is already ahead of the store: keep the batch (and its commands and acks) and try again, so the
        // store catches up instead of silently missing what the orchestrator believes is written.
        this.requeue(buffer, effects);
        if (!this.closed) {
          const retry = setTimeout(() => this.scheduleFlush(), STORE_RETRY_MS);
          retry.unref();
        }
        throw e;
      }
    }
    for (const effect of effects) {
      try {
        effect();
      } catch (e) {
        this.log.error({ err: e }, 'post-commit effect failed');
      }
    }
  }
}

const STORE_RETRY_MS = 1000;

function toBatch(buffer: WriteBuffer): StoreBatch {
  const batch: StoreBatch = {};
  if (buffer.vehicles.size > 0) batch.vehicles = [...buffer.vehicles.values()];
  if (buffer.presence.size > 0) batch.presence = [...buffer.presence.values()];
  if (buffer.installedVersions.length > 0) batch.installedVersions = buffer.installedVersions;
  if (buffer.campaigns.size > 0) batch.campaigns = [...buffer.campaigns.values()];
  if (buffer.campaignTransitions.length > 0) batch.campaignTransitions = buffer.campaignTransitions;
  if (buffer.targets.length > 0) batch.targets = buffer.targets;
  if (buffer.released.size > 0) {
    batch.released = [...buffer.released].map(([campaignId, vins]) => ({ campaignId, vins }));
  }
  if (buffer.executions.size > 0) batch.executions = [...buffer.executions.values()];
  if (buffer.transitions.length > 0) batch.transitions = buffer.transitions;
  return batch;
}

export function policyOf(stored: StoredCampaign): TimerPolicy {
  const t = stored.timers;
  const policy: TimerPolicy = {
    renotifyAfterMs: t.renotifyAfterMs,
    renotifyBackoff: t.renotifyBackoff,
    maxRenotifyIntervalMs: t.maxRenotifyIntervalMs,
    stepTimeoutMs: t.stepTimeoutMs,
    inProgressTimeoutMs: t.inProgressTimeoutMs,
  };
  if (t.startTimeoutMs !== undefined) policy.startTimeoutMs = t.startTimeoutMs;
  return policy;
}

const execKey = (campaignId: string, vin: string) => `x\u0000${campaignId}\u0000${vin}`;
const wakeKey = (campaignId: string) => `w\u0000${campaignId}\u0000`;
const fleetKey = (model: string) => `f\u0000${model}\u0000`;
const countsKey = (campaignId: string) => `n\u0000${campaignId}\u0000`;

function splitKey(key: string): [string, string, string] {
  const [kind = '', id = '', rest = ''] = key.split('\u0000');
  return [kind, id, rest];
}
