// The backend's view of one job execution on one vehicle, as pure functions: (execution, event, now) in, the next
// execution and the transition to record out. Timers are data (nextDeadline); the caller owns the clock and the store.
import type { ExecutionStatus, JobStatus, Step } from './messages.js';

export const TERMINAL_STATUSES: ReadonlySet<ExecutionStatus> = new Set<ExecutionStatus>([
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'CANCELED',
  'ROLLED_BACK',
]);

const VEHICLE_REPORTABLE: ReadonlySet<string> = new Set([
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'ROLLED_BACK',
]);

/** FAILED and TIMED_OUT may be retried with a new executionNumber; REJECTED and ROLLED_BACK would fail again. */
export const RETRYABLE_STATUSES: ReadonlySet<ExecutionStatus> = new Set<ExecutionStatus>(['FAILED', 'TIMED_OUT']);

export function isTerminal(status: ExecutionStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export interface Execution {
  jobId: string;
  executionNumber: number;
  vin: string;
  campaignId: string;
  status: ExecutionStatus;
  /** The IN_PROGRESS step last reported. */
  step?: Step;
  progress?: number;
  bytesDone?: number;
  bytesTotal?: number;
  /** Paused by the backend (job.pause sent, job.resume not yet). Timers do not run while paused. */
  paused: boolean;
  /** The vehicle reported it is waiting (pause, separate install, precondition); the step timer does not run. */
  waiting: boolean;
  reason?: { code: string; text: string };
  installedVersion?: string;
  /** Highest seq applied; 0 before the first status. */
  lastSeq: number;
  queuedAt: number;
  notifiedAt?: number;
  lastNotifiedAt?: number;
  notifyCount: number;
  startedAt?: number;
  /** Last applied status report (re-arms the step timer). */
  lastReportAt?: number;
  pausedAt?: number;
  /** Paused time since start, excluded from the in-progress timeout. */
  pausedTotalMs: number;
  finishedAt?: number;
}

export type TransitionCause =
  | 'notify'
  | 'renotify'
  | 'vehicle-status'
  | 'cancel'
  | 'pause'
  | 'resume'
  | 'start-timeout'
  | 'step-timeout'
  | 'in-progress-timeout';

/** One audit-trail entry (UNECE R156: what was updated on which vehicle, and the result). */
export interface Transition {
  jobId: string;
  executionNumber: number;
  vin: string;
  from: ExecutionStatus;
  to: ExecutionStatus;
  fromStep?: Step;
  toStep?: Step;
  at: number;
  cause: TransitionCause;
  /** The status report's seq when the vehicle caused it. */
  seq?: number;
  reason?: { code: string; text: string };
}

export type IgnoredCode =
  /** Status for another job or execution number (an older attempt, say). */
  | 'WRONG_EXECUTION'
  /** seq equal to the last applied: a QoS 1 redelivery. */
  | 'DUPLICATE'
  /** seq below the last applied: overtaken by a newer report (shared subscriptions do not keep order). */
  | 'OUT_OF_ORDER'
  /** The execution already ended; terminal states are final. */
  | 'TERMINAL'
  /** A vehicle may not report QUEUED, NOTIFIED, TIMED_OUT or CANCELED. */
  | 'NOT_REPORTABLE'
  /** Status for an execution the backend has not released to the vehicle yet. */
  | 'NOT_NOTIFIED'
  /** IN_PROGRESS without a step. */
  | 'MISSING_STEP'
  /** The event does not apply in the current state. */
  | 'NOT_ALLOWED'
  /** Cancel of an IN_PROGRESS execution without force. */
  | 'NEEDS_FORCE'
  /** No deadline has passed. */
  | 'NOT_DUE';

export type ExecutionUpdate =
  | { applied: true; execution: Execution; transition?: Transition }
  | { applied: false; execution: Execution; ignored: IgnoredCode; text: string };

/** What applyStatus reads from a job.status message; `status` is wider so refusals can be expressed. */
export type StatusReport = Pick<JobStatus, 'jobId' | 'executionNumber' | 'seq'> &
  Partial<
    Pick<JobStatus, 'step' | 'progress' | 'bytesDone' | 'bytesTotal' | 'paused' | 'reason' | 'installedVersion'>
  > & {
    status: ExecutionStatus;
  };

export function createExecution(
  fields: { jobId: string; executionNumber: number; vin: string; campaignId: string },
  now: number,
): Execution {
  return {
    ...fields,
    status: 'QUEUED',
    paused: false,
    waiting: false,
    lastSeq: 0,
    queuedAt: now,
    notifyCount: 0,
    pausedTotalMs: 0,
  };
}

/** The next attempt after FAILED or TIMED_OUT, or undefined when the status is not retryable. */
export function retryExecution(previous: Execution, now: number): Execution | undefined {
  if (!RETRYABLE_STATUSES.has(previous.status)) return undefined;
  return createExecution(
    {
      jobId: previous.jobId,
      executionNumber: previous.executionNumber + 1,
      vin: previous.vin,
      campaignId: previous.campaignId,
    },
    now,
  );
}

/** Applies a vehicle's job.status. Duplicates, stale reports and forbidden transitions are ignored with a reason. */
export function applyStatus(execution: Execution, report: StatusReport, now: number): ExecutionUpdate {
  if (report.jobId !== execution.jobId || report.executionNumber !== execution.executionNumber) {
    return ignore(
      execution,
      'WRONG_EXECUTION',
      `status for ${report.jobId}#${report.executionNumber}, execution is ${execution.jobId}#${execution.executionNumber}`,
    );
  }
  if (report.seq === execution.lastSeq) return ignore(execution, 'DUPLICATE', `seq ${report.seq} already applied`);
  if (report.seq < execution.lastSeq) {
    return ignore(execution, 'OUT_OF_ORDER', `seq ${report.seq} is below the last applied ${execution.lastSeq}`);
  }
  if (isTerminal(execution.status)) {
    return ignore(execution, 'TERMINAL', `execution already ${execution.status}; ${report.status} ignored`);
  }
  if (!VEHICLE_REPORTABLE.has(report.status)) {
    return ignore(execution, 'NOT_REPORTABLE', `a vehicle cannot report ${report.status}`);
  }
  if (execution.status === 'QUEUED') {
    return ignore(execution, 'NOT_NOTIFIED', 'the execution has not been released to the vehicle');
  }
  if (report.status === 'IN_PROGRESS' && report.step === undefined) {
    return ignore(execution, 'MISSING_STEP', 'IN_PROGRESS needs a step');
  }

  const next: Execution = {
    ...execution,
    status: report.status,
    lastSeq: report.seq,
    lastReportAt: now,
    waiting: report.status === 'IN_PROGRESS' && report.paused === true,
  };
  if (report.status === 'IN_PROGRESS') {
    next.step = report.step;
    if (execution.startedAt === undefined) {
      next.startedAt = now;
      // The in-progress timeout counts from the start; pauses before it only delayed the start deadline.
      next.pausedTotalMs = 0;
    }
  } else {
    // Reaching an outcome straight from NOTIFIED is fine: earlier reports may still be on their way.
    next.finishedAt = now;
    if (report.reason !== undefined) next.reason = report.reason;
    if (report.installedVersion !== undefined) next.installedVersion = report.installedVersion;
  }
  if (report.progress !== undefined) next.progress = report.progress;
  if (report.bytesDone !== undefined) next.bytesDone = report.bytesDone;
  if (report.bytesTotal !== undefined) next.bytesTotal = report.bytesTotal;

  if (next.status === execution.status && next.step === execution.step) {
    return { applied: true, execution: next };
  }
  const transition = transitionOf(execution, next, now, 'vehicle-status');
  transition.seq = report.seq;
  if (report.reason !== undefined && next.status !== 'IN_PROGRESS') transition.reason = report.reason;
  return { applied: true, execution: next, transition };
}

/** Sends (QUEUED → NOTIFIED) or re-sends (NOTIFIED, counted) the job.notify. */
export function notify(execution: Execution, now: number): ExecutionUpdate {
  if (execution.status === 'QUEUED') {
    const next = { ...execution, status: 'NOTIFIED' as const, notifiedAt: now, lastNotifiedAt: now, notifyCount: 1 };
    return { applied: true, execution: next, transition: transitionOf(execution, next, now, 'notify') };
  }
  if (execution.status === 'NOTIFIED') {
    const next = { ...execution, lastNotifiedAt: now, notifyCount: execution.notifyCount + 1 };
    return { applied: true, execution: next, transition: transitionOf(execution, next, now, 'renotify') };
  }
  return ignore(
    execution,
    isTerminal(execution.status) ? 'TERMINAL' : 'NOT_ALLOWED',
    `cannot notify ${execution.status}`,
  );
}

/**
 * Cancels. QUEUED and NOTIFIED always; IN_PROGRESS only with force. The caller sends job.cancel when the vehicle
 * knew about the execution (transition.from is NOTIFIED or IN_PROGRESS).
 */
export function cancel(execution: Execution, options: { force: boolean }, now: number): ExecutionUpdate {
  if (isTerminal(execution.status)) return ignore(execution, 'TERMINAL', `execution already ${execution.status}`);
  if (execution.status === 'IN_PROGRESS' && !options.force) {
    return ignore(execution, 'NEEDS_FORCE', 'an execution in progress is canceled only with force');
  }
  const next: Execution = { ...execution, status: 'CANCELED', finishedAt: now };
  return { applied: true, execution: next, transition: transitionOf(execution, next, now, 'cancel') };
}

/** Backend-side pause (the caller sends job.pause). Timers stop until resume. */
export function pause(execution: Execution, now: number): ExecutionUpdate {
  if (execution.status !== 'NOTIFIED' && execution.status !== 'IN_PROGRESS') {
    return ignore(
      execution,
      isTerminal(execution.status) ? 'TERMINAL' : 'NOT_ALLOWED',
      `cannot pause ${execution.status}`,
    );
  }
  if (execution.paused) return ignore(execution, 'NOT_ALLOWED', 'already paused');
  const next = { ...execution, paused: true, pausedAt: now };
  return { applied: true, execution: next, transition: transitionOf(execution, next, now, 'pause') };
}

/** Backend-side resume (the caller sends job.resume). Re-arms the step timer from now. */
export function resume(execution: Execution, now: number): ExecutionUpdate {
  if (!execution.paused || isTerminal(execution.status)) {
    return ignore(execution, isTerminal(execution.status) ? 'TERMINAL' : 'NOT_ALLOWED', 'not paused');
  }
  const pausedFor = execution.pausedAt === undefined ? 0 : Math.max(0, now - execution.pausedAt);
  const next: Execution = { ...execution, paused: false, pausedTotalMs: execution.pausedTotalMs + pausedFor };
  delete next.pausedAt;
  if (next.status === 'IN_PROGRESS') next.lastReportAt = now;
  if (next.status === 'NOTIFIED') next.lastNotifiedAt = now;
  return { applied: true, execution: next, transition: transitionOf(execution, next, now, 'resume') };
}

/** NOTIFIED or IN_PROGRESS → TIMED_OUT. */
export function timeout(
  execution: Execution,
  cause: 'start-timeout' | 'step-timeout' | 'in-progress-timeout',
  now: number,
): ExecutionUpdate {
  if (execution.status !== 'NOTIFIED' && execution.status !== 'IN_PROGRESS') {
    return ignore(
      execution,
      isTerminal(execution.status) ? 'TERMINAL' : 'NOT_ALLOWED',
      `cannot time out ${execution.status}`,
    );
  }
  const next: Execution = {
    ...execution,
    status: 'TIMED_OUT',
    finishedAt: now,
    reason: { code: 'OTA_ERR_TIMED_OUT', text: cause },
  };
  return { applied: true, execution: next, transition: transitionOf(execution, next, now, cause) };
}

export interface TimerPolicy {
  /** First re-notify this long after the notify without a start. */
  renotifyAfterMs: number;
  /** Each further re-notify waits this factor longer (>= 1). */
  renotifyBackoff: number;
  /** Cap on the re-notify interval. */
  maxRenotifyIntervalMs: number;
  /** NOTIFIED this long without a start → TIMED_OUT; undefined (the default) waits forever, for vehicles offline for weeks. */
  startTimeoutMs?: number;
  /** No status report for this long while IN_PROGRESS → TIMED_OUT; each report re-arms it. */
  stepTimeoutMs: number;
  /** IN_PROGRESS for this long in total (paused time excluded) → TIMED_OUT. */
  inProgressTimeoutMs: number;
}

export const DEFAULT_TIMER_POLICY: TimerPolicy = {
  renotifyAfterMs: 60_000,
  renotifyBackoff: 2,
  maxRenotifyIntervalMs: 60 * 60_000,
  stepTimeoutMs: 10 * 60_000,
  inProgressTimeoutMs: 6 * 60 * 60_000,
};

export interface Deadline {
  at: number;
  action: 'renotify' | 'timeout';
  cause: 'renotify' | 'start-timeout' | 'step-timeout' | 'in-progress-timeout';
}

/** The earliest pending timer of this execution, or undefined when none runs (QUEUED, paused, terminal). */
export function nextDeadline(execution: Execution, policy: TimerPolicy): Deadline | undefined {
  if (execution.paused) return undefined;
  const candidates: Deadline[] = [];
  if (execution.status === 'NOTIFIED') {
    const interval = Math.min(
      policy.maxRenotifyIntervalMs,
      policy.renotifyAfterMs * policy.renotifyBackoff ** Math.max(0, execution.notifyCount - 1),
    );
    const last = execution.lastNotifiedAt ?? execution.notifiedAt ?? execution.queuedAt;
    if (policy.startTimeoutMs !== undefined) {
      const notifiedAt = execution.notifiedAt ?? execution.queuedAt;
      candidates.push({
        at: notifiedAt + execution.pausedTotalMs + policy.startTimeoutMs,
        action: 'timeout',
        cause: 'start-timeout',
      });
    }
    candidates.push({ at: last + interval, action: 'renotify', cause: 'renotify' });
  } else if (execution.status === 'IN_PROGRESS') {
    const startedAt = execution.startedAt ?? execution.lastReportAt ?? execution.queuedAt;
    candidates.push({
      at: startedAt + execution.pausedTotalMs + policy.inProgressTimeoutMs,
      action: 'timeout',
      cause: 'in-progress-timeout',
    });
    if (!execution.waiting) {
      candidates.push({
        at: (execution.lastReportAt ?? startedAt) + policy.stepTimeoutMs,
        action: 'timeout',
        cause: 'step-timeout',
      });
    }
  }
  // Timeouts first on a tie: a re-notify at the moment the start deadline passes would be wasted.
  candidates.sort((a, b) => a.at - b.at || (a.action === 'timeout' ? -1 : 1) - (b.action === 'timeout' ? -1 : 1));
  return candidates[0];
}

/** Acts on the earliest deadline if it has passed: re-notify or time out. */
export function fireDeadline(execution: Execution, policy: TimerPolicy, now: number): ExecutionUpdate {
  const deadline = nextDeadline(execution, policy);
  if (deadline === undefined || deadline.at > now) return ignore(execution, 'NOT_DUE', 'no deadline has passed');
  if (deadline.action === 'renotify') return notify(execution, now);
  return timeout(execution, deadline.cause as 'start-timeout' | 'step-timeout' | 'in-progress-timeout', now);
}

function transitionOf(from: Execution, to: Execution, at: number, cause: TransitionCause): Transition {
  const transition: Transition = {
    jobId: from.jobId,
    executionNumber: from.executionNumber,
    vin: from.vin,
    from: from.status,
    to: to.status,
    at,
    cause,
  };
  if (from.step !== undefined) transition.fromStep = from.step;
  if (to.step !== undefined && to.status === 'IN_PROGRESS') transition.toStep = to.step;
  return transition;
}

function ignore(execution: Execution, ignored: IgnoredCode, text: string): ExecutionUpdate {
  return { applied: false, execution, ignored, text };
}
