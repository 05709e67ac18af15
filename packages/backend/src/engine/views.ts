// Conversions from what the engine and the store hold to what the REST layer returns.
import type { CampaignView, ExecutionView, StatusCounts } from '../api.js';
import type { StoredCampaign, StoredExecution } from '../store/types.js';

export function executionView(e: StoredExecution): ExecutionView {
  const view: ExecutionView = {
    campaignId: e.campaignId,
    jobId: e.jobId,
    vin: e.vin,
    executionNumber: e.executionNumber,
    status: e.status,
    lastSeq: e.lastSeq,
    paused: e.paused,
    waiting: e.waiting,
    notifyCount: e.notifyCount,
    queuedAt: e.queuedAt,
    updatedAt: e.updatedAt,
  };
  if (e.step !== undefined) view.step = e.step;
  if (e.progress !== undefined) view.progress = e.progress;
  if (e.bytesDone !== undefined) view.bytesDone = e.bytesDone;
  if (e.bytesTotal !== undefined) view.bytesTotal = e.bytesTotal;
  if (e.reason !== undefined) view.reason = e.reason;
  if (e.installedVersion !== undefined) view.installedVersion = e.installedVersion;
  if (e.startedAt !== undefined) view.startedAt = e.startedAt;
  if (e.finishedAt !== undefined) view.finishedAt = e.finishedAt;
  return view;
}

export function campaignView(c: StoredCampaign, counts: StatusCounts): CampaignView {
  const spec = c.spec;
  const rollout = c.rollout;
  const view: CampaignView = {
    id: c.id,
    name: c.name,
    jobId: c.jobId,
    artifact: spec.artifact,
    target: spec.target,
    rollout: rollout.plan.rollout as CampaignView['rollout'],
    maxRetries: rollout.plan.maxRetries,
    timers: { ...c.timers },
    preconditions: spec.preconditions ?? {},
    separateInstall: spec.separateInstall ?? false,
    allowDowngrade: spec.allowDowngrade ?? false,
    manifestTtlMs: spec.manifestTtlMs ?? DEFAULT_MANIFEST_TTL_MS,
    state: rollout.state,
    createdAt: c.createdAt,
    targets: c.targets,
    released: c.released,
    counts,
    progress: {},
  };
  if (rollout.plan.abort !== undefined) view.abort = rollout.plan.abort;
  if (rollout.plan.retryDelayMs !== undefined) view.retryDelayMs = rollout.plan.retryDelayMs;
  if (spec.notBefore !== undefined) view.notBefore = spec.notBefore;
  if (spec.startBy !== undefined) view.startBy = spec.startBy;
  if (rollout.startedAt !== undefined) view.startedAt = rollout.startedAt;
  if (rollout.finishedAt !== undefined) view.finishedAt = rollout.finishedAt;
  const policy = rollout.plan.rollout;
  if (policy.kind === 'waves') {
    view.progress.wave = rollout.wave;
    view.progress.waves = policy.waves.length;
  } else {
    // The same arithmetic as planNextBatch: the rate grows with the successes.
    const grown =
      policy.basePerMinute * policy.growthFactor ** Math.floor(counts.SUCCEEDED / policy.growAfterSuccesses);
    view.progress.ratePerMinute = Math.max(
      1,
      Math.floor(Math.min(grown, policy.maxPerMinute ?? Number.POSITIVE_INFINITY)),
    );
  }
  if (c.decision !== undefined) view.progress.decision = c.decision;
  if (c.decisionText !== undefined) view.progress.text = c.decisionText;
  if (c.manifest !== undefined) {
    view.manifestExpiresAt = c.manifest.manifest.expiresAt;
    view.keyId = c.manifest.manifest.keyId;
  }
  return view;
}

export const DEFAULT_MANIFEST_TTL_MS = 30 * 24 * 60 * 60_000;
