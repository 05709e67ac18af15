// The agent's update state machine, pure: given the state, an event and `now`, it returns the next state and the
// actions for the adapters (report, download, verify, install, restart, health check...). No I/O, no clock, no
// randomness of its own, so one test can drive every path with a fake clock.
import {
  type JobCancel,
  type JobNotify,
  type JobPause,
  type JobResume,
  type Manifest,
  type ReportableStatus,
  SeenMessageIds,
  type SignatureVerifier,
  type SyncResult,
  type TrustedKeys,
  verifyManifest,
} from '@otalink/ota';
import {
  type AgentState,
  type CurrentJob,
  type FinishedJob,
  installedVersionOf,
  type JobSpec,
  otherSlot,
  type Report,
  type SlotName,
  type Step,
} from './state.js';

/** What the vehicle itself reports about its condition, read when preconditions are checked. */
export interface VehicleConditions {
  parked: boolean;
  batteryPercent: number;
  ownerConsent: boolean;
}

export interface MachineConfig {
  hardwareId: string;
  trustedKeys: TrustedKeys;
  verifySignature: SignatureVerifier;
  clockSkewMs?: number;
  /** Accept http:// artifact URLs (tests, labs); default false: REJECTED AGENT_ERR_INSECURE_URL. */
  allowHttp?: boolean;
  /** Progress is reported when it moved by this many percent ... (default 10) */
  progressPercentStep?: number;
  /** ... and at least this long after the previous report (default 5000 ms), whichever comes later. */
  progressIntervalMs?: number;
  /** How long to wait, reporting paused, for an unmet precondition before REJECTED (default 0: refuse at once). */
  preconditionWaitMs?: number;
  /** How often to look at the preconditions again while waiting (default 10 000 ms). */
  preconditionRecheckMs?: number;
  /** Jobs held while another runs (default 8); beyond: REJECTED AGENT_ERR_BUSY. */
  maxQueuedJobs?: number;
  /** Finished executions remembered to answer re-notifies (default 16). */
  finishedMemory?: number;
}

export interface MachineEnv {
  now: number;
  config: MachineConfig;
  vehicle: VehicleConditions;
  /** A fresh UUID for an outgoing message (injected so tests are deterministic). */
  newMsgId(): string;
}

export interface ExecutionRef {
  jobId: string;
  executionNumber: number;
}

export type Command = JobNotify | JobCancel | JobPause | JobResume | SyncResult;

export type MachineEvent =
  /** The agent started (first start or after a restart); the journal has been read. */
  | { type: 'booted' }
  /** The MQTT session is up (every connect). */
  | { type: 'connected' }
  | { type: 'command'; message: Command }
  /** A job.notify that failed to parse but whose execution is readable: reported REJECTED (protocol doc). */
  | { type: 'invalidNotify'; msgId?: string; ref: ExecutionRef; code: string; text: string }
  | ({ type: 'downloadProgress'; bytesDone: number; etag?: string } & ExecutionRef)
  | ({ type: 'downloadDone'; bytesDone: number } & ExecutionRef)
  | ({ type: 'downloadFailed'; code: string; text: string } & ExecutionRef)
  | ({ type: 'verifyResult'; ok: true } & ExecutionRef)
  | ({ type: 'verifyResult'; ok: false; code: string; text: string } & ExecutionRef)
  /** Verification could not run (the file vanished, an I/O error): no verdict on the artifact. */
  | ({ type: 'verifyFailed'; code: string; text: string } & ExecutionRef)
  | ({ type: 'installResult'; ok: boolean; text?: string } & ExecutionRef)
  | ({ type: 'healthResult'; ok: boolean; text?: string } & ExecutionRef)
  /** Time passed (a wake-up asked for with `wakeAt`, or a periodic tick). */
  | { type: 'tick' };

export type Action =
  | { type: 'report'; report: Report }
  | { type: 'sync'; clientToken: string }
  | ({ type: 'download'; url: string; size: number; etag?: string } & ExecutionRef)
  /** Stop the running download and keep the partial file (pause). */
  | { type: 'stopDownload' }
  | ({ type: 'verify'; manifest: Manifest } & ExecutionRef)
  | ({ type: 'install'; slot: SlotName; manifest: Manifest } & ExecutionRef)
  /** Delete the downloaded file (and the slot's contents when `slot` is given). */
  | { type: 'discard'; slot?: SlotName }
  /** Persist, then restart the agent into `slot` (the activation). */
  | { type: 'restart'; slot: SlotName }
  | ({ type: 'healthCheck'; slot: SlotName; manifest: Manifest } & ExecutionRef)
  /** The inventory changed: publish presence again. */
  | { type: 'presence' }
  | { type: 'wakeAt'; at: number };

export interface MachineResult {
  state: AgentState;
  actions: Action[];
  /** The state must reach the journal before the actions run (false only for progress without a report). */
  persist: boolean;
}

const DEFAULTS = {
  progressPercentStep: 10,
  progressIntervalMs: 5000,
  preconditionWaitMs: 0,
  preconditionRecheckMs: 10_000,
  maxQueuedJobs: 8,
  finishedMemory: 16,
};

/** One step of the machine. `state` is not modified. */
export function step(state: AgentState, event: MachineEvent, env: MachineEnv): MachineResult {
  const run = new Run(copyForStep(state), env);
  run.handle(event);
  return { state: run.state, actions: run.actions, persist: run.persist };
}

/**
 * A copy of what a step changes in place: the top level, the slots and the trial, the current job's own fields
 * and its download, and the queue. The rest (job specs with their signed manifests, reports, the finished list,
 * the msgIds seen) is only ever replaced, never changed, so old and new state share it (the machine tests freeze
 * every input state to hold this).
 * A structuredClone of the whole state per step was a visible share of a simulated fleet's CPU.
 */
function copyForStep(state: AgentState): AgentState {
  const { slots, current } = state;
  return {
    ...state,
    slots: { ...slots, ...(slots.trial === undefined ? {} : { trial: { ...slots.trial } }) },
    ...(current === undefined ? {} : { current: { ...current, download: { ...current.download } } }),
    queue: [...state.queue],
  };
}

class Run {
  readonly actions: Action[] = [];
  persist = true;
  private readonly cfg: Required<Omit<MachineConfig, 'clockSkewMs' | 'allowHttp'>> &
    Pick<MachineConfig, 'clockSkewMs' | 'allowHttp'>;

  constructor(
    readonly state: AgentState,
    private readonly env: MachineEnv,
  ) {
    this.cfg = { ...DEFAULTS, ...env.config } as Run['cfg'];
  }

  handle(event: MachineEvent): void {
    switch (event.type) {
      case 'booted':
        this.booted();
        return;
      case 'connected': {
        const clientToken = `boot-${this.state.boots}-${this.env.now}`;
        this.state.syncToken = clientToken;
        this.state.syncAt = this.env.now;
        this.actions.push({ type: 'sync', clientToken });
        // The token only has to match its answer within this lifetime (a new lifetime has another boot count and
        // syncs again), so it need not reach the disk before the request goes out: one journal write less per
        // connection, which at every activation restart of a fleet adds up.
        this.persist = false;
        return;
      }
      case 'command':
        this.command(event.message);
        return;
      case 'invalidNotify':
        this.invalidNotify(event);
        return;
      case 'tick':
        this.tick();
        return;
      default:
        this.adapterEvent(event);
        return;
    }
  }

  // ---- commands ----

  private command(message: Command): void {
    if (message.type === 'sync.result') {
      // Matched by its clientToken, new at every connection, so a redelivered answer is ignored without
      // remembering its msgId; and an answer that changes nothing (the common case after an activation restart)
      // needs no journal write: the actions it can produce are resends of reports already journaled.
      const before = JSON.stringify(this.state);
      this.syncResult(message);
      this.persist = JSON.stringify(this.state) !== before;
      return;
    }
    const seen = new SeenMessageIds({}, this.state.seen);
    if (!seen.add(message.msgId, this.env.now)) {
      this.persist = false;
      return;
    }
    this.state.seen = seen.snapshot();
    switch (message.type) {
      case 'job.notify':
        this.notify(message, 0, false);
        return;
      case 'job.cancel':
        this.cancel(message, message.force);
        return;
      case 'job.pause':
        this.pause(message);
        return;
      case 'job.resume':
        this.resume(message);
        return;
    }
  }

  private notify(spec: JobSpec, seqFloor: number, paused: boolean): void {
    const current = this.state.current;
    if (current !== undefined && current.spec.jobId === spec.jobId) {
      if (current.spec.executionNumber === spec.executionNumber) {
        this.resend(current.lastReport);
        return;
      }
      if (current.spec.executionNumber > spec.executionNumber) return;
      // The backend gave up on the attempt in hand (timed out) and started a new one: drop the old silently.
      this.abandon(current);
    }
    const finished = this.findFinished(spec);
    if (finished !== undefined) {
      this.resend(finished.lastReport);
      return;
    }
    if (this.state.queue.some((q) => same(q, spec))) return;
    const stripped = pickSpec(spec);
    if (this.state.current !== undefined) {
      if (this.state.queue.length >= this.cfg.maxQueuedJobs) {
        this.rejectOutright(spec, seqFloor, 'AGENT_ERR_BUSY', 'too many jobs queued on this vehicle');
        return;
      }
      this.state.queue.push(stripped);
      return;
    }
    this.start(stripped, seqFloor, paused);
  }

  private cancel(ref: ExecutionRef, force: boolean): void {
    const queued = this.state.queue.findIndex((q) => same(q, ref));
    if (queued >= 0) {
      this.state.queue.splice(queued, 1);
      return;
    }
    const current = this.state.current;
    if (current === undefined || !same(current.spec, ref)) return;
    if (current.phase === 'SCHEDULED') {
      this.dropCurrent(current);
      return;
    }
    if (!force) return;
    switch (current.phase) {
      case 'ACTIVATING':
        // Activation cannot be interrupted safely; it completes and reports its real outcome.
        return;
      case 'INSTALLING':
        current.cancelRequested = true;
        return;
      default:
        this.abandon(current);
        this.startNext();
    }
  }

  private pause(ref: ExecutionRef): void {
    const current = this.currentFor(ref);
    if (current === undefined || current.paused || current.phase === 'ACTIVATING') return;
    current.paused = true;
    if (current.phase === 'DOWNLOADING') {
      this.actions.push({ type: 'stopDownload' });
      this.reportDownload(current, true);
    } else if (current.phase === 'VERIFIED' || current.phase === 'INSTALLED') {
      this.reportWaiting(current);
    }
    // VERIFYING and INSTALLING finish their step first; the pause takes effect when they end.
  }

  private resume(ref: ExecutionRef): void {
    const current = this.currentFor(ref);
    if (current === undefined) return;
    const wasPaused = current.paused;
    current.paused = false;
    if (current.spec.separateInstall) current.installReleased = true;
    switch (current.phase) {
      case 'DOWNLOADING':
        if (wasPaused) {
          this.reportDownload(current, false);
          this.startDownload(current);
        }
        return;
      case 'VERIFIED':
        this.tryInstall(current);
        return;
      case 'INSTALLED':
        this.tryActivate(current);
        return;
      default:
        return;
    }
  }

  private syncResult(message: SyncResult): void {
    if (message.clientToken !== this.state.syncToken) return;
    const listed = message.executions;
    const current = this.state.current;
    if (current !== undefined && !listed.some((e) => same(e, current.spec))) {
      // No longer wanted (canceled or timed out while away): stop as for a forced cancel, report nothing.
      if (current.phase === 'INSTALLING') current.cancelRequested = true;
      else if (current.phase !== 'ACTIVATING') {
        this.abandon(current);
      }
    }
    this.state.queue = this.state.queue.filter((q) => listed.some((e) => same(e, q)));
    for (const entry of listed) {
      const holding = this.state.current;
      if (holding !== undefined && same(holding.spec, entry)) {
        holding.seq = Math.max(holding.seq, entry.lastSeq);
        if (this.missed(holding.lastReport, entry.lastSeq)) this.resend(holding.lastReport);
        if (entry.paused && !holding.paused) this.pause(entry);
        else if (!entry.paused && holding.paused) this.resume(entry);
        continue;
      }
      const finished = this.findFinished(entry);
      if (finished !== undefined) {
        if (this.missed(finished.lastReport, entry.lastSeq)) this.resend(finished.lastReport);
        continue;
      }
      this.notify(entry, entry.lastSeq, entry.paused);
    }
    if (this.state.current === undefined) this.startNext();
  }

  /**
   * A report the backend had not applied when it answered the sync. One made after the sync request may simply be
   * in flight behind it, so it is not resent (that would only make a DUPLICATE at the backend).
   */
  private missed(report: Report | undefined, lastSeq: number): report is Report {
    return report !== undefined && report.seq > lastSeq && report.ts < (this.state.syncAt ?? Number.POSITIVE_INFINITY);
  }

  private invalidNotify(event: { msgId?: string; ref: ExecutionRef; code: string; text: string }): void {
    if (event.msgId !== undefined) {
      const seen = new SeenMessageIds({}, this.state.seen);
      if (!seen.add(event.msgId, this.env.now)) {
        this.persist = false;
        return;
      }
      this.state.seen = seen.snapshot();
    }
    const current = this.state.current;
    if (current !== undefined && same(current.spec, event.ref)) return;
    if (this.findFinished(event.ref) !== undefined) return;
    this.rejectOutright(event.ref, 0, event.code, event.text);
  }

  // ---- adapter events ----

  private adapterEvent(event: Extract<MachineEvent, ExecutionRef>): void {
    const current = this.currentFor(event);
    if (current === undefined) {
      this.persist = false;
      return;
    }
    switch (event.type) {
      case 'downloadProgress': {
        if (current.phase !== 'DOWNLOADING') break;
        const etagChanged = event.etag !== undefined && event.etag !== current.download.etag;
        current.download = { bytesDone: event.bytesDone, etag: event.etag ?? current.download.etag };
        const reported = this.maybeReportProgress(current);
        this.persist = reported || etagChanged;
        return;
      }
      case 'downloadDone':
        if (current.phase !== 'DOWNLOADING') break;
        current.download.bytesDone = event.bytesDone;
        current.phase = 'VERIFYING';
        this.report(current, 'IN_PROGRESS', { step: 'VERIFYING', progress: 0 });
        this.actions.push({ type: 'verify', ...ref(current), manifest: current.spec.manifest.manifest });
        return;
      case 'downloadFailed':
        if (current.phase !== 'DOWNLOADING') break;
        this.actions.push({ type: 'discard' });
        if (event.code === 'OTA_ERR_TOO_LARGE') {
          this.finish(current, 'REJECTED', event);
          return;
        }
        this.finish(current, 'FAILED', { code: event.code, text: event.text });
        return;
      case 'verifyResult':
        if (current.phase !== 'VERIFYING') break;
        if (!event.ok) {
          this.actions.push({ type: 'discard' });
          this.finish(current, 'REJECTED', { code: event.code, text: event.text });
          return;
        }
        current.phase = 'VERIFIED';
        this.tryInstall(current);
        return;
      case 'verifyFailed':
        if (current.phase !== 'VERIFYING') break;
        this.actions.push({ type: 'discard' });
        this.finish(current, 'FAILED', { code: event.code, text: event.text });
        return;
      case 'installResult': {
        if (current.phase !== 'INSTALLING' || current.targetSlot === undefined) break;
        if (current.cancelRequested) {
          this.dropCurrent(current);
          return;
        }
        if (!event.ok) {
          this.actions.push({ type: 'discard', slot: current.targetSlot });
          this.finish(current, 'FAILED', {
            code: 'AGENT_ERR_INSTALL_FAILED',
            text: event.text ?? 'installation failed',
          });
          return;
        }
        current.phase = 'INSTALLED';
        this.tryActivate(current);
        return;
      }
      case 'healthResult': {
        const trial = this.state.slots.trial;
        if (current.phase !== 'ACTIVATING' || trial === undefined || !trial.booted) break;
        this.state.slots.trial = undefined;
        if (event.ok) {
          this.state.slots.active = trial.slot;
          this.state.slots[trial.slot] = { version: current.spec.manifest.manifest.version };
          this.actions.push({ type: 'discard' }, { type: 'presence' });
          this.finish(current, 'SUCCEEDED');
          return;
        }
        this.state.slots[trial.slot] = {};
        this.actions.push({ type: 'discard', slot: trial.slot }, { type: 'presence' });
        this.finish(current, 'ROLLED_BACK', {
          code: 'AGENT_ERR_HEALTH_CHECK',
          text: event.text ?? 'the new version failed its health check',
        });
        return;
      }
    }
    this.persist = false;
  }

  private booted(): void {
    this.state.boots += 1;
    const current = this.state.current;
    if (current === undefined) {
      this.startNext();
      return;
    }
    switch (current.phase) {
      case 'SCHEDULED':
        this.tick();
        return;
      case 'DOWNLOADING':
        if (!current.paused) this.startDownload(current);
        return;
      case 'VERIFYING':
        this.actions.push({ type: 'verify', ...ref(current), manifest: current.spec.manifest.manifest });
        return;
      case 'VERIFIED':
        this.tryInstall(current);
        return;
      case 'INSTALLING':
        if (current.cancelRequested && current.targetSlot !== undefined) {
          this.dropCurrent(current);
          return;
        }
        this.startInstall(current);
        return;
      case 'INSTALLED':
        this.tryActivate(current);
        return;
      case 'ACTIVATING': {
        const trial = this.state.slots.trial;
        if (trial === undefined) return; // cannot happen: phase and trial are written in one journal entry
        if (!trial.booted) {
          trial.booted = true;
          this.actions.push({
            type: 'healthCheck',
            ...ref(current),
            slot: trial.slot,
            manifest: current.spec.manifest.manifest,
          });
          return;
        }
        // The trial boot died before its health check passed: the bootloader falls back to the previous slot.
        this.state.slots.trial = undefined;
        this.state.slots[trial.slot] = {};
        this.actions.push({ type: 'discard', slot: trial.slot }, { type: 'presence' });
        this.finish(current, 'ROLLED_BACK', {
          code: 'AGENT_ERR_TRIAL_BOOT_FAILED',
          text: 'the agent restarted during the health check of the new version',
        });
        return;
      }
    }
  }

  private tick(): void {
    const current = this.state.current;
    if (current === undefined) {
      this.persist = false;
      return;
    }
    if (current.phase === 'SCHEDULED') {
      const notBefore = current.spec.deadlines.notBefore ?? 0;
      if (this.env.now < notBefore) {
        this.persist = false;
        this.actions.push({ type: 'wakeAt', at: notBefore });
        return;
      }
      this.begin(current);
      return;
    }
    if (current.phase === 'VERIFIED' && current.waitingForPreconditionSince !== undefined) {
      this.tryInstall(current);
      return;
    }
    this.persist = false;
  }

  // ---- the steps ----

  private start(spec: JobSpec, seqFloor: number, paused: boolean): void {
    const current: CurrentJob = {
      spec,
      phase: 'SCHEDULED',
      seq: seqFloor,
      paused,
      cancelRequested: false,
      installReleased: false,
      download: { bytesDone: 0 },
    };
    this.state.current = current;
    const verdict = this.verify(spec);
    if (verdict !== undefined) {
      this.finish(current, 'REJECTED', verdict);
      return;
    }
    const notBefore = spec.deadlines.notBefore;
    if (notBefore !== undefined && this.env.now < notBefore) {
      this.actions.push({ type: 'wakeAt', at: notBefore });
      return;
    }
    this.begin(current, true);
  }

  /**
   * Leaves SCHEDULED: the deadline and the manifest are checked again (time has passed), then the download.
   * `justVerified`: the manifest was checked in this very step (no time passed), so the signature is not verified
   * twice; the deadline still is.
   */
  private begin(current: CurrentJob, justVerified = false): void {
    const startBy = current.spec.deadlines.startBy;
    if (startBy !== undefined && this.env.now > startBy) {
      this.finish(current, 'REJECTED', {
        code: 'OTA_ERR_DEADLINE',
        text: `could not start before ${new Date(startBy).toISOString()}`,
      });
      return;
    }
    const verdict = justVerified ? undefined : this.verify(current.spec);
    if (verdict !== undefined) {
      this.finish(current, 'REJECTED', verdict);
      return;
    }
    current.phase = 'DOWNLOADING';
    this.reportDownload(current, current.paused);
    if (!current.paused) this.startDownload(current);
  }

  private verify(spec: JobSpec): { code: string; text: string } | undefined {
    const verdict = verifyManifest(spec.manifest, {
      trustedKeys: this.cfg.trustedKeys,
      verifySignature: this.cfg.verifySignature,
      hardwareId: this.cfg.hardwareId,
      installedVersion: installedVersionOf(this.state.slots),
      now: this.env.now,
      clockSkewMs: this.cfg.clockSkewMs,
    });
    if (!verdict.ok) return { code: verdict.error.code, text: verdict.error.text };
    if (verdict.manifest.url.startsWith('http://') && this.cfg.allowHttp !== true) {
      return { code: 'AGENT_ERR_INSECURE_URL', text: 'the artifact URL is not HTTPS and plain http is not allowed' };
    }
    return undefined;
  }

  private startDownload(current: CurrentJob): void {
    const manifest = current.spec.manifest.manifest;
    this.actions.push({
      type: 'download',
      ...ref(current),
      url: manifest.url,
      size: manifest.size,
      ...(current.download.etag === undefined ? {} : { etag: current.download.etag }),
    });
  }

  private tryInstall(current: CurrentJob): void {
    if (current.paused || (current.spec.separateInstall && !current.installReleased)) {
      this.reportWaiting(current);
      return;
    }
    const refusal = preconditionProblem(current.spec, this.env.vehicle);
    if (refusal !== undefined) {
      const since = current.waitingForPreconditionSince ?? this.env.now;
      const giveUpAt = since + this.cfg.preconditionWaitMs;
      if (this.env.now >= giveUpAt) {
        this.actions.push({ type: 'discard' });
        this.finish(current, 'REJECTED', refusal);
        return;
      }
      if (current.waitingForPreconditionSince === undefined) {
        current.waitingForPreconditionSince = since;
        this.reportWaiting(current);
      } else {
        this.persist = false;
      }
      this.actions.push({ type: 'wakeAt', at: Math.min(giveUpAt, this.env.now + this.cfg.preconditionRecheckMs) });
      return;
    }
    current.waitingForPreconditionSince = undefined;
    current.targetSlot = otherSlot(this.state.slots.active);
    this.startInstall(current);
  }

  private startInstall(current: CurrentJob): void {
    const slot = current.targetSlot ?? otherSlot(this.state.slots.active);
    current.targetSlot = slot;
    if (current.phase !== 'INSTALLING') {
      current.phase = 'INSTALLING';
      this.report(current, 'IN_PROGRESS', { step: 'INSTALLING', progress: 0 });
    }
    this.actions.push({ type: 'install', ...ref(current), slot, manifest: current.spec.manifest.manifest });
  }

  private tryActivate(current: CurrentJob): void {
    if (current.cancelRequested && current.targetSlot !== undefined) {
      this.dropCurrent(current);
      return;
    }
    if (current.paused || current.targetSlot === undefined) {
      this.reportWaiting(current);
      return;
    }
    current.phase = 'ACTIVATING';
    this.state.slots.trial = { slot: current.targetSlot, booted: false };
    this.report(current, 'IN_PROGRESS', { step: 'ACTIVATING', progress: 0 });
    this.actions.push({ type: 'restart', slot: current.targetSlot });
  }

  // ---- reports ----

  private reportDownload(current: CurrentJob, paused: boolean): void {
    const total = current.spec.manifest.manifest.size;
    this.report(current, 'IN_PROGRESS', {
      step: 'DOWNLOADING',
      progress: percent(current.download.bytesDone, total),
      bytesDone: Math.min(current.download.bytesDone, total),
      bytesTotal: total,
      ...(paused ? { paused: true } : {}),
    });
  }

  /** A waiting execution says so once (paused: true) at the step it stopped after. */
  private reportWaiting(current: CurrentJob): void {
    const stepName: Step = current.phase === 'INSTALLED' ? 'INSTALLING' : 'VERIFYING';
    const last = current.lastReport;
    if (last !== undefined && last.paused === true && last.step === stepName) {
      this.persist = false;
      return;
    }
    this.report(current, 'IN_PROGRESS', { step: stepName, progress: 100, paused: true });
  }

  private maybeReportProgress(current: CurrentJob): boolean {
    const last = current.lastReport;
    const total = current.spec.manifest.manifest.size;
    const progress = percent(current.download.bytesDone, total);
    if (last !== undefined && last.step === 'DOWNLOADING') {
      const moved = progress - (last.progress ?? 0);
      if (moved < this.cfg.progressPercentStep || this.env.now - last.at < this.cfg.progressIntervalMs) return false;
    }
    this.reportDownload(current, false);
    return true;
  }

  private report(
    current: CurrentJob,
    status: ReportableStatus,
    fields: Partial<Pick<Report, 'step' | 'progress' | 'bytesDone' | 'bytesTotal' | 'paused' | 'reason'>> & {
      installedVersion?: string;
    } = {},
  ): void {
    current.seq += 1;
    const report: Report = {
      msgId: this.env.newMsgId(),
      ts: this.env.now,
      jobId: current.spec.jobId,
      executionNumber: current.spec.executionNumber,
      seq: current.seq,
      status,
      ...fields,
    };
    current.lastReport = { ...report, at: this.env.now };
    this.actions.push({ type: 'report', report });
  }

  private resend(report: (Report & { at?: number }) | undefined): void {
    if (report === undefined) {
      this.persist = false;
      return;
    }
    const { at: _at, ...body } = report;
    this.actions.push({ type: 'report', report: body });
  }

  // ---- endings ----

  private finish(current: CurrentJob, status: ReportableStatus, reason?: { code: string; text: string }): void {
    const fields: Parameters<Run['report']>[2] = {};
    if (reason !== undefined) fields.reason = { code: reason.code, text: reason.text.slice(0, 1024) };
    if (status === 'SUCCEEDED' || status === 'ROLLED_BACK') {
      const version = installedVersionOf(this.state.slots);
      if (version !== undefined) fields.installedVersion = version;
    }
    this.report(current, status, fields);
    this.remember({
      jobId: current.spec.jobId,
      executionNumber: current.spec.executionNumber,
      lastReport: stripAt(current.lastReport),
    });
    this.state.current = undefined;
    this.startNext();
  }

  /** A job refused before it became current (queue full, unreadable notify): one REJECTED report. */
  private rejectOutright(execution: ExecutionRef, seqFloor: number, code: string, text: string): void {
    const report: Report = {
      msgId: this.env.newMsgId(),
      ts: this.env.now,
      jobId: execution.jobId,
      executionNumber: execution.executionNumber,
      seq: seqFloor + 1,
      status: 'REJECTED',
      reason: { code, text: text.slice(0, 1024) },
    };
    this.remember({ jobId: execution.jobId, executionNumber: execution.executionNumber, lastReport: report });
    this.actions.push({ type: 'report', report });
  }

  /** Stops the execution in hand without a report (canceled, superseded, no longer wanted). */
  private abandon(current: CurrentJob): void {
    if (current.phase === 'DOWNLOADING') this.actions.push({ type: 'stopDownload' });
    const slot = current.phase === 'INSTALLED' || current.phase === 'INSTALLING' ? current.targetSlot : undefined;
    this.actions.push(slot === undefined ? { type: 'discard' } : { type: 'discard', slot });
    this.remember({ jobId: current.spec.jobId, executionNumber: current.spec.executionNumber });
    this.state.current = undefined;
  }

  private dropCurrent(current: CurrentJob): void {
    this.abandon(current);
    this.startNext();
  }

  private startNext(): void {
    if (this.state.current !== undefined) return;
    const next = this.state.queue.shift();
    if (next !== undefined) this.start(next, 0, false);
  }

  private remember(entry: FinishedJob): void {
    const finished = this.state.finished.filter((f) => !same(f, entry));
    finished.push(entry);
    this.state.finished = finished.slice(-this.cfg.finishedMemory);
  }

  private findFinished(execution: ExecutionRef): FinishedJob | undefined {
    return this.state.finished.find((f) => same(f, execution));
  }

  private currentFor(execution: ExecutionRef): CurrentJob | undefined {
    const current = this.state.current;
    return current !== undefined && same(current.spec, execution) ? current : undefined;
  }
}

/** The first unmet precondition as a REJECTED reason, or undefined when the vehicle may install. */
export function preconditionProblem(
  spec: Pick<JobSpec, 'preconditions'>,
  vehicle: VehicleConditions,
): { code: string; text: string } | undefined {
  const wanted = spec.preconditions;
  if (wanted.parked === true && !vehicle.parked) {
    return { code: 'AGENT_ERR_NOT_PARKED', text: 'the vehicle is not parked' };
  }
  if (wanted.minBatteryPercent !== undefined && vehicle.batteryPercent < wanted.minBatteryPercent) {
    return {
      code: 'AGENT_ERR_BATTERY_LOW',
      text: `battery at ${vehicle.batteryPercent}%, at least ${wanted.minBatteryPercent}% required`,
    };
  }
  if (wanted.ownerConsent === true && !vehicle.ownerConsent) {
    return { code: 'AGENT_ERR_NO_OWNER_CONSENT', text: 'the owner has not consented to the installation' };
  }
  return undefined;
}

function same(a: ExecutionRef, b: ExecutionRef): boolean {
  return a.jobId === b.jobId && a.executionNumber === b.executionNumber;
}

function ref(current: CurrentJob): ExecutionRef {
  return { jobId: current.spec.jobId, executionNumber: current.spec.executionNumber };
}

function percent(done: number, total: number): number {
  if (total <= 0) return 100;
  return Math.max(0, Math.min(100, Math.floor((done * 100) / total)));
}

function pickSpec(spec: JobSpec): JobSpec {
  return {
    jobId: spec.jobId,
    executionNumber: spec.executionNumber,
    campaignId: spec.campaignId,
    manifest: spec.manifest,
    deadlines: spec.deadlines,
    separateInstall: spec.separateInstall,
    preconditions: spec.preconditions,
  };
}

function stripAt(report: (Report & { at: number }) | undefined): Report | undefined {
  if (report === undefined) return undefined;
  const { at: _at, ...body } = report;
  return body;
}
