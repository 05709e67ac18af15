// What the agent remembers across restarts: the slots, the execution in hand, recently finished executions and
// the commands already acted on. Plain JSON so the journal can write it atomically; the machine never mutates it.
import type { JobNotify, JobStatus, SeenMessageIdsSnapshot, SignedManifest, Step } from '@otalink/ota';

export type SlotName = 'A' | 'B';

export interface SlotsState {
  /** The slot the vehicle boots from when nothing is on trial. */
  active: SlotName;
  A: { version?: string };
  B: { version?: string };
  /**
   * Set while a new slot is on trial: the restart boots `slot`; `booted` becomes true once the agent has come up
   * from it, so a second start with `booted` already true means the trial boot died before its health check passed.
   */
  trial?: { slot: SlotName; booted: boolean };
}

/** What a job.notify or a sync.result entry tells the vehicle to run. */
export type JobSpec = Pick<
  JobNotify,
  'jobId' | 'executionNumber' | 'campaignId' | 'manifest' | 'deadlines' | 'separateInstall' | 'preconditions'
>;

/**
 * Where the execution stands. SCHEDULED: waiting for deadlines.notBefore. DOWNLOADING, VERIFYING, INSTALLING:
 * the adapter is working. VERIFIED: downloaded and verified, waiting to install (separateInstall, pause or a
 * precondition). INSTALLED: in the inactive slot, waiting to activate (pause). ACTIVATING: restarting into the new
 * slot and checking its health.
 */
export type Phase = 'SCHEDULED' | 'DOWNLOADING' | 'VERIFYING' | 'VERIFIED' | 'INSTALLING' | 'INSTALLED' | 'ACTIVATING';

/** The body of a job.status without the envelope; `msgId` is kept so that a resend is the same message. */
export type Report = Omit<JobStatus, 'v' | 'type'>;

export interface CurrentJob {
  spec: JobSpec;
  phase: Phase;
  /** Last seq used for this execution (0 before the first report). */
  seq: number;
  /** Paused by the backend (job.pause, or paused in sync.result). */
  paused: boolean;
  /** A forced job.cancel arrived while something could not stop at once (an installation). */
  cancelRequested: boolean;
  /** The slot the new version goes into: the inactive one at the time the job started installing. */
  targetSlot?: SlotName;
  /** job.resume released a separateInstall job to install. */
  installReleased: boolean;
  /** Since when a precondition has been unmet (for the wait limit). */
  waitingForPreconditionSince?: number;
  /** Bytes on disk and the ETag they came with, for Range/If-Range resume. */
  download: { bytesDone: number; etag?: string };
  /** The latest report sent, resent as is when the backend re-notifies. */
  lastReport?: Report & { at: number };
}

export interface FinishedJob {
  jobId: string;
  executionNumber: number;
  /** Absent for a canceled execution, which the vehicle does not report. */
  lastReport?: Report;
}

export interface AgentState {
  /** Journal format version. */
  format: 1;
  slots: SlotsState;
  current?: CurrentJob;
  /** Jobs that arrived while another one was running, in order. */
  queue: JobSpec[];
  /** The latest finished executions, newest last, to answer re-notifies with the outcome again. */
  finished: FinishedJob[];
  seen: SeenMessageIdsSnapshot;
  /** Counts agent starts, so sync client tokens are unique across restarts. */
  boots: number;
  /** The clientToken of the latest sync request: only its answer is acted on. */
  syncToken?: string;
  /** When that request was made: only reports older than it can have been missed by its answer. */
  syncAt?: number;
}

export function initialState(installedVersion: string | undefined): AgentState {
  return {
    format: 1,
    slots: { active: 'A', A: installedVersion === undefined ? {} : { version: installedVersion }, B: {} },
    queue: [],
    finished: [],
    seen: { entries: [] },
    boots: 0,
  };
}

export function installedVersionOf(slots: SlotsState): string | undefined {
  return slots[slots.active].version;
}

export function otherSlot(slot: SlotName): SlotName {
  return slot === 'A' ? 'B' : 'A';
}

export type { SignedManifest, Step };
