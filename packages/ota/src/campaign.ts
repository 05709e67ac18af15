// The campaign state machine and the rollout arithmetic (after AWS IoT Jobs' exponential rollout and abort config,
// and hawkBit's rollout groups with success thresholds), as pure functions over counts the store provides.
import { OtaError } from './errors.js';
import type { CampaignStateName } from './messages.js';

export type CampaignState = CampaignStateName;

export interface Wave {
  /** Cumulative share of the targets released once this wave starts, 1..100; the last wave is 100. */
  percent: number;
  /** Share of the vehicles released so far that must have SUCCEEDED before the next wave starts, 0..100. */
  successThreshold: number;
}

export type RolloutPolicy =
  | { kind: 'waves'; waves: readonly Wave[] }
  | {
      kind: 'exponential';
      /** Vehicles started in the first minute. */
      basePerMinute: number;
      /** The rate is multiplied by this (> 1) ... */
      growthFactor: number;
      /** ... each time this many more vehicles have succeeded. */
      growAfterSuccesses: number;
      /** Upper bound on the rate; default unbounded. */
      maxPerMinute?: number;
    };

export interface AbortRule {
  /** Abort when more than this share of the finished vehicles failed, 0..100 ... */
  failurePercent: number;
  /** ... once at least this many vehicles have finished. */
  minFinished: number;
}

export interface CampaignPlan {
  rollout: RolloutPolicy;
  abort?: AbortRule;
  /** FAILED / TIMED_OUT executions are retried with a new executionNumber up to this many times per vehicle. */
  maxRetries: number;
  /** Wait this long after a failure before the retry; default 0. */
  retryDelayMs?: number;
}

export interface Campaign {
  id: string;
  state: CampaignState;
  plan: CampaignPlan;
  scheduledAt?: number;
  startedAt?: number;
  finishedAt?: number;
  /** Waves: index of the wave being released. */
  wave: number;
  /** Exponential: the minute (since startedAt) that startedInWindow counts. */
  window: number;
  startedInWindow: number;
}

export type CampaignEvent =
  | { type: 'schedule'; at: number }
  | { type: 'start' }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'cancel' }
  | { type: 'abort'; reason?: string }
  | { type: 'complete' };

export interface CampaignTransition {
  campaignId: string;
  from: CampaignState;
  to: CampaignState;
  at: number;
  cause: CampaignEvent['type'];
  reason?: string;
}

export type CampaignUpdate =
  | { applied: true; campaign: Campaign; transition: CampaignTransition }
  | { applied: false; campaign: Campaign; refused: 'NOT_ALLOWED' | 'TERMINAL'; text: string };

const TERMINAL: ReadonlySet<CampaignState> = new Set<CampaignState>(['COMPLETED', 'CANCELED', 'ABORTED']);

/** Which states each event leaves from, and where it goes. */
export const CAMPAIGN_TRANSITIONS: Readonly<
  Record<CampaignEvent['type'], { from: readonly CampaignState[]; to: CampaignState }>
> = {
  schedule: { from: ['DRAFT'], to: 'SCHEDULED' },
  start: { from: ['DRAFT', 'SCHEDULED'], to: 'RUNNING' },
  pause: { from: ['RUNNING'], to: 'PAUSED' },
  resume: { from: ['PAUSED'], to: 'RUNNING' },
  cancel: { from: ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED'], to: 'CANCELED' },
  abort: { from: ['RUNNING', 'PAUSED'], to: 'ABORTED' },
  complete: { from: ['RUNNING'], to: 'COMPLETED' },
};

export function isCampaignTerminal(state: CampaignState): boolean {
  return TERMINAL.has(state);
}

/** A new campaign in DRAFT. Throws OTA_ERR_INVALID_POLICY for an inconsistent plan. */
export function createCampaign(id: string, plan: CampaignPlan): Campaign {
  const problem = planProblem(plan);
  if (problem !== undefined) throw new OtaError('OTA_ERR_INVALID_POLICY', problem);
  return { id, state: 'DRAFT', plan, wave: 0, window: 0, startedInWindow: 0 };
}

/** Why the plan cannot be run, or undefined. */
export function planProblem(plan: CampaignPlan): string | undefined {
  if (!Number.isInteger(plan.maxRetries) || plan.maxRetries < 0) return 'maxRetries must be an integer >= 0';
  if (plan.retryDelayMs !== undefined && !(plan.retryDelayMs >= 0)) return 'retryDelayMs must be >= 0';
  if (plan.abort !== undefined) {
    const { failurePercent, minFinished } = plan.abort;
    if (!(failurePercent >= 0 && failurePercent <= 100)) return 'abort.failurePercent must be within 0..100';
    if (!Number.isInteger(minFinished) || minFinished < 1) return 'abort.minFinished must be an integer >= 1';
  }
  const rollout = plan.rollout;
  if (rollout.kind === 'waves') {
    if (rollout.waves.length === 0) return 'waves: at least one wave';
    let previous = 0;
    for (const [i, wave] of rollout.waves.entries()) {
      if (!(wave.percent > previous && wave.percent <= 100)) {
        return `waves[${i}].percent must be above the previous wave's and at most 100 (percentages are cumulative)`;
      }
      if (!(wave.successThreshold >= 0 && wave.successThreshold <= 100)) {
        return `waves[${i}].successThreshold must be within 0..100`;
      }
      previous = wave.percent;
    }
    if (previous !== 100) return 'the last wave must reach 100 percent';
    return undefined;
  }
  if (rollout.kind === 'exponential') {
    if (!Number.isInteger(rollout.basePerMinute) || rollout.basePerMinute < 1) return 'basePerMinute must be >= 1';
    if (!(rollout.growthFactor >= 1)) return 'growthFactor must be >= 1';
    if (!Number.isInteger(rollout.growAfterSuccesses) || rollout.growAfterSuccesses < 1) {
      return 'growAfterSuccesses must be an integer >= 1';
    }
    if (rollout.maxPerMinute !== undefined && !(rollout.maxPerMinute >= rollout.basePerMinute)) {
      return 'maxPerMinute must be >= basePerMinute';
    }
    return undefined;
  }
  return 'unknown rollout kind';
}

export function applyCampaignEvent(campaign: Campaign, event: CampaignEvent, now: number): CampaignUpdate {
  const rule = CAMPAIGN_TRANSITIONS[event.type];
  if (!rule.from.includes(campaign.state)) {
    return {
      applied: false,
      campaign,
      refused: isCampaignTerminal(campaign.state) ? 'TERMINAL' : 'NOT_ALLOWED',
      text: `${event.type} is not possible in ${campaign.state}`,
    };
  }
  const next: Campaign = { ...campaign, state: rule.to };
  if (event.type === 'schedule') next.scheduledAt = event.at;
  if (event.type === 'start') next.startedAt = now;
  if (isCampaignTerminal(rule.to)) next.finishedAt = now;
  const transition: CampaignTransition = {
    campaignId: campaign.id,
    from: campaign.state,
    to: rule.to,
    at: now,
    cause: event.type,
  };
  if (event.type === 'abort' && event.reason !== undefined) transition.reason = event.reason;
  return { applied: true, campaign: next, transition };
}

/** A SCHEDULED campaign whose time has come: the caller applies `start`. */
export function isDueToStart(campaign: Campaign, now: number): boolean {
  return campaign.state === 'SCHEDULED' && campaign.scheduledAt !== undefined && campaign.scheduledAt <= now;
}

/** Counts per vehicle (by its latest execution), from the store. */
export interface RolloutCounts {
  /** Vehicles the campaign targets. */
  targets: number;
  /** Latest execution SUCCEEDED. */
  succeeded: number;
  /** Latest execution REJECTED or ROLLED_BACK: failed for good, not retried. */
  failed: number;
  /** Latest execution QUEUED, NOTIFIED or IN_PROGRESS. */
  active: number;
  /** Vehicles not released yet, in rollout order. */
  pendingVins: readonly string[];
  /** Latest execution FAILED or TIMED_OUT: retried while attempts remain, failed for good after. */
  retryCandidates: readonly { vin: string; executionNumber: number; finishedAt: number }[];
}

export type BatchDecision =
  /** The campaign is not RUNNING: start nothing. */
  | 'idle'
  /** Start what is listed (maybe nothing) and plan again on the next outcome or at wakeAt. */
  | 'continue'
  /** A wave's success threshold is not met and nothing is in flight: only an operator can move it on. */
  | 'blocked'
  /** The abort rule fired: apply `abort` and cancel the active executions. */
  | 'abort'
  /** Every vehicle finished: apply `complete`. */
  | 'complete';

export interface Batch {
  decision: BatchDecision;
  /** The campaign with its rollout bookkeeping advanced (wave index, rate window); store it. */
  campaign: Campaign;
  /** Vehicles to give their first execution now. */
  start: string[];
  /** Vehicles to give their next execution now, with its number. */
  retry: { vin: string; executionNumber: number }[];
  /** Plan again at this time even if no outcome arrives (rate window, retry delay). */
  wakeAt?: number;
  /** Why, for logs and the UI. */
  text: string;
}

const MINUTE = 60_000;

/** Which vehicles to start now, given the counts and the rollout policy. Pure: same inputs, same batch. */
export function planNextBatch(campaign: Campaign, counts: RolloutCounts, now: number): Batch {
  const plan = campaign.plan;
  if (campaign.state !== 'RUNNING') {
    return { decision: 'idle', campaign, start: [], retry: [], text: `campaign is ${campaign.state}` };
  }
  const maxExecutionNumber = 1 + plan.maxRetries;
  const exhausted = counts.retryCandidates.filter((c) => c.executionNumber >= maxExecutionNumber);
  const retriable = counts.retryCandidates.filter((c) => c.executionNumber < maxExecutionNumber);
  const finalFailed = counts.failed + exhausted.length;
  const finished = counts.succeeded + finalFailed;

  if (plan.abort !== undefined && finished >= plan.abort.minFinished) {
    const failurePercent = (finalFailed * 100) / finished;
    if (failurePercent > plan.abort.failurePercent) {
      return {
        decision: 'abort',
        campaign,
        start: [],
        retry: [],
        text: `${finalFailed} of ${finished} finished vehicles failed (${failurePercent.toFixed(1)} % > ${plan.abort.failurePercent} %)`,
      };
    }
  }

  const retryDelay = plan.retryDelayMs ?? 0;
  const dueRetries = retriable.filter((c) => c.finishedAt + retryDelay <= now);
  const laterRetries = retriable.filter((c) => c.finishedAt + retryDelay > now);
  const retryWake =
    laterRetries.length > 0 ? Math.min(...laterRetries.map((c) => c.finishedAt + retryDelay)) : undefined;

  if (counts.pendingVins.length === 0 && counts.active === 0 && retriable.length === 0) {
    return {
      decision: 'complete',
      campaign,
      start: [],
      retry: [],
      text: `${counts.succeeded} succeeded, ${finalFailed} failed`,
    };
  }

  const released = counts.targets - counts.pendingVins.length;
  const toRetry = (list: typeof dueRetries) =>
    list.map((c) => ({ vin: c.vin, executionNumber: c.executionNumber + 1 }));

  if (plan.rollout.kind === 'waves') {
    const waves = plan.rollout.waves;
    let wave = Math.min(campaign.wave, waves.length - 1);
    // Advance past every wave that is fully released and whose success threshold is met.
    while (wave < waves.length - 1) {
      const current = waves[wave] as Wave;
      if (released < waveSize(counts.targets, current.percent)) break;
      if (counts.succeeded * 100 < current.successThreshold * released) break;
      wave++;
    }
    const allowed = waveSize(counts.targets, (waves[wave] as Wave).percent);
    const start = counts.pendingVins.slice(0, Math.max(0, allowed - released));
    const next = wave === campaign.wave ? campaign : { ...campaign, wave };
    const stuck =
      start.length === 0 &&
      dueRetries.length === 0 &&
      counts.active === 0 &&
      retriable.length === 0 &&
      counts.pendingVins.length > 0;
    if (stuck) {
      const threshold = (waves[wave] as Wave).successThreshold;
      return {
        decision: 'blocked',
        campaign: next,
        start: [],
        retry: [],
        text: `wave ${wave + 1}: ${counts.succeeded} of ${released} succeeded, the next wave needs ${threshold} %`,
      };
    }
    return withWake(
      {
        decision: 'continue',
        campaign: next,
        start,
        retry: toRetry(dueRetries),
        text: `wave ${wave + 1} of ${waves.length}`,
      },
      retryWake,
    );
  }

  const { basePerMinute, growthFactor, growAfterSuccesses, maxPerMinute } = plan.rollout;
  const startedAt = campaign.startedAt ?? now;
  const window = Math.max(0, Math.floor((now - startedAt) / MINUTE));
  const usedInWindow = window === campaign.window ? campaign.startedInWindow : 0;
  const grown = basePerMinute * growthFactor ** Math.floor(counts.succeeded / growAfterSuccesses);
  const rate = Math.max(1, Math.floor(Math.min(grown, maxPerMinute ?? Number.POSITIVE_INFINITY)));
  let available = Math.max(0, rate - usedInWindow);
  // Retries first: those vehicles have waited longest.
  const retries = dueRetries.slice(0, available);
  available -= retries.length;
  const start = counts.pendingVins.slice(0, available);
  const used = usedInWindow + retries.length + start.length;
  const next: Campaign = { ...campaign, window, startedInWindow: used };
  const moreWaiting = counts.pendingVins.length > start.length || dueRetries.length > retries.length;
  const windowWake = moreWaiting && used >= rate ? startedAt + (window + 1) * MINUTE : undefined;
  const wake = [windowWake, retryWake].filter((t): t is number => t !== undefined);
  return withWake(
    { decision: 'continue', campaign: next, start, retry: toRetry(retries), text: `rate ${rate} per minute` },
    wake.length > 0 ? Math.min(...wake) : undefined,
  );
}

/** Vehicles released once a wave of `percent` (cumulative) has started; at least one. */
export function waveSize(targets: number, percent: number): number {
  if (targets === 0) return 0;
  return Math.max(1, Math.min(targets, Math.ceil((targets * percent) / 100 - 1e-9)));
}

function withWake(batch: Batch, wakeAt: number | undefined): Batch {
  return wakeAt === undefined ? batch : { ...batch, wakeAt };
}
