// The campaign `otalink up` starts by itself, so that a first-time user watches a staged rollout on the dashboard
// without typing anything: the sample artifact to the whole simulated fleet at a rate that grows as vehicles
// succeed, capped so that the rollout lasts a minute or two rather than seconds (time to open the dashboard and see
// it move). Created once per data directory: on a later run the fleet already has the version, so the existing
// campaign is reported instead.
import type { ArtifactInfo, Backend, CampaignView } from '@otalink/backend';
import type { Logger } from 'pino';

export const SAMPLE_CAMPAIGN_NAME = 'sample rollout (otalink up)';

/**
 * AWS IoT Jobs' exponential rollout: 10 vehicles in the first minute, twice the rate for every 10 that succeed,
 * at most 50 a minute (100 vehicles: about a minute and a quarter).
 */
export const SAMPLE_ROLLOUT = {
  kind: 'exponential',
  basePerMinute: 10,
  growthFactor: 2,
  growAfterSuccesses: 10,
  maxPerMinute: 50,
} as const;

const TERMINAL = new Set(['COMPLETED', 'CANCELED', 'ABORTED']);

export function isFinished(campaign: CampaignView): boolean {
  return TERMINAL.has(campaign.state);
}

async function findByName(backend: Backend, name: string): Promise<CampaignView | undefined> {
  let cursor: string | undefined;
  // Bounded: pages of 1000 until the API has no next page.
  for (let page = 0; page < 10_000; page++) {
    const result = await backend.service.listCampaigns({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    const found = result.items.find((c) => c.name === name);
    if (found !== undefined) return found;
    cursor = result.nextCursor;
    if (cursor === undefined) return undefined;
  }
  return undefined;
}

/** Starts the sample campaign for these vehicles, or returns the one an earlier run started (`created` false). */
export async function ensureSampleCampaign(
  backend: Backend,
  artifact: ArtifactInfo,
  vins: readonly string[],
): Promise<{ campaign: CampaignView; created: boolean }> {
  const existing = await findByName(backend, SAMPLE_CAMPAIGN_NAME);
  if (existing !== undefined) {
    // A run stopped before the start leaves a DRAFT behind: start it now.
    const campaign = existing.state === 'DRAFT' ? await backend.service.startCampaign(existing.id) : existing;
    return { campaign, created: false };
  }
  const draft = await backend.service.createCampaign({
    name: SAMPLE_CAMPAIGN_NAME,
    artifact: artifact.sha256,
    target: { vins: [...vins] },
    rollout: { ...SAMPLE_ROLLOUT },
    // A rollout that goes wrong stops itself: more than 20 % failed once 10 vehicles have finished.
    abort: { failurePercent: 20, minFinished: 10 },
    maxRetries: 1,
  });
  return { campaign: await backend.service.startCampaign(draft.id), created: true };
}

/** One line: state, wave or rate, and the vehicles by status, e.g. `RUNNING 40/min: SUCCEEDED 12, IN_PROGRESS 28`. */
export function describeProgress(campaign: CampaignView): string {
  const counts = Object.entries(campaign.counts)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${status} ${n}`)
    .join(', ');
  let where = '';
  if (!isFinished(campaign)) {
    const { wave, ratePerMinute } = campaign.progress;
    if (campaign.rollout.kind === 'waves' && wave !== undefined)
      where = ` wave ${wave + 1}/${campaign.rollout.waves.length}`;
    else if (ratePerMinute !== undefined) where = ` ${ratePerMinute}/min`;
  }
  return `${campaign.state}${where}${counts === '' ? '' : `: ${counts}`}`;
}

/**
 * Calls `report` with a progress line whenever the campaign changed (at most every `intervalMs`) and once more when
 * it finishes. Returns a function that stops watching.
 */
export function watchCampaign(
  backend: Backend,
  campaignId: string,
  report: (line: string, campaign: CampaignView) => void,
  logger: Logger,
  intervalMs = 2000,
): () => void {
  let stopped = false;
  let last = '';
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    timer = undefined;
    if (stopped) return;
    try {
      const campaign = await backend.service.getCampaign(campaignId);
      if (stopped) return;
      const line = describeProgress(campaign);
      if (line !== last) report(line, campaign);
      last = line;
      if (isFinished(campaign)) return;
    } catch (err) {
      // Closing (Ctrl-C during a poll) ends the watch; anything else is logged and tried again at the next tick.
      if (stopped) return;
      logger.warn({ err, campaignId }, 'sample campaign: could not read its progress');
    }
    timer = setTimeout(tick, intervalMs);
  };
  timer = setTimeout(tick, 0);
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
