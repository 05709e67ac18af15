// The BackendStore over SQL, once for every engine: the statements, what a commit writes and how rows map back.
// An engine (sqlite.ts, postgres.ts) gives a SqlDriver: it runs a statement written with named parameters
// (`@name`, which better-sqlite3 takes as is and the PostgreSQL driver turns into $n) and applies a list of them
// as one transaction. The SQL sticks to what both accept (ON CONFLICT upserts, no engine-only functions); JSON
// documents hold what no query filters on.
import { EXECUTION_STATUSES } from '@otalink/ota';
import {
  type ArtifactInfo,
  BackendError,
  type CampaignTransitionRecord,
  type Selector,
  type StatusCounts,
  type TransitionRecord,
  type Vehicle,
} from '../api.js';
import type {
  ApiTokenRecord,
  BackendStore,
  KeysetQuery,
  SigningKeyRecord,
  StoreBatch,
  StoredCampaign,
  StoredExecution,
  TargetRow,
} from './types.js';

export type SqlValue = string | number | null;
/** A named parameter in the statements below (`@name`); its name is the first group. */
export const SQL_PARAMETER = /@([a-z_][a-z0-9_]*)/g;
export type SqlParams = Readonly<Record<string, SqlValue>>;
/** One statement of a transaction: its SQL (named parameters) and their values. */
export type SqlStep = readonly [sql: string, params: SqlParams];

export interface SqlDriver {
  /** What error messages name: a file path, or a database URL without its password. */
  readonly label: string;
  all<T>(sql: string, params: SqlParams): Promise<T[]>;
  /** Applies every step in order in one transaction: all or nothing. */
  transaction(steps: readonly SqlStep[]): Promise<void>;
  /** Runs one statement outside any batch; resolves with the rows it changed. */
  run(sql: string, params: SqlParams): Promise<number>;
  close(): Promise<void>;
}

/**
 * The batch writes that come by the thousand (a campaign's start, status ingest, a fleet's registration), as one
 * statement of many rows: `head`, then `row` once per row (its parameters numbered), then `tail`. PostgreSQL takes a
 * 500-row INSERT ~5× faster than 500 single ones; SQLite gains too.
 */
interface RowsStatement {
  head: string;
  row: string;
  tail: string;
  /** The column(s) an upsert conflicts on: a batch that repeats a key starts a new statement there (PostgreSQL
   * refuses to update one row twice in one statement; SQLite would, and the later row must win either way). */
  key?: readonly string[];
}

const ROWS = {
  upsertVehicle: {
    head: `INSERT INTO vehicles (vin, model, region, hardware_id, installed_version, attributes, registered_at, updated_at, online, last_seen, inventory)
    VALUES`,
    row: '(@vin, @model, @region, @hardware_id, @installed_version, @attributes, @registered_at, @updated_at, @online, @last_seen, @inventory)',
    tail: `ON CONFLICT (vin) DO UPDATE SET model = excluded.model, region = excluded.region, hardware_id = excluded.hardware_id,
      installed_version = excluded.installed_version, attributes = excluded.attributes, updated_at = excluded.updated_at,
      online = excluded.online, last_seen = excluded.last_seen, inventory = excluded.inventory`,
    key: ['vin'],
  },
  // Appended after the campaign's last target: rollout order is the order given (ord = the campaign's highest + i).
  addTargets: {
    head: `INSERT INTO campaign_targets (campaign_id, vin, ord, model, released)
    SELECT @campaign_id, v.column1, (SELECT COALESCE(MAX(ord), 0) FROM campaign_targets WHERE campaign_id = @campaign_id) + v.column3,
      v.column2, 0
    FROM (VALUES`,
    row: '(@vin, @model, @i)',
    tail: ') AS v WHERE true ON CONFLICT (campaign_id, vin) DO NOTHING',
  },
  upsertExecution: {
    head: 'INSERT INTO executions (campaign_id, vin, execution_number, status, latest, updated_at, doc) VALUES',
    row: '(@campaign_id, @vin, @execution_number, @status, 1, @updated_at, @doc)',
    tail: `ON CONFLICT (campaign_id, vin, execution_number) DO UPDATE SET status = excluded.status,
      updated_at = excluded.updated_at, doc = excluded.doc`,
    key: ['campaign_id', 'vin', 'execution_number'],
  },
  transition: {
    head: 'INSERT INTO transitions (campaign_id, vin, execution_number, at, doc) VALUES',
    row: '(@campaign_id, @vin, @execution_number, @at, @doc)',
    tail: '',
  },
  seen: {
    head: 'INSERT INTO seen_messages (msg_id, at) VALUES',
    row: '(@msg_id, @at)',
    tail: 'ON CONFLICT (msg_id) DO NOTHING',
    key: ['msg_id'],
  },
} as const satisfies Record<string, RowsStatement>;

/** Rows per multi-row statement: far below either engine's limit on parameters per statement. */
const ROWS_PER_STATEMENT = 200;

const SQL = {
  // A vehicle first seen by its presence is registered before the presence update, which then finds it.
  registerFromPresence: `INSERT INTO vehicles (vin, model, region, hardware_id, installed_version, attributes, registered_at, updated_at, online, last_seen, inventory)
    VALUES (@vin, @model, NULL, @hardware_id, @installed_version, '{}', @last_seen, @last_seen, @online, @last_seen, @inventory)
    ON CONFLICT (vin) DO NOTHING`,
  presence: `UPDATE vehicles SET online = @online, last_seen = @last_seen,
      inventory = COALESCE(@inventory, inventory), installed_version = COALESCE(@installed_version, installed_version),
      updated_at = @last_seen
    WHERE vin = @vin`,
  installedVersion: 'UPDATE vehicles SET installed_version = @version, updated_at = @at WHERE vin = @vin',
  getVehicle: 'SELECT * FROM vehicles WHERE vin = @vin',
  countVehicles: 'SELECT COUNT(*) AS n FROM vehicles',
  fleetCounts: 'SELECT COUNT(*) AS vehicles, COALESCE(SUM(online), 0) AS online FROM vehicles WHERE model = @model',
  fleetVersions: `SELECT installed_version AS version, COUNT(*) AS n FROM vehicles
    WHERE model = @model AND installed_version IS NOT NULL GROUP BY installed_version`,
  putArtifact: `INSERT INTO artifacts (sha256, seq, created_at, doc)
    VALUES (@sha256, (SELECT COALESCE(MAX(seq), 0) + 1 FROM artifacts), @created_at, @doc)
    ON CONFLICT (sha256) DO NOTHING`,
  getArtifact: 'SELECT doc FROM artifacts WHERE sha256 = @sha256',
  listArtifacts: 'SELECT doc FROM artifacts ORDER BY seq DESC LIMIT @limit',
  listArtifactsAfter:
    'SELECT doc FROM artifacts WHERE seq < (SELECT seq FROM artifacts WHERE sha256 = @after) ORDER BY seq DESC LIMIT @limit',
  putKey: `INSERT INTO signing_keys (key_id, seq, created_at, active, doc)
    VALUES (@key_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), @created_at, @active, @doc)
    ON CONFLICT (key_id) DO UPDATE SET active = excluded.active, doc = excluded.doc`,
  listKeys: 'SELECT doc FROM signing_keys ORDER BY seq',
  putCampaign: `INSERT INTO campaigns (id, seq, state, created_at, doc)
    VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM campaigns), @state, @created_at, @doc)
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, doc = excluded.doc`,
  getCampaign: 'SELECT doc FROM campaigns WHERE id = @id',
  listCampaigns: 'SELECT doc FROM campaigns ORDER BY seq DESC LIMIT @limit',
  listCampaignsAfter:
    'SELECT doc FROM campaigns WHERE seq < (SELECT seq FROM campaigns WHERE id = @after) ORDER BY seq DESC LIMIT @limit',
  campaignTransition: 'INSERT INTO campaign_transitions (campaign_id, at, doc) VALUES (@campaign_id, @at, @doc)',
  campaignTransitions: 'SELECT doc FROM campaign_transitions WHERE campaign_id = @campaign_id ORDER BY id',
  listTargets: 'SELECT vin, model, released FROM campaign_targets WHERE campaign_id = @campaign_id ORDER BY ord',
  unlatest: `UPDATE executions SET latest = 0
    WHERE campaign_id = @campaign_id AND vin = @vin AND execution_number < @execution_number AND latest = 1`,
  latestExecutions: 'SELECT doc FROM executions WHERE campaign_id = @campaign_id AND latest = 1',
  listExecutions: `SELECT doc FROM executions WHERE campaign_id = @campaign_id AND latest = 1 AND vin > @after
    ORDER BY vin LIMIT @limit`,
  listExecutionsByStatus: `SELECT doc FROM executions WHERE campaign_id = @campaign_id AND latest = 1 AND status = @status
    AND vin > @after ORDER BY vin LIMIT @limit`,
  executionsOf:
    'SELECT doc FROM executions WHERE campaign_id = @campaign_id AND vin = @vin ORDER BY execution_number DESC',
  transitionsOf: 'SELECT doc FROM transitions WHERE campaign_id = @campaign_id AND vin = @vin ORDER BY id',
  countByStatus:
    'SELECT status, COUNT(*) AS n FROM executions WHERE campaign_id = @campaign_id AND latest = 1 GROUP BY status',
  countByStatusOfModel: `SELECT e.status AS status, COUNT(*) AS n FROM executions e
    JOIN campaign_targets t ON t.campaign_id = e.campaign_id AND t.vin = e.vin
    WHERE e.campaign_id = @campaign_id AND e.latest = 1 AND t.model = @model GROUP BY e.status`,
  hasSeen: 'SELECT 1 AS one FROM seen_messages WHERE msg_id = @msg_id',
  pruneSeen: 'DELETE FROM seen_messages WHERE at < @before',
  putToken: `INSERT INTO api_tokens (id, seq, created_at, doc)
    VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM api_tokens), @created_at, @doc)
    ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`,
  getToken: 'SELECT doc FROM api_tokens WHERE id = @id',
  listTokens: 'SELECT doc FROM api_tokens ORDER BY seq',
} as const;

/** Values per IN (...) list: far below either engine's limit on parameters per statement. */
const IN_CHUNK = 500;

interface VehicleRow {
  vin: string;
  model: string;
  region: string | null;
  hardware_id: string;
  installed_version: string | null;
  attributes: string;
  registered_at: number;
  updated_at: number;
  online: number;
  last_seen: number | null;
  inventory: string | null;
}

interface DocRow {
  doc: string;
}

/** The statements one commit runs, in the order of the batch's fields. Throws on a batch that cannot be written. */
export function batchSteps(batch: StoreBatch): SqlStep[] {
  const steps: SqlStep[] = [];
  rows(steps, ROWS.upsertVehicle, (batch.vehicles ?? []).map(vehicleParams));
  for (const p of batch.presence ?? []) {
    const params = {
      vin: p.vin,
      online: p.online ? 1 : 0,
      last_seen: p.lastSeen,
      inventory: p.inventory === undefined ? null : JSON.stringify(p.inventory),
      installed_version: p.inventory?.installedVersion ?? null,
    };
    if (p.register !== undefined) {
      steps.push([
        SQL.registerFromPresence,
        { ...params, model: p.register.model, hardware_id: p.register.hardwareId },
      ]);
    }
    steps.push([SQL.presence, params]);
  }
  for (const i of batch.installedVersions ?? []) steps.push([SQL.installedVersion, i]);
  for (const a of batch.artifacts ?? []) {
    steps.push([SQL.putArtifact, { sha256: a.sha256, created_at: a.createdAt, doc: JSON.stringify(a) }]);
  }
  for (const k of batch.signingKeys ?? []) {
    steps.push([
      SQL.putKey,
      { key_id: k.keyId, created_at: k.createdAt, active: k.active ? 1 : 0, doc: JSON.stringify(k) },
    ]);
  }
  for (const c of batch.campaigns ?? []) {
    steps.push([
      SQL.putCampaign,
      { id: c.id, state: c.rollout.state, created_at: c.createdAt, doc: JSON.stringify(c) },
    ]);
  }
  for (const t of batch.campaignTransitions ?? []) {
    steps.push([SQL.campaignTransition, { campaign_id: t.campaignId, at: t.at, doc: JSON.stringify(t) }]);
  }
  for (const group of batch.targets ?? []) {
    for (let from = 0; from < group.targets.length; from += ROWS_PER_STATEMENT) {
      const chunk = group.targets.slice(from, from + ROWS_PER_STATEMENT);
      const step = rowsStep(
        ROWS.addTargets,
        chunk.map((t, i) => ({ vin: t.vin, model: t.model, i: i + 1 })),
      );
      steps.push([step[0], { ...step[1], campaign_id: group.campaignId }]);
    }
  }
  for (const group of batch.released ?? []) {
    for (let from = 0; from < group.vins.length; from += ROWS_PER_STATEMENT) {
      const { list, params } = inList(group.vins.slice(from, from + ROWS_PER_STATEMENT));
      steps.push([
        `UPDATE campaign_targets SET released = 1 WHERE campaign_id = @campaign_id AND vin IN (${list})`,
        { ...params, campaign_id: group.campaignId },
      ]);
    }
  }
  const executions = batch.executions ?? [];
  rows(
    steps,
    ROWS.upsertExecution,
    executions.map((e) => ({
      campaign_id: e.campaignId,
      vin: e.vin,
      execution_number: e.executionNumber,
      status: e.status,
      updated_at: e.updatedAt,
      doc: JSON.stringify(e),
    })),
  );
  for (const e of executions) {
    if (e.executionNumber > 1) {
      steps.push([SQL.unlatest, { campaign_id: e.campaignId, vin: e.vin, execution_number: e.executionNumber }]);
    }
  }
  rows(
    steps,
    ROWS.transition,
    (batch.transitions ?? []).map((t) => ({
      campaign_id: t.campaignId,
      vin: t.vin,
      execution_number: t.executionNumber,
      at: t.at,
      doc: JSON.stringify(t),
    })),
  );
  rows(
    steps,
    ROWS.seen,
    (batch.seenMessageIds ?? []).map((m) => ({ msg_id: m.msgId, at: m.at })),
  );
  for (const t of batch.apiTokens ?? []) {
    steps.push([SQL.putToken, { id: t.id, created_at: t.createdAt, doc: JSON.stringify(t) }]);
  }
  return steps;
}

/** Appends `all` as multi-row statements: at most ROWS_PER_STATEMENT rows each, a new one where a key repeats. */
function rows(steps: SqlStep[], statement: RowsStatement, all: readonly SqlParams[]): void {
  let chunk: SqlParams[] = [];
  let keys = new Set<string>();
  const keyOf = (p: SqlParams) => (statement.key ?? []).map((k) => String(p[k])).join('\u0000');
  for (const params of all) {
    const key = statement.key === undefined ? undefined : keyOf(params);
    if (chunk.length === ROWS_PER_STATEMENT || (key !== undefined && keys.has(key))) {
      steps.push(rowsStep(statement, chunk));
      chunk = [];
      keys = new Set();
    }
    chunk.push(params);
    if (key !== undefined) keys.add(key);
  }
  if (chunk.length > 0) steps.push(rowsStep(statement, chunk));
}

/** SQL split at its `@name` parameters: `text[0] @names[0] text[1] ... @names[n-1] text[n]`. */
export interface SqlTemplate {
  text: readonly string[];
  names: readonly string[];
}

const PARAMETER_SPLIT = new RegExp(SQL_PARAMETER.source);

export function sqlTemplate(sql: string): SqlTemplate {
  // split() with a capturing group alternates text and parameter names.
  const parts = sql.split(PARAMETER_SPLIT);
  return { text: parts.filter((_, i) => i % 2 === 0), names: parts.filter((_, i) => i % 2 === 1) };
}

const rowTemplates = new Map<string, SqlTemplate>();

/**
 * One multi-row statement: each row's parameters renamed `name_i`. Built by concatenation from the row's template:
 * a regex pass per row cost ~40 % more CPU for a status commit.
 */
function rowsStep(statement: RowsStatement, chunk: readonly SqlParams[]): SqlStep {
  let template = rowTemplates.get(statement.row);
  if (template === undefined) {
    template = sqlTemplate(statement.row);
    rowTemplates.set(statement.row, template);
  }
  const { text, names } = template;
  const params: Record<string, SqlValue> = {};
  let sql = `${statement.head} `;
  for (let i = 0; i < chunk.length; i++) {
    const row = chunk[i] as SqlParams;
    sql += i === 0 ? text[0] : `, ${text[0]}`;
    for (let k = 0; k < names.length; k++) {
      const name = names[k] as string;
      const renamed = `${name}_${i}`;
      params[renamed] = row[name] as SqlValue;
      sql += `@${renamed}${text[k + 1]}`;
    }
  }
  return [`${sql} ${statement.tail}`, params];
}

export class SqlStore implements BackendStore {
  private closed = false;

  constructor(private readonly driver: SqlDriver) {}

  /** Runs fn unless closed; any failure that is not already a BackendError becomes OTA_ERR_STORE naming the store. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new BackendError('OTA_ERR_CLOSED', 'the store is closed');
    try {
      return await fn();
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError('OTA_ERR_STORE', `${what} failed on ${this.driver.label}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  private docs<T>(what: string, sql: string, params: SqlParams = {}): Promise<T[]> {
    return this.guard(what, async () =>
      (await this.driver.all<DocRow>(sql, params)).map((row) => JSON.parse(row.doc) as T),
    );
  }

  private async doc<T>(what: string, sql: string, params: SqlParams): Promise<T | undefined> {
    return (await this.docs<T>(what, sql, params))[0];
  }

  commit(batch: StoreBatch): Promise<void> {
    return this.guard('commit', () => this.driver.transaction(batchSteps(batch)));
  }

  getVehicle(vin: string): Promise<Vehicle | undefined> {
    return this.guard('getVehicle', async () => {
      const row = (await this.driver.all<VehicleRow>(SQL.getVehicle, { vin }))[0];
      return row === undefined ? undefined : vehicleOf(row);
    });
  }

  listVehicles(query: KeysetQuery & { model?: string; region?: string }): Promise<Vehicle[]> {
    return this.guard('listVehicles', async () => {
      const where = ['vin > @after'];
      const params: Record<string, SqlValue> = { after: query.after ?? '', limit: query.limit };
      if (query.model !== undefined) {
        where.push('model = @model');
        params.model = query.model;
      }
      if (query.region !== undefined) {
        where.push('region = @region');
        params.region = query.region;
      }
      const sql = `SELECT * FROM vehicles WHERE ${where.join(' AND ')} ORDER BY vin LIMIT @limit`;
      return (await this.driver.all<VehicleRow>(sql, params)).map(vehicleOf);
    });
  }

  getVehicles(vins: readonly string[]): Promise<Vehicle[]> {
    return this.guard('getVehicles', async () => {
      const out: Vehicle[] = [];
      for (let i = 0; i < vins.length; i += IN_CHUNK) {
        const { list, params } = inList(vins.slice(i, i + IN_CHUNK));
        for (const row of await this.driver.all<VehicleRow>(`SELECT * FROM vehicles WHERE vin IN (${list})`, params)) {
          out.push(vehicleOf(row));
        }
      }
      return out;
    });
  }

  selectVehicles(selector: Selector): Promise<Vehicle[]> {
    return this.guard('selectVehicles', async () => {
      const where: string[] = [];
      const params: Record<string, SqlValue> = {};
      const column = {
        model: 'model',
        region: 'region',
        hardwareId: 'hardware_id',
        installedVersion: 'installed_version',
      };
      for (const [key, name] of Object.entries(column) as [keyof typeof column, string][]) {
        const value = selector[key];
        if (value !== undefined) {
          where.push(`${name} = @${name}`);
          params[name] = value;
        }
      }
      const sql = `SELECT * FROM vehicles${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY vin`;
      const vehicles = (await this.driver.all<VehicleRow>(sql, params)).map(vehicleOf);
      // Attributes are a JSON document; filtering them here keeps the SQL portable.
      const wanted = Object.entries(selector.attributes ?? {});
      return wanted.length === 0
        ? vehicles
        : vehicles.filter((v) => wanted.every(([k, value]) => v.attributes[k] === value));
    });
  }

  countVehicles(): Promise<number> {
    return this.guard(
      'countVehicles',
      async () => (await this.driver.all<{ n: number }>(SQL.countVehicles, {}))[0]?.n ?? 0,
    );
  }

  fleetSummary(model: string): Promise<{ vehicles: number; online: number; versions: Record<string, number> }> {
    return this.guard('fleetSummary', async () => {
      const counts = (await this.driver.all<{ vehicles: number; online: number }>(SQL.fleetCounts, { model }))[0];
      const versions: Record<string, number> = {};
      for (const row of await this.driver.all<{ version: string; n: number }>(SQL.fleetVersions, { model })) {
        versions[row.version] = row.n;
      }
      return { vehicles: counts?.vehicles ?? 0, online: counts?.online ?? 0, versions };
    });
  }

  getArtifact(sha256: string): Promise<ArtifactInfo | undefined> {
    return this.doc<ArtifactInfo>('getArtifact', SQL.getArtifact, { sha256 });
  }

  listArtifacts(query: KeysetQuery): Promise<ArtifactInfo[]> {
    return query.after === undefined
      ? this.docs<ArtifactInfo>('listArtifacts', SQL.listArtifacts, { limit: query.limit })
      : this.docs<ArtifactInfo>('listArtifacts', SQL.listArtifactsAfter, { after: query.after, limit: query.limit });
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.docs<SigningKeyRecord>('listSigningKeys', SQL.listKeys);
  }

  getCampaign(id: string): Promise<StoredCampaign | undefined> {
    return this.doc<StoredCampaign>('getCampaign', SQL.getCampaign, { id });
  }

  listCampaigns(query: KeysetQuery): Promise<StoredCampaign[]> {
    return query.after === undefined
      ? this.docs<StoredCampaign>('listCampaigns', SQL.listCampaigns, { limit: query.limit })
      : this.docs<StoredCampaign>('listCampaigns', SQL.listCampaignsAfter, { after: query.after, limit: query.limit });
  }

  async campaignsInStates(states: readonly string[]): Promise<StoredCampaign[]> {
    if (states.length === 0) return this.guard('campaignsInStates', async () => []);
    const { list, params } = inList(states);
    return this.docs<StoredCampaign>(
      'campaignsInStates',
      `SELECT doc FROM campaigns WHERE state IN (${list}) ORDER BY seq`,
      params,
    );
  }

  campaignTransitions(campaignId: string): Promise<CampaignTransitionRecord[]> {
    return this.docs<CampaignTransitionRecord>('campaignTransitions', SQL.campaignTransitions, {
      campaign_id: campaignId,
    });
  }

  listTargets(campaignId: string): Promise<TargetRow[]> {
    return this.guard('listTargets', async () =>
      (
        await this.driver.all<{ vin: string; model: string; released: number }>(SQL.listTargets, {
          campaign_id: campaignId,
        })
      ).map((r) => ({ vin: r.vin, model: r.model, released: r.released === 1 })),
    );
  }

  latestExecutions(campaignId: string): Promise<StoredExecution[]> {
    return this.docs<StoredExecution>('latestExecutions', SQL.latestExecutions, { campaign_id: campaignId });
  }

  listExecutions(campaignId: string, query: KeysetQuery & { status?: string }): Promise<StoredExecution[]> {
    const params = { campaign_id: campaignId, after: query.after ?? '', limit: query.limit };
    return query.status === undefined
      ? this.docs<StoredExecution>('listExecutions', SQL.listExecutions, params)
      : this.docs<StoredExecution>('listExecutions', SQL.listExecutionsByStatus, { ...params, status: query.status });
  }

  executionsOf(campaignId: string, vin: string): Promise<StoredExecution[]> {
    return this.docs<StoredExecution>('executionsOf', SQL.executionsOf, { campaign_id: campaignId, vin });
  }

  transitionsOf(campaignId: string, vin: string): Promise<TransitionRecord[]> {
    return this.docs<TransitionRecord>('transitionsOf', SQL.transitionsOf, { campaign_id: campaignId, vin });
  }

  countByStatus(campaignId: string, model?: string): Promise<StatusCounts> {
    return this.guard('countByStatus', async () => {
      const rows =
        model === undefined
          ? await this.driver.all<{ status: string; n: number }>(SQL.countByStatus, { campaign_id: campaignId })
          : await this.driver.all<{ status: string; n: number }>(SQL.countByStatusOfModel, {
              campaign_id: campaignId,
              model,
            });
      const counts = emptyCounts();
      for (const row of rows) {
        if (row.status in counts) counts[row.status as keyof StatusCounts] = row.n;
      }
      return counts;
    });
  }

  hasSeenMessageId(msgId: string): Promise<boolean> {
    return this.guard(
      'hasSeenMessageId',
      async () => (await this.driver.all(SQL.hasSeen, { msg_id: msgId })).length > 0,
    );
  }

  pruneSeenMessageIds(before: number): Promise<number> {
    return this.guard('pruneSeenMessageIds', () => this.driver.run(SQL.pruneSeen, { before }));
  }

  getApiToken(id: string): Promise<ApiTokenRecord | undefined> {
    return this.doc<ApiTokenRecord>('getApiToken', SQL.getToken, { id });
  }

  listApiTokens(): Promise<ApiTokenRecord[]> {
    return this.docs<ApiTokenRecord>('listApiTokens', SQL.listTokens);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.driver.close();
    } catch (e) {
      throw new BackendError('OTA_ERR_STORE', `closing ${this.driver.label}: ${(e as Error).message}`, { cause: e });
    }
  }
}

export function emptyCounts(): StatusCounts {
  return Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

/** `@p0, @p1, ...` and their values, for an IN (...) list. */
function inList(values: readonly string[]): { list: string; params: Record<string, SqlValue> } {
  const params: Record<string, SqlValue> = {};
  const names: string[] = [];
  values.forEach((value, i) => {
    params[`p${i}`] = value;
    names.push(`@p${i}`);
  });
  return { list: names.join(', '), params };
}

function vehicleParams(v: Vehicle): SqlParams {
  return {
    vin: v.vin,
    model: v.model,
    region: v.region ?? null,
    hardware_id: v.hardwareId,
    installed_version: v.installedVersion ?? null,
    attributes: JSON.stringify(v.attributes),
    registered_at: v.registeredAt,
    updated_at: v.updatedAt,
    online: v.online ? 1 : 0,
    last_seen: v.lastSeen ?? null,
    inventory: v.inventory === undefined ? null : JSON.stringify(v.inventory),
  };
}

function vehicleOf(row: VehicleRow): Vehicle {
  const v: Vehicle = {
    vin: row.vin,
    model: row.model,
    hardwareId: row.hardware_id,
    attributes: JSON.parse(row.attributes) as Record<string, string>,
    registeredAt: row.registered_at,
    updatedAt: row.updated_at,
    online: row.online === 1,
  };
  if (row.region !== null) v.region = row.region;
  if (row.installed_version !== null) v.installedVersion = row.installed_version;
  if (row.last_seen !== null) v.lastSeen = row.last_seen;
  if (row.inventory !== null) v.inventory = JSON.parse(row.inventory) as Vehicle['inventory'];
  return v;
}
