// The embedded store: SQLite through better-sqlite3. WAL with synchronous=FULL so a committed batch survives a
// power cut; one transaction per commit() so status ingest pays one fsync per batch, not per message. The
// statements and the mapping of rows are SqlStore's (sql-store.ts), shared with the PostgreSQL store.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { BackendError } from '../api.js';
import { MIGRATIONS } from './schema.js';
import { type SqlDriver, type SqlParams, type SqlStep, SqlStore } from './sql-store.js';

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
