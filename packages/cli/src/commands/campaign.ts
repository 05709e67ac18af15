// `otalink campaign`: create a campaign, drive it (start, pause, resume, cancel), read its status, and watch its
// progress live from the backend's event stream.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type {
  CampaignCreate,
  CampaignView,
  ExecutionView,
  Page,
  StatusCounts,
  TransitionRecord,
} from '@otalink/backend';
import {
  API_OPTIONS,
  API_USAGE,
  type ApiClient,
  ApiError,
  apiClientFrom,
  type CliIo,
  processIo,
  runApiCommand,
} from './api-client.js';
import type { Command } from './command.js';
import { parsePercent, UsageError } from './usage.js';

const USAGE = `Usage: otalink campaign create --name NAME --artifact SHA256 (--vin VIN ... | --vins-file FILE | selector) [options]
       otalink campaign start|pause|resume|cancel ID
       otalink campaign status [ID] [--json]
       otalink campaign watch [ID]
       otalink campaign list [--json]
       otalink campaign executions ID [--status STATUS] [--json]
       otalink campaign history ID VIN [--json]

Create:
  --name NAME                 campaign name
  --artifact SHA256           an uploaded artifact (otalink artifact upload prints it)
  --vin VIN                   a target vehicle; repeat or give a comma list
  --vins-file FILE            target vehicles, one VIN per line
  --model M, --region R, --hardware-id H, --installed-version V, --attribute K=V (repeatable)
                              target the registered vehicles that match all of these instead
  --waves P[:T],...           staged rollout: cumulative percent P, released once T % of the vehicles released so
                              far succeeded (T defaults to 0); e.g. 1:100,10:95,100
  --max-retries N             retry FAILED/TIMED_OUT vehicles up to N times (default 0)
  --abort-failure-percent P   abort when more than P % of the finished vehicles failed ...
  --abort-min-finished N      ... once at least N finished (default 10)
  --from FILE                 a JSON request body (docs/backend-api.md); the flags above override its fields
  --start                     start the campaign right away

Status and watch without an ID: the newest campaign (the one npm start began, on a fresh stack).
Watch: progress bars by execution status, redrawn in place on a terminal, one line per change otherwise. Exits
when the campaign finishes: 0 when COMPLETED, 1 when CANCELED or ABORTED.

Executions: one line per vehicle (its latest attempt): VIN, status, step, progress, reason; --status STATUS keeps
one status (QUEUED, NOTIFIED, IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT, CANCELED, ROLLED_BACK).
History: a vehicle's attempts and every status change, oldest first (the audit trail).

  --json                      print the backend's answer as JSON
${API_USAGE}
  -h, --help      this help`;

const TERMINAL = new Set(['COMPLETED', 'CANCELED', 'ABORTED']);
/** The order bars are drawn in: finished well, under way, waiting, finished badly. */
const STATUS_ORDER: Array<keyof StatusCounts> = [
  'SUCCEEDED',
  'IN_PROGRESS',
  'NOTIFIED',
  'QUEUED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'ROLLED_BACK',
  'CANCELED',
];

export interface CampaignIo extends CliIo {
  /** Aborts `watch` (default: SIGINT). */
  signal?: AbortSignal;
  /** How often `watch` redraws at most (default 100 ms on a terminal, 1 s otherwise). */
  watchIntervalMs?: number;
}

const OPTIONS = {
  ...API_OPTIONS,
  name: { type: 'string' },
  artifact: { type: 'string' },
  vin: { type: 'string', multiple: true },
  'vins-file': { type: 'string' },
  model: { type: 'string' },
  region: { type: 'string' },
  'hardware-id': { type: 'string' },
  'installed-version': { type: 'string' },
  attribute: { type: 'string', multiple: true },
  waves: { type: 'string' },
  'max-retries': { type: 'string' },
  'abort-failure-percent': { type: 'string' },
  'abort-min-finished': { type: 'string' },
  from: { type: 'string' },
  start: { type: 'boolean' },
  status: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function integer(value: string, flag: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new UsageError(`${flag} must be ${min}..${max}, got "${value}"`);
  return n;
}

export function parseWaves(spec: string): Array<{ percent: number; successThreshold: number }> {
  const waves = spec.split(',').map((part) => {
    const [p = '', t = '0', ...more] = part.trim().split(':');
    if (more.length > 0) throw new UsageError(`--waves: "${part}" is not PERCENT[:THRESHOLD]`);
    const wave = {
      percent: parsePercent(p, '--waves percent'),
      successThreshold: parsePercent(t, '--waves threshold'),
    };
    if (wave.percent === 0) throw new UsageError('--waves: a wave releases more than 0 %');
    return wave;
  });
  for (let i = 1; i < waves.length; i++) {
    if ((waves[i]?.percent ?? 0) <= (waves[i - 1]?.percent ?? 0)) {
      throw new UsageError('--waves: percentages are cumulative and must grow');
    }
  }
  if (waves.at(-1)?.percent !== 100) throw new UsageError('--waves: the last wave must be 100');
  return waves;
}

async function createBody(values: Values): Promise<CampaignCreate> {
  let base: Partial<CampaignCreate> = {};
  if (values.from !== undefined) {
    try {
      base = JSON.parse(await readFile(values.from, 'utf8')) as Partial<CampaignCreate>;
    } catch (error) {
      throw new UsageError(`--from ${values.from}: ${(error as Error).message}`);
    }
    if (typeof base !== 'object' || base === null || Array.isArray(base)) {
      throw new UsageError(`--from ${values.from}: not a JSON object`);
    }
  }
  const body: Record<string, unknown> = { ...base };
  if (values.name !== undefined) body.name = values.name;
  if (values.artifact !== undefined) body.artifact = values.artifact;
  if (body.name === undefined) throw new UsageError('--name is required');
  if (body.artifact === undefined) throw new UsageError('--artifact is required');

  const vins = (values.vin ?? []).flatMap((v) => v.split(',')).map((v) => v.trim());
  if (values['vins-file'] !== undefined) {
    let text: string;
    try {
      text = await readFile(values['vins-file'], 'utf8');
    } catch (error) {
      throw new UsageError(`--vins-file ${values['vins-file']}: ${(error as Error).message}`);
    }
    vins.push(...text.split(/\r?\n/).map((line) => line.replace(/#.*/, '').trim()));
  }
  const targetVins = vins.filter((v) => v.length > 0);
  const selector: Record<string, unknown> = {};
  if (values.model !== undefined) selector.model = values.model;
  if (values.region !== undefined) selector.region = values.region;
  if (values['hardware-id'] !== undefined) selector.hardwareId = values['hardware-id'];
  if (values['installed-version'] !== undefined) selector.installedVersion = values['installed-version'];
  if (values.attribute !== undefined) {
    const attributes: Record<string, string> = {};
    for (const pair of values.attribute) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError(`--attribute must be KEY=VALUE, got "${pair}"`);
      attributes[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    selector.attributes = attributes;
  }
  const hasSelector = Object.keys(selector).length > 0;
  if (targetVins.length > 0 && hasSelector) throw new UsageError('give target VINs or a selector, not both');
  if (targetVins.length > 0) body.target = { vins: targetVins };
  else if (hasSelector) body.target = { selector };
  if (body.target === undefined) throw new UsageError('a target is required: --vin, --vins-file or selector flags');

  if (values.waves !== undefined) body.rollout = { kind: 'waves', waves: parseWaves(values.waves) };
  if (values['max-retries'] !== undefined) body.maxRetries = integer(values['max-retries'], '--max-retries', 0, 100);
  if (values['abort-failure-percent'] !== undefined) {
    body.abort = {
      failurePercent: parsePercent(values['abort-failure-percent'], '--abort-failure-percent'),
      minFinished:
        values['abort-min-finished'] === undefined
          ? 10
          : integer(values['abort-min-finished'], '--abort-min-finished', 1, 1_000_000_000),
    };
  } else if (values['abort-min-finished'] !== undefined) {
    throw new UsageError('--abort-min-finished goes with --abort-failure-percent');
  }
  return body as CampaignCreate;
}

// ------------------------------------------------------------------ rendering

function bar(n: number, total: number, width: number): string {
  const filled = total === 0 ? 0 : Math.round((width * n) / total);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

/** The progress block: a header line and one bar per status that has vehicles (SUCCEEDED always). */
export function renderProgress(
  campaign: Pick<CampaignView, 'id' | 'name' | 'state' | 'targets' | 'released' | 'counts'>,
  columns = 80,
): string[] {
  const total = Math.max(campaign.targets, 1);
  const width = Math.max(10, Math.min(40, columns - 32));
  const lines = [
    `${campaign.name} (${campaign.id}): ${campaign.state}, ${campaign.released}/${campaign.targets} released`,
  ];
  for (const status of STATUS_ORDER) {
    const n = campaign.counts[status] ?? 0;
    if (n === 0 && status !== 'SUCCEEDED') continue;
    const pct = `${Math.round((100 * n) / total)}%`.padStart(4);
    lines.push(`  ${status.padEnd(11)} ${bar(n, total, width)} ${String(n).padStart(6)} ${pct}`);
  }
  return lines;
}

/** One line for logs and pipes. */
export function progressLine(campaign: Pick<CampaignView, 'state' | 'targets' | 'released' | 'counts'>): string {
  const parts = STATUS_ORDER.filter((s) => (campaign.counts[s] ?? 0) > 0).map(
    (s) => `${s.toLowerCase()} ${campaign.counts[s]}`,
  );
  return `${campaign.state} ${campaign.counts.SUCCEEDED ?? 0}/${campaign.targets} succeeded, ${campaign.released} released${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
}

async function watch(client: ApiClient, id: string, io: CampaignIo): Promise<number> {
  const tty = io.stdout.isTTY === true;
  const interval = io.watchIntervalMs ?? (tty ? 100 : 1000);
  let view: CampaignView | undefined;
  let drawnLines = 0;
  let lastLine = '';
  let lastDraw = 0;
  let timer: NodeJS.Timeout | undefined;

  const draw = () => {
    timer = undefined;
    if (view === undefined) return;
    lastDraw = Date.now();
    if (tty) {
      const lines = renderProgress(view, io.stdout.columns ?? 80);
      // Back to the start of the block, erase it, draw it again.
      const up = drawnLines > 0 ? `\x1b[${drawnLines}F\x1b[J` : '';
      io.stdout.write(`${up}${lines.join('\n')}\n`);
      drawnLines = lines.length;
    } else {
      const line = progressLine(view);
      if (line !== lastLine) io.stdout.write(`${line}\n`);
      lastLine = line;
    }
  };
  const schedule = (now: boolean) => {
    if (now || Date.now() - lastDraw >= interval) {
      if (timer !== undefined) clearTimeout(timer);
      draw();
    } else {
      timer ??= setTimeout(draw, interval - (Date.now() - lastDraw));
    }
  };

  const controller = new AbortController();
  const onOuterAbort = () => controller.abort();
  io.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // Aborted before this point: the listener above would never fire.
  if (io.signal?.aborted === true) controller.abort();
  let reconnects = 0;
  try {
    while (!controller.signal.aborted) {
      try {
        for await (const { event, data } of client.events(
          `/api/v1/campaigns/${encodeURIComponent(id)}/events`,
          controller.signal,
        )) {
          reconnects = 0;
          const d = data as Partial<CampaignView> & { to?: CampaignView['state'] };
          if (event === 'snapshot') view = data as CampaignView;
          else if (view === undefined) continue;
          else if (event === 'counts') {
            view = {
              ...view,
              state: d.state ?? view.state,
              targets: d.targets ?? view.targets,
              released: d.released ?? view.released,
              counts: d.counts ?? view.counts,
            };
          } else if (event === 'campaign.state' && d.to !== undefined) view = { ...view, state: d.to };
          else continue;
          const finished = TERMINAL.has(view.state);
          schedule(event !== 'counts' || finished);
          if (finished) return view.state === 'COMPLETED' ? 0 : 1;
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        // A refusal (unknown campaign) is final; a dropped connection is retried a few times.
        if (error instanceof ApiError && error.status > 0) throw error;
      }
      if (controller.signal.aborted) break;
      reconnects += 1;
      if (reconnects > 5) throw new Error('the event stream keeps closing; giving up');
      io.stderr.write(`otalink campaign: event stream closed, reconnecting (${reconnects}/5)\n`);
      await new Promise((resolve) => setTimeout(resolve, 1000 * reconnects));
    }
    return 130;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    io.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function executionLine(e: ExecutionView): string {
  const step = e.step === undefined ? '' : ` ${e.step}`;
  const progress = e.progress === undefined ? '' : ` ${e.progress}%`;
  const reason = e.reason === undefined ? '' : `  ${e.reason.code}: ${e.reason.text}`;
  return `${e.vin}  ${e.status}${step}${progress}${reason}`;
}

function printCampaign(io: CliIo, campaign: CampaignView, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify(campaign, null, 2)}\n`);
    return;
  }
  const lines = renderProgress(campaign, io.stdout.columns ?? 80);
  const details = [`  artifact    ${campaign.artifact}`];
  if (campaign.progress.text !== undefined) details.push(`  rollout     ${campaign.progress.text}`);
  io.stdout.write(`${[lines[0], ...details, ...lines.slice(1)].join('\n')}\n`);
}

/** The campaign ID given, or the newest campaign's when none is (the list is newest first). */
async function idOrNewest(client: ApiClient, rest: string[], sub: string): Promise<string> {
  const [id, ...extra] = rest;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (id !== undefined) return id;
  const page = await client.request<Page<CampaignView>>('GET', '/api/v1/campaigns?limit=1');
  const newest = page.items[0];
  if (newest === undefined) throw new UsageError(`${sub}: the backend has no campaign yet (create one first)`);
  return newest.id;
}

export async function runCampaign(args: string[], io: CampaignIo = processIo): Promise<number> {
  return runApiCommand('campaign', io, async () => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
    if (values.help === true) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const [sub, ...rest] = positionals;
    const json = values.json === true;
    const onlyId = () => {
      const [id, ...extra] = rest;
      if (id === undefined) throw new UsageError(`${sub} needs a campaign ID`);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      return encodeURIComponent(id);
    };
    switch (sub) {
      case 'create': {
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
        const body = await createBody(values);
        const client = await apiClientFrom(values, io.env);
        let campaign = await client.request<CampaignView>('POST', '/api/v1/campaigns', { json: body });
        if (values.start === true) {
          campaign = await client.request<CampaignView>(
            'POST',
            `/api/v1/campaigns/${encodeURIComponent(campaign.id)}/start`,
          );
        }
        if (json) io.stdout.write(`${JSON.stringify(campaign, null, 2)}\n`);
        else io.stdout.write(`created campaign ${campaign.id} (${campaign.state})\n`);
        return 0;
      }
      case 'start':
      case 'pause':
      case 'resume':
      case 'cancel': {
        const id = onlyId();
        const client = await apiClientFrom(values, io.env);
        const campaign = await client.request<CampaignView>('POST', `/api/v1/campaigns/${id}/${sub}`);
        if (json) io.stdout.write(`${JSON.stringify(campaign, null, 2)}\n`);
        else io.stdout.write(`campaign ${campaign.id}: ${campaign.state}\n`);
        return 0;
      }
      case 'status': {
        const client = await apiClientFrom(values, io.env);
        const id = encodeURIComponent(await idOrNewest(client, rest, sub));
        printCampaign(io, await client.request<CampaignView>('GET', `/api/v1/campaigns/${id}`), json);
        return 0;
      }
      case 'watch': {
        const client = await apiClientFrom(values, io.env);
        const id = await idOrNewest(client, rest, sub);
        if (io.signal !== undefined) return watch(client, id, io);
        const interrupt = new AbortController();
        const onSigint = () => interrupt.abort();
        process.once('SIGINT', onSigint);
        try {
          return await watch(client, id, { ...io, signal: interrupt.signal });
        } finally {
          process.off('SIGINT', onSigint);
        }
      }
      case 'executions': {
        const id = onlyId();
        const client = await apiClientFrom(values, io.env);
        const items: ExecutionView[] = [];
        let cursor: string | undefined;
        do {
          const query = new URLSearchParams({ limit: '1000' });
          if (values.status !== undefined) query.set('status', values.status);
          if (cursor !== undefined) query.set('cursor', cursor);
          const page = await client.request<Page<ExecutionView>>('GET', `/api/v1/campaigns/${id}/executions?${query}`);
          items.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        if (json) io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        else for (const e of items) io.stdout.write(`${executionLine(e)}\n`);
        return 0;
      }
      case 'history': {
        const [rawId, vin, ...extra] = rest;
        if (rawId === undefined || vin === undefined) throw new UsageError('history needs a campaign ID and a VIN');
        if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
        const client = await apiClientFrom(values, io.env);
        const history = await client.request<{ executions: ExecutionView[]; transitions: TransitionRecord[] }>(
          'GET',
          `/api/v1/campaigns/${encodeURIComponent(rawId)}/executions/${encodeURIComponent(vin)}/history`,
        );
        if (json) {
          io.stdout.write(`${JSON.stringify(history, null, 2)}\n`);
          return 0;
        }
        for (const e of history.executions) io.stdout.write(`${executionLine(e)}  (#${e.executionNumber})\n`);
        for (const t of history.transitions) {
          const from = t.fromStep === undefined ? t.from : `${t.from}/${t.fromStep}`;
          const to = t.toStep === undefined ? t.to : `${t.to}/${t.toStep}`;
          const reason = t.reason === undefined ? '' : `  ${t.reason.code}: ${t.reason.text}`;
          io.stdout.write(
            `  ${new Date(t.at).toISOString()}  #${t.executionNumber}  ${from} -> ${to}  (${t.cause})${reason}\n`,
          );
        }
        return 0;
      }
      case 'list': {
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
        const client = await apiClientFrom(values, io.env);
        const items: CampaignView[] = [];
        let cursor: string | undefined;
        do {
          const query = cursor === undefined ? '' : `?cursor=${encodeURIComponent(cursor)}`;
          const page = await client.request<Page<CampaignView>>('GET', `/api/v1/campaigns${query}`);
          items.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        if (json) io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        else for (const c of items) io.stdout.write(`${c.id}  ${c.name}  ${progressLine(c)}\n`);
        return 0;
      }
      case undefined:
        throw new UsageError(
          'a sub-command is needed: create, start, pause, resume, cancel, status, watch, list, executions or history',
        );
      default:
        throw new UsageError(`unknown sub-command "${sub}"`);
    }
  });
}

export const campaign: Command = {
  run: (args) => runCampaign(args),
};
