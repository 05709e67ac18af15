// The embedded store: SQLite through better-sqlite3. WAL with synchronous=FULL so a committed batch survives a
// power cut; one transaction per commit() so status ingest pays one fsync per batch, not per message. The
// statements and the mapping of rows are SqlStore's (sql-store.ts), shared with the PostgreSQL store.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { BackendError } from '../api.js';
import { type SqlDriver, type SqlParams, type SqlStep, SqlStore } from './sql-store.js';

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

/** Opens (creating when needed) and migrates a SQLite store. Throws BackendError OTA_ERR_STORE naming the path. */
export function openSqliteStore(options: SqliteStoreOptions): SqlStore {
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
  return new SqlStore(new SqliteDriver(db, path));
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

type Statement = Database.Statement<unknown[], unknown>;

/** better-sqlite3 is synchronous: each call runs to completion, so a transaction cannot interleave with another. */
class SqliteDriver implements SqlDriver {
  /** Prepared once per SQL text; the dynamic queries (IN lists, filters) have few shapes. */
  private readonly statements = new Map<string, Statement>();
  private readonly applySteps: (steps: readonly SqlStep[]) => void;

  constructor(
    private readonly db: Database.Database,
    readonly label: string,
  ) {
    this.applySteps = db.transaction((steps: readonly SqlStep[]) => {
      for (const [sql, params] of steps) this.statement(sql).run(params);
    });
  }

  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  all<T>(sql: string, params: SqlParams): Promise<T[]> {
    return Promise.resolve(this.statement(sql).all(params) as T[]);
  }

  transaction(steps: readonly SqlStep[]): Promise<void> {
    this.applySteps(steps);
    return Promise.resolve();
  }

  run(sql: string, params: SqlParams): Promise<number> {
    return Promise.resolve(this.statement(sql).run(params).changes);
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
