// The store for a fleet's production backend: PostgreSQL through node-postgres (pg, pure JavaScript). Same
// schema (schema.ts), statements, batches and contract as the SQLite store (sql-store.ts); what differs is how the
// schema version is kept (a table, migrated under an advisory lock so two backends starting together do not both
// migrate), and that commits are queued so they apply in call order, as SQLite's synchronous ones do.
import pg from 'pg';
import { BackendError } from '../api.js';
import { POSTGRES_MIGRATIONS } from './schema.js';
import {
  SQL_PARAMETER,
  type SqlDriver,
  type SqlParams,
  type SqlStep,
  SqlStore,
  type SqlTemplate,
  type SqlValue,
  sqlTemplate,
} from './sql-store.js';

export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.length;

/** Key of the advisory lock held while migrating ('otalink' in ASCII, as a bigint). */
const MIGRATION_LOCK = '31371684194381419';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (libpq's URL form; sslmode and the rest as node-postgres takes them). */
  url: string;
  /** A schema of its own (created when missing) instead of `public`: several backends, or tests, in one database. */
  schema?: string;
  /** Connections in the pool; default 4 (one for commits, the rest for reads). */
  poolSize?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Connects, creates the schema if asked and migrates it. Throws BackendError OTA_ERR_STORE naming the database
 * (its URL without the password) and why.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<SqlStore> {
  const label = redactedUrl(options.url);
  if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema)) {
    throw new BackendError(
      'OTA_ERR_STORE',
      `schema ${JSON.stringify(options.schema)} is not a plain lower-case SQL name (letters, digits, _)`,
    );
  }
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 4,
    // BIGINT columns hold epoch milliseconds and counts, all far below 2^53: numbers, as SQLite gives them.
    types: { getTypeParser: (oid, format) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) },
    ...(options.schema === undefined ? {} : { options: `-c search_path="${options.schema}"` }),
  });
  // An idle pooled connection that breaks (the server restarts) must not take the process down: the pool drops it
  // and the next query opens another.
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      if (options.schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
      await migrate(client);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  } catch (e) {
    await pool.end().catch(() => {});
    throw new BackendError('OTA_ERR_STORE', `cannot open the store ${label}: ${(e as Error).message}`, { cause: e });
  }
  return new SqlStore(new PostgresDriver(pool, label));
}

const INT8_OID = 20;

async function migrate(client: pg.PoolClient): Promise<void> {
  await client.query('CREATE TABLE IF NOT EXISTS otalink_schema (version INTEGER NOT NULL)');
  const rows = (await client.query<{ version: number }>('SELECT version FROM otalink_schema')).rows;
  const current = rows[0]?.version ?? 0;
  if (rows.length === 0) await client.query('INSERT INTO otalink_schema (version) VALUES (0)');
  if (current > POSTGRES_MIGRATIONS.length) {
    throw new Error(`schema version ${current} is newer than this code (${POSTGRES_MIGRATIONS.length})`);
  }
  for (let version = current; version < POSTGRES_MIGRATIONS.length; version++) {
    await client.query(POSTGRES_MIGRATIONS[version] as string);
    await client.query('UPDATE otalink_schema SET version = $1', [version + 1]);
  }
}

/** The URL as logs and errors may show it: the password replaced. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres (unparsable URL)';
  }
}

/** Statement shapes kept split: a few multi-row shapes and their remainders (~4 MB at most), and the odd others. */
const MAX_TEMPLATES = 256;

interface Compiled {
  /** A name for the server-side prepared statement: each connection parses a statement once. */
  name: string;
  text: string;
  names: readonly string[];
}

/**
 * Reads and single statements go as prepared statements with $n parameters. A commit goes as one query text, its
 * values written in as literals (pg's escapeLiteral, correct whatever standard_conforming_strings says): one round
 * trip for the whole batch where node-postgres would otherwise wait for each of its statements in turn (a status
 * batch is a few multi-row statements plus one per installed version). BEGIN ... COMMIT in one text is one
 * transaction; a statement that fails aborts the rest, and the ROLLBACK ends it.
 */
class PostgresDriver implements SqlDriver {
  private readonly compiled = new Map<string, Compiled>();
  /**
   * The last commit: the next one starts after it, so batches apply in call order; and reads wait for it, so that a
   * read made after commit() was called sees that batch, as with SQLite, which applies it within the call.
   */
  private commits: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    readonly label: string,
  ) {}

  /**
   * Split once per statement text (a commit's multi-row statements come in a few shapes, repeated): writing the
   * values in is then concatenation. A regex pass over every statement took ~1.8× the CPU (0.55 against 0.31 ms
   * for a 100-status commit); in a 10 000-vehicle campaign it was ~8 % of the backend's CPU.
   */
  private readonly templates = new Map<string, SqlTemplate>();

  /** A statement with its values written in as SQL literals. */
  private inline(sql: string, params: SqlParams): string {
    let template = this.templates.get(sql);
    if (template === undefined) {
      template = sqlTemplate(sql);
      // Bounded: the shapes are few, but IN lists and filters vary; past the bound a statement is split again.
      if (this.templates.size < MAX_TEMPLATES) this.templates.set(sql, template);
    }
    const { text, names } = template;
    let out = text[0] as string;
    for (let k = 0; k < names.length; k++) out += literal(params, names[k] as string) + text[k + 1];
    return out;
  }

  /** `@name` parameters to `$n` (a name used twice is one parameter). */
  private compile(sql: string): Compiled {
    let c = this.compiled.get(sql);
    if (c === undefined) {
      const names: string[] = [];
      const text = sql.replace(SQL_PARAMETER, (_, name: string) => {
        let i = names.indexOf(name);
        if (i < 0) i = names.push(name) - 1;
        return `$${i + 1}`;
      });
      c = { name: `otalink_${this.compiled.size}`, text, names };
      this.compiled.set(sql, c);
    }
    return c;
  }

  private query(sql: string, params: SqlParams): pg.QueryConfig {
    const c = this.compile(sql);
    return { name: c.name, text: c.text, values: c.names.map((name) => paramValue(params, name)) };
  }

  async all<T>(sql: string, params: SqlParams): Promise<T[]> {
    const query = this.query(sql, params);
    await this.commits;
    return (await this.pool.query(query)).rows as T[];
  }

  async run(sql: string, params: SqlParams): Promise<number> {
    const query = this.query(sql, params);
    await this.commits;
    return (await this.pool.query(query)).rowCount ?? 0;
  }

  transaction(steps: readonly SqlStep[]): Promise<void> {
    // Written out now (a value that cannot be written fails this commit alone, before anything is sent).
    let text: string;
    try {
      text = ['BEGIN', ...steps.map(([sql, params]) => this.inline(sql, params)), 'COMMIT'].join(';\n');
    } catch (e) {
      return Promise.reject(e);
    }
    const done = this.commits.then(() => this.apply(text));
    this.commits = done.catch(() => {});
    return done;
  }

  private async apply(text: string): Promise<void> {
    const client = await this.pool.connect();
    let failed: Error | undefined;
    try {
      await client.query(text);
    } catch (e) {
      failed = e as Error;
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      // A connection that failed mid-transaction is closed rather than handed to the next caller.
      client.release(failed);
    }
  }

  async close(): Promise<void> {
    await this.commits;
    await this.pool.end();
  }
}

function paramValue(params: SqlParams, name: string): SqlValue {
  const value = params[name];
  if (value === undefined) throw new Error(`no value for @${name}`);
  return value;
}

/** A value as an SQL literal. */
function literal(params: SqlParams, name: string): string {
  const value = paramValue(params, name);
  if (value === null) return 'NULL';
  if (typeof value === 'string') return pg.escapeLiteral(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new Error(`@${name} is neither text, a finite number nor null`);
}
