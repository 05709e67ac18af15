// The embedded store: SQLite through better-sqlite3. WAL with synchronous=FULL so a committed batch survives a
// power cut; one transaction per commit() so status ingest pays one fsync per batch, not per message. The SQL
// sticks to what PostgreSQL also accepts (ON CONFLICT upserts, no SQLite-only functions) so the PostgreSQL store
// can reuse the statements; JSON documents hold what no query filters on.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EXECUTION_STATUSES } from '@otalink/ota';
import Database from 'better-sqlite3';
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

/** Schema migrations by user_version: MIGRATIONS[i] takes the database from version i to i + 1. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE vehicles (
    vin TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    region TEXT,
    hardware_id TEXT NOT NULL,
    installed_version TEXT,
    attributes TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    online INTEGER NOT NULL DEFAULT 0,
    last_seen BIGINT,
    inventory TEXT
  );
  CREATE INDEX vehicles_by_model ON vehicles (model, vin);
  CREATE INDEX vehicles_by_region ON vehicles (region, vin);
  CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX artifacts_by_seq ON artifacts (seq);
  CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    active INTEGER NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX campaigns_by_seq ON campaigns (seq);
  CREATE INDEX campaigns_by_state ON campaigns (state);
  CREATE TABLE campaign_transitions (
    id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX campaign_transitions_by_campaign ON campaign_transitions (campaign_id, id);
  CREATE TABLE campaign_targets (
    campaign_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    ord BIGINT NOT NULL,
    model TEXT NOT NULL,
    released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, vin)
  );
  CREATE INDEX campaign_targets_by_ord ON campaign_targets (campaign_id, ord);
  CREATE TABLE executions (
    campaign_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    execution_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    latest INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (campaign_id, vin, execution_number)
  );
  CREATE INDEX executions_latest ON executions (campaign_id, latest, vin);
  CREATE INDEX executions_latest_status ON executions (campaign_id, latest, status, vin);
  CREATE TABLE transitions (
    id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    execution_number INTEGER NOT NULL,
    at BIGINT NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX transitions_by_vehicle ON transitions (campaign_id, vin, id);
  CREATE TABLE seen_messages (
    msg_id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
  );
  CREATE INDEX seen_messages_by_at ON seen_messages (at);
  `,
  `
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    doc TEXT NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteStoreOptions {
  /** A file path, or ':memory:' for tests. */
  path: string;
}

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

type Statement = Database.Statement<unknown[], unknown>;

/** Opens (creating when needed) and migrates a SQLite store. Throws BackendError OTA_ERR_STORE naming the path. */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const path = options.path === ':memory:' ? ':memory:' : resolve(options.path);
  if (path !== ':memory:') {
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new BackendError('OTA_ERR_STORE', `cannot create the directory of ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (e) {
    throw new BackendError('OTA_ERR_STORE', `cannot open the store ${path}: ${(e as Error).message}`, { cause: e });
  }
  return new SqliteStore(db, path);
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`schema version ${current} is newer than this code (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

export class SqliteStore implements BackendStore {
  private readonly s: Record<string, Statement> = {};
  private closed = false;
  private readonly applyBatch: (batch: StoreBatch) => void;

  constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    const prepare = (name: string, sql: string) => {
      this.s[name] = db.prepare(sql);
    };
    prepare(
      'upsertVehicle',
      `INSERT INTO vehicles (vin, model, region, hardware_id, installed_version, attributes, registered_at, updated_at, online, last_seen, inventory)
       VALUES (@vin, @model, @region, @hardware_id, @installed_version, @attributes, @registered_at, @updated_at, @online, @last_seen, @inventory)
       ON CONFLICT (vin) DO UPDATE SET model = excluded.model, region = excluded.region, hardware_id = excluded.hardware_id,
         installed_version = excluded.installed_version, attributes = excluded.attributes, updated_at = excluded.updated_at,
         online = excluded.online, last_seen = excluded.last_seen, inventory = excluded.inventory`,
    );
    prepare(
      'presence',
      `UPDATE vehicles SET online = @online, last_seen = @last_seen,
         inventory = COALESCE(@inventory, inventory), installed_version = COALESCE(@installed_version, installed_version),
         updated_at = @last_seen
       WHERE vin = @vin`,
    );
    prepare(
      'registerFromPresence',
      `INSERT INTO vehicles (vin, model, region, hardware_id, installed_version, attributes, registered_at, updated_at, online, last_seen, inventory)
       VALUES (@vin, @model, NULL, @hardware_id, @installed_version, '{}', @last_seen, @last_seen, @online, @last_seen, @inventory)
       ON CONFLICT (vin) DO NOTHING`,
    );
    prepare('installedVersion', 'UPDATE vehicles SET installed_version = @version, updated_at = @at WHERE vin = @vin');
    prepare('getVehicle', 'SELECT * FROM vehicles WHERE vin = ?');
    prepare('countVehicles', 'SELECT COUNT(*) AS n FROM vehicles');
    prepare(
      'fleetCounts',
      'SELECT COUNT(*) AS vehicles, COALESCE(SUM(online), 0) AS online FROM vehicles WHERE model = ?',
    );
    prepare(
      'fleetVersions',
      `SELECT installed_version AS version, COUNT(*) AS n FROM vehicles
       WHERE model = ? AND installed_version IS NOT NULL GROUP BY installed_version`,
    );
    prepare(
      'putArtifact',
      `INSERT INTO artifacts (sha256, seq, created_at, doc)
       VALUES (@sha256, (SELECT COALESCE(MAX(seq), 0) + 1 FROM artifacts), @created_at, @doc)
       ON CONFLICT (sha256) DO NOTHING`,
    );
    prepare('getArtifact', 'SELECT doc FROM artifacts WHERE sha256 = ?');
    prepare('listArtifacts', 'SELECT doc FROM artifacts ORDER BY seq DESC LIMIT ?');
    prepare(
      'listArtifactsAfter',
      'SELECT doc FROM artifacts WHERE seq < (SELECT seq FROM artifacts WHERE sha256 = ?) ORDER BY seq DESC LIMIT ?',
    );
    prepare(
      'putKey',
      `INSERT INTO signing_keys (key_id, seq, created_at, active, doc)
       VALUES (@key_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), @created_at, @active, @doc)
       ON CONFLICT (key_id) DO UPDATE SET active = excluded.active, doc = excluded.doc`,
    );
    prepare('listKeys', 'SELECT doc FROM signing_keys ORDER BY seq');
    prepare(
      'putCampaign',
      `INSERT INTO campaigns (id, seq, state, created_at, doc)
       VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM campaigns), @state, @created_at, @doc)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, doc = excluded.doc`,
    );
    prepare('getCampaign', 'SELECT doc FROM campaigns WHERE id = ?');
    prepare('listCampaigns', 'SELECT doc FROM campaigns ORDER BY seq DESC LIMIT ?');
    prepare(
      'listCampaignsAfter',
      'SELECT doc FROM campaigns WHERE seq < (SELECT seq FROM campaigns WHERE id = ?) ORDER BY seq DESC LIMIT ?',
    );
    prepare(
      'campaignTransition',
      'INSERT INTO campaign_transitions (campaign_id, at, doc) VALUES (@campaign_id, @at, @doc)',
    );
    prepare('campaignTransitions', 'SELECT doc FROM campaign_transitions WHERE campaign_id = ? ORDER BY id');
    prepare('maxOrd', 'SELECT COALESCE(MAX(ord), 0) AS m FROM campaign_targets WHERE campaign_id = ?');
    prepare(
      'addTarget',
      `INSERT INTO campaign_targets (campaign_id, vin, ord, model, released)
       VALUES (@campaign_id, @vin, @ord, @model, 0)
       ON CONFLICT (campaign_id, vin) DO NOTHING`,
    );
    prepare('release', 'UPDATE campaign_targets SET released = 1 WHERE campaign_id = ? AND vin = ?');
    prepare('listTargets', 'SELECT vin, model, released FROM campaign_targets WHERE campaign_id = ? ORDER BY ord');
    prepare(
      'upsertExecution',
      `INSERT INTO executions (campaign_id, vin, execution_number, status, latest, updated_at, doc)
       VALUES (@campaign_id, @vin, @execution_number, @status, 1, @updated_at, @doc)
       ON CONFLICT (campaign_id, vin, execution_number) DO UPDATE SET status = excluded.status,
         updated_at = excluded.updated_at, doc = excluded.doc`,
    );
    prepare(
      'unlatest',
      `UPDATE executions SET latest = 0
       WHERE campaign_id = @campaign_id AND vin = @vin AND execution_number < @execution_number AND latest = 1`,
    );
    prepare('latestExecutions', 'SELECT doc FROM executions WHERE campaign_id = ? AND latest = 1');
    prepare(
      'listExecutions',
      `SELECT doc FROM executions WHERE campaign_id = @campaign_id AND latest = 1 AND vin > @after
       ORDER BY vin LIMIT @limit`,
    );
    prepare(
      'listExecutionsByStatus',
      `SELECT doc FROM executions WHERE campaign_id = @campaign_id AND latest = 1 AND status = @status AND vin > @after
       ORDER BY vin LIMIT @limit`,
    );
    prepare(
      'executionsOf',
      'SELECT doc FROM executions WHERE campaign_id = ? AND vin = ? ORDER BY execution_number DESC',
    );
    prepare(
      'transition',
      `INSERT INTO transitions (campaign_id, vin, execution_number, at, doc)
       VALUES (@campaign_id, @vin, @execution_number, @at, @doc)`,
    );
    prepare('transitionsOf', 'SELECT doc FROM transitions WHERE campaign_id = ? AND vin = ? ORDER BY id');
    prepare(
      'countByStatus',
      'SELECT status, COUNT(*) AS n FROM executions WHERE campaign_id = ? AND latest = 1 GROUP BY status',
    );
    prepare(
      'countByStatusOfModel',
      `SELECT e.status AS status, COUNT(*) AS n FROM executions e
       JOIN campaign_targets t ON t.campaign_id = e.campaign_id AND t.vin = e.vin
       WHERE e.campaign_id = ? AND e.latest = 1 AND t.model = ? GROUP BY e.status`,
    );
    prepare('seen', 'INSERT INTO seen_messages (msg_id, at) VALUES (?, ?) ON CONFLICT (msg_id) DO NOTHING');
    prepare('hasSeen', 'SELECT 1 AS one FROM seen_messages WHERE msg_id = ?');
    prepare('pruneSeen', 'DELETE FROM seen_messages WHERE at < ?');
    prepare(
      'putToken',
      `INSERT INTO api_tokens (id, seq, created_at, doc)
       VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM api_tokens), @created_at, @doc)
       ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`,
    );
    prepare('getToken', 'SELECT doc FROM api_tokens WHERE id = ?');
    prepare('listTokens', 'SELECT doc FROM api_tokens ORDER BY seq');

    this.applyBatch = db.transaction((batch: StoreBatch) => this.apply(batch));
  }

  private stmt(name: string): Statement {
    const statement = this.s[name];
    if (statement === undefined) throw new Error(`no statement ${name}`);
    return statement;
  }

  private guard<T>(what: string, fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('OTA_ERR_CLOSED', 'the store is closed'));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      if (e instanceof BackendError) return Promise.reject(e);
      return Promise.reject(
        new BackendError('OTA_ERR_STORE', `${what} failed on ${this.path}: ${(e as Error).message}`, { cause: e }),
      );
    }
  }

  commit(batch: StoreBatch): Promise<void> {
    return this.guard('commit', () => this.applyBatch(batch));
  }

  private apply(batch: StoreBatch): void {
    for (const v of batch.vehicles ?? []) this.stmt('upsertVehicle').run(vehicleParams(v));
    for (const p of batch.presence ?? []) {
      const params = {
        vin: p.vin,
        online: p.online ? 1 : 0,
        last_seen: p.lastSeen,
        inventory: p.inventory === undefined ? null : JSON.stringify(p.inventory),
        installed_version: p.inventory?.installedVersion ?? null,
      };
      const changed = this.stmt('presence').run(params).changes;
      if (changed === 0 && p.register !== undefined) {
        this.stmt('registerFromPresence').run({
          ...params,
          model: p.register.model,
          hardware_id: p.register.hardwareId,
        });
      }
    }
    for (const i of batch.installedVersions ?? []) this.stmt('installedVersion').run(i);
    for (const a of batch.artifacts ?? []) {
      this.stmt('putArtifact').run({ sha256: a.sha256, created_at: a.createdAt, doc: JSON.stringify(a) });
    }
    for (const k of batch.signingKeys ?? []) {
      this.stmt('putKey').run({
        key_id: k.keyId,
        created_at: k.createdAt,
        active: k.active ? 1 : 0,
        doc: JSON.stringify(k),
      });
    }
    for (const c of batch.campaigns ?? []) {
      this.stmt('putCampaign').run({
        id: c.id,
        state: c.rollout.state,
        created_at: c.createdAt,
        doc: JSON.stringify(c),
      });
    }
    for (const t of batch.campaignTransitions ?? []) {
      this.stmt('campaignTransition').run({ campaign_id: t.campaignId, at: t.at, doc: JSON.stringify(t) });
    }
    for (const group of batch.targets ?? []) {
      let ord = (this.stmt('maxOrd').get(group.campaignId) as { m: number }).m;
      for (const t of group.targets) {
        this.stmt('addTarget').run({ campaign_id: group.campaignId, vin: t.vin, model: t.model, ord: ++ord });
      }
    }
    for (const group of batch.released ?? []) {
      for (const vin of group.vins) this.stmt('release').run(group.campaignId, vin);
    }
    for (const e of batch.executions ?? []) {
      const params = {
        campaign_id: e.campaignId,
        vin: e.vin,
        execution_number: e.executionNumber,
        status: e.status,
        updated_at: e.updatedAt,
        doc: JSON.stringify(e),
      };
      this.stmt('upsertExecution').run(params);
      if (e.executionNumber > 1) {
        this.stmt('unlatest').run({ campaign_id: e.campaignId, vin: e.vin, execution_number: e.executionNumber });
      }
    }
    for (const t of batch.transitions ?? []) {
      this.stmt('transition').run({
        campaign_id: t.campaignId,
        vin: t.vin,
        execution_number: t.executionNumber,
        at: t.at,
        doc: JSON.stringify(t),
      });
    }
    for (const m of batch.seenMessageIds ?? []) this.stmt('seen').run(m.msgId, m.at);
    for (const t of batch.apiTokens ?? []) {
      this.stmt('putToken').run({ id: t.id, created_at: t.createdAt, doc: JSON.stringify(t) });
    }
  }

  getVehicle(vin: string): Promise<Vehicle | undefined> {
    return this.guard('getVehicle', () => {
      const row = this.stmt('getVehicle').get(vin) as VehicleRow | undefined;
      return row === undefined ? undefined : vehicleOf(row);
    });
  }

  listVehicles(query: KeysetQuery & { model?: string; region?: string }): Promise<Vehicle[]> {
    return this.guard('listVehicles', () => {
      const where: string[] = ['vin > ?'];
      const params: unknown[] = [query.after ?? ''];
      if (query.model !== undefined) {
        where.push('model = ?');
        params.push(query.model);
      }
      if (query.region !== undefined) {
        where.push('region = ?');
        params.push(query.region);
      }
      params.push(query.limit);
      const rows = this.db
        .prepare(`SELECT * FROM vehicles WHERE ${where.join(' AND ')} ORDER BY vin LIMIT ?`)
        .all(...params) as VehicleRow[];
      return rows.map(vehicleOf);
    });
  }

  getVehicles(vins: readonly string[]): Promise<Vehicle[]> {
    return this.guard('getVehicles', () => {
      const out: Vehicle[] = [];
      const CHUNK = 500;
      for (let i = 0; i < vins.length; i += CHUNK) {
        const chunk = vins.slice(i, i + CHUNK);
        const rows = this.db
          .prepare(`SELECT * FROM vehicles WHERE vin IN (${chunk.map(() => '?').join(',')})`)
          .all(...chunk) as VehicleRow[];
        for (const row of rows) out.push(vehicleOf(row));
      }
      return out;
    });
  }

  selectVehicles(selector: Selector): Promise<Vehicle[]> {
    return this.guard('selectVehicles', () => {
      const where: string[] = [];
      const params: unknown[] = [];
      const column = {
        model: 'model',
        region: 'region',
        hardwareId: 'hardware_id',
        installedVersion: 'installed_version',
      };
      for (const [key, name] of Object.entries(column) as [keyof typeof column, string][]) {
        const value = selector[key];
        if (value !== undefined) {
          where.push(`${name} = ?`);
          params.push(value);
        }
      }
      const sql = `SELECT * FROM vehicles${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY vin`;
      const wanted = Object.entries(selector.attributes ?? {});
      const rows = this.db.prepare(sql).all(...params) as VehicleRow[];
      const vehicles = rows.map(vehicleOf);
      // Attributes are a JSON document; filtering them here keeps the SQL portable.
      return wanted.length === 0
        ? vehicles
        : vehicles.filter((v) => wanted.every(([k, value]) => v.attributes[k] === value));
    });
  }

  countVehicles(): Promise<number> {
    return this.guard('countVehicles', () => (this.stmt('countVehicles').get() as { n: number }).n);
  }

  fleetSummary(model: string): Promise<{ vehicles: number; online: number; versions: Record<string, number> }> {
    return this.guard('fleetSummary', () => {
      const counts = this.stmt('fleetCounts').get(model) as { vehicles: number; online: number };
      const versions: Record<string, number> = {};
      for (const row of this.stmt('fleetVersions').all(model) as { version: string; n: number }[]) {
        versions[row.version] = row.n;
      }
      return { vehicles: counts.vehicles, online: counts.online, versions };
    });
  }

  getArtifact(sha256: string): Promise<ArtifactInfo | undefined> {
    return this.guard('getArtifact', () => docOf<ArtifactInfo>(this.stmt('getArtifact').get(sha256)));
  }

  listArtifacts(query: KeysetQuery): Promise<ArtifactInfo[]> {
    return this.guard('listArtifacts', () => {
      const rows =
        query.after === undefined
          ? this.stmt('listArtifacts').all(query.limit)
          : this.stmt('listArtifactsAfter').all(query.after, query.limit);
      return docsOf<ArtifactInfo>(rows);
    });
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.guard('listSigningKeys', () => docsOf<SigningKeyRecord>(this.stmt('listKeys').all()));
  }

  getCampaign(id: string): Promise<StoredCampaign | undefined> {
    return this.guard('getCampaign', () => docOf<StoredCampaign>(this.stmt('getCampaign').get(id)));
  }

  listCampaigns(query: KeysetQuery): Promise<StoredCampaign[]> {
    return this.guard('listCampaigns', () => {
      const rows =
        query.after === undefined
          ? this.stmt('listCampaigns').all(query.limit)
          : this.stmt('listCampaignsAfter').all(query.after, query.limit);
      return docsOf<StoredCampaign>(rows);
    });
  }

  campaignsInStates(states: readonly string[]): Promise<StoredCampaign[]> {
    return this.guard('campaignsInStates', () => {
      if (states.length === 0) return [];
      const rows = this.db
        .prepare(`SELECT doc FROM campaigns WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY seq`)
        .all(...states);
      return docsOf<StoredCampaign>(rows);
    });
  }

  campaignTransitions(campaignId: string): Promise<CampaignTransitionRecord[]> {
    return this.guard('campaignTransitions', () =>
      docsOf<CampaignTransitionRecord>(this.stmt('campaignTransitions').all(campaignId)),
    );
  }

  listTargets(campaignId: string): Promise<TargetRow[]> {
    return this.guard('listTargets', () =>
      (this.stmt('listTargets').all(campaignId) as { vin: string; model: string; released: number }[]).map((r) => ({
        vin: r.vin,
        model: r.model,
        released: r.released === 1,
      })),
    );
  }

  latestExecutions(campaignId: string): Promise<StoredExecution[]> {
    return this.guard('latestExecutions', () => docsOf<StoredExecution>(this.stmt('latestExecutions').all(campaignId)));
  }

  listExecutions(campaignId: string, query: KeysetQuery & { status?: string }): Promise<StoredExecution[]> {
    return this.guard('listExecutions', () => {
      const params = { campaign_id: campaignId, after: query.after ?? '', limit: query.limit };
      const rows =
        query.status === undefined
          ? this.stmt('listExecutions').all(params)
          : this.stmt('listExecutionsByStatus').all({ ...params, status: query.status });
      return docsOf<StoredExecution>(rows);
    });
  }

  executionsOf(campaignId: string, vin: string): Promise<StoredExecution[]> {
    return this.guard('executionsOf', () => docsOf<StoredExecution>(this.stmt('executionsOf').all(campaignId, vin)));
  }

  transitionsOf(campaignId: string, vin: string): Promise<TransitionRecord[]> {
    return this.guard('transitionsOf', () => docsOf<TransitionRecord>(this.stmt('transitionsOf').all(campaignId, vin)));
  }

  countByStatus(campaignId: string, model?: string): Promise<StatusCounts> {
    return this.guard('countByStatus', () => {
      const rows = (
        model === undefined
          ? this.stmt('countByStatus').all(campaignId)
          : this.stmt('countByStatusOfModel').all(campaignId, model)
      ) as { status: string; n: number }[];
      const counts = emptyCounts();
      for (const row of rows) {
        if (row.status in counts) counts[row.status as keyof StatusCounts] = row.n;
      }
      return counts;
    });
  }

  hasSeenMessageId(msgId: string): Promise<boolean> {
    return this.guard('hasSeenMessageId', () => this.stmt('hasSeen').get(msgId) !== undefined);
  }

  pruneSeenMessageIds(before: number): Promise<number> {
    return this.guard('pruneSeenMessageIds', () => this.stmt('pruneSeen').run(before).changes);
  }

  getApiToken(id: string): Promise<ApiTokenRecord | undefined> {
    return this.guard('getApiToken', () => {
      const row = this.stmt('getToken').get(id) as { doc: string } | undefined;
      return row === undefined ? undefined : (JSON.parse(row.doc) as ApiTokenRecord);
    });
  }

  listApiTokens(): Promise<ApiTokenRecord[]> {
    return this.guard('listApiTokens', () =>
      (this.stmt('listTokens').all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as ApiTokenRecord),
    );
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    try {
      this.db.close();
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(new BackendError('OTA_ERR_STORE', `closing ${this.path}: ${(e as Error).message}`));
    }
  }
}

export function emptyCounts(): StatusCounts {
  return Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

function vehicleParams(v: Vehicle): Record<string, unknown> {
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

function docOf<T>(row: unknown): T | undefined {
  return row === undefined ? undefined : (JSON.parse((row as { doc: string }).doc) as T);
}

function docsOf<T>(rows: unknown[]): T[] {
  return rows.map((row) => JSON.parse((row as { doc: string }).doc) as T);
}
