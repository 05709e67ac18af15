// The candidates behind one small interface, so every benchmark and crash round drives them the same way:
//   open(dir) -> store; store.put(id, payload) / store.delete(id) -> Promise resolved once durable (group commit);
//   store.loadIndex() -> number of live messages (what a restart must rebuild); store.close(); store.compact().
// Library packages are imported lazily: a candidate that is not installed only fails when it is chosen.
import fs from 'node:fs';
import path from 'node:path';
import { LogStore } from './log-store.mjs';

/** Gathers operations during one event-loop turn and hands them to a synchronous commit function. */
class GroupCommit {
  constructor(commit) {
    this.commit = commit;
    this.queue = [];
    this.scheduled = false;
    this.batches = 0;
  }

  add(op) {
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.run());
      }
    });
  }

  run() {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    try {
      this.commit(batch.map((b) => b.op));
      this.batches++;
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }
}

function openLog(dir, options) {
  const store = new LogStore({ dir, ...options }).open();
  return {
    put: (id, payload) => store.put(String(id), payload),
    delete: (id) => store.delete(String(id)),
    loadIndex: () => store.index.size,
    compact: () => store.compact(),
    close: () => store.close(),
    stats: () => ({ batches: store.writeCount, syncs: store.syncCount, truncatedBytes: store.truncatedBytes }),
    has: (id) => store.index.has(String(id)),
  };
}

async function openBetterSqlite(dir, synchronous) {
  const { default: Database } = await import('better-sqlite3');
  fs.mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, 'store.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE IF NOT EXISTS msg (id INTEGER PRIMARY KEY, session TEXT NOT NULL, payload BLOB NOT NULL)');
  const insert = db.prepare('INSERT OR REPLACE INTO msg (id, session, payload) VALUES (?, ?, ?)');
  const remove = db.prepare('DELETE FROM msg WHERE id = ?');
  const commitAll = db.transaction((ops) => {
    for (const op of ops) {
      if (op.kind === 'put') insert.run(op.id, `s${op.id % 1000}`, op.payload);
      else remove.run(op.id);
    }
  });
  const group = new GroupCommit(commitAll);
  return {
    put: (id, payload) => group.add({ kind: 'put', id, payload }),
    delete: (id) => group.add({ kind: 'delete', id }),
    loadIndex: () => {
      const index = new Map();
      for (const row of db.prepare('SELECT id, session FROM msg').iterate()) index.set(row.id, row.session);
      return index.size;
    },
    compact: () => {
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.exec('VACUUM');
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    close: async () => {
      await new Promise((r) => setImmediate(r));
      db.close();
    },
    stats: () => ({ batches: group.batches }),
    has: (id) => db.prepare('SELECT 1 FROM msg WHERE id = ?').get(id) !== undefined,
  };
}

async function openWasmSqlite(dir) {
  const { default: sqliteWasm } = await import('node-sqlite3-wasm');
  const { Database } = sqliteWasm;
  fs.mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, 'store.db'));
  // No shared memory in its VFS, so no WAL: a rollback journal with synchronous=FULL.
  db.exec('PRAGMA synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS msg (id INTEGER PRIMARY KEY, session TEXT NOT NULL, payload BLOB NOT NULL)');
  const insert = db.prepare('INSERT OR REPLACE INTO msg (id, session, payload) VALUES (?, ?, ?)');
  const remove = db.prepare('DELETE FROM msg WHERE id = ?');
  const group = new GroupCommit((ops) => {
    db.exec('BEGIN');
    try {
      for (const op of ops) {
        if (op.kind === 'put') insert.run([op.id, `s${op.id % 1000}`, op.payload]);
        else remove.run([op.id]);
      }
      db.exec('COMMIT');
    } catch (err) {
      // SQLite may already have rolled back by itself (SQLITE_FULL); a second ROLLBACK would hide the cause.
      if (db.inTransaction) db.exec('ROLLBACK');
      throw err;
    }
  });
  return {
    put: (id, payload) => group.add({ kind: 'put', id, payload }),
    delete: (id) => group.add({ kind: 'delete', id }),
    loadIndex: () => db.all('SELECT id, session FROM msg').length,
    compact: () => db.exec('VACUUM'),
    close: async () => {
      await new Promise((r) => setImmediate(r));
      insert.finalize();
      remove.finalize();
      db.close();
    },
    stats: () => ({ batches: group.batches }),
    has: (id) => db.get('SELECT 1 AS one FROM msg WHERE id = ?', [id]) !== null,
  };
}

async function openLmdb(dir) {
  const { open } = await import('lmdb');
  fs.mkdirSync(dir, { recursive: true });
  // lmdb-js batches the writes of one event turn into one transaction itself; its promise resolves once the
  // commit is flushed (separateFlushed is off); db.flushed is awaited as well to be sure of the sync.
  const db = open({ path: path.join(dir, 'store.mdb'), encoding: 'binary', compression: false, keyEncoding: 'uint32' });
  return {
    put: async (id, payload) => {
      await db.put(id, payload);
      await db.flushed;
    },
    delete: async (id) => {
      await db.remove(id);
      await db.flushed;
    },
    loadIndex: () => {
      let n = 0;
      for (const _key of db.getKeys()) n++;
      return n;
    },
    compact: async () => {
      const target = path.join(dir, 'compact.mdb');
      fs.rmSync(target, { force: true });
      await db.backup(target, true);
      // LMDB reuses freed pages but never shrinks its file; a compacting copy is the only way down.
      return fs.statSync(target).blocks * 512;
    },
    close: () => db.close(),
    stats: () => ({}),
    has: (id) => db.get(id) !== undefined,
  };
}

export const candidates = {
  log: (dir) => openLog(dir, { autoCompact: process.env.STORE_AUTOCOMPACT !== '0' }),
  'log-noprealloc': (dir) => openLog(dir, { preallocateBytes: 0 }),
  'log-inline': (dir) => openLog(dir, { inlineWrite: true }),
  'log-2ms': (dir) => openLog(dir, { maxDelayMs: 2 }),
  // Acknowledges after write(): survives a process crash, not a power cut. The price of the safe default.
  'log-nosync': (dir) => openLog(dir, { sync: false }),
  'sqlite-full': (dir) => openBetterSqlite(dir, 'FULL'),
  'sqlite-normal': (dir) => openBetterSqlite(dir, 'NORMAL'),
  lmdb: (dir) => openLmdb(dir),
  'sqlite-wasm': (dir) => openWasmSqlite(dir),
};

export function dirSize(dir) {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    const stat = fs.statSync(path.join(dir, name));
    total += stat.isDirectory() ? dirSize(path.join(dir, name)) : stat.blocks * 512;
  }
  return total;
}

export function dirApparentSize(dir) {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    const stat = fs.statSync(path.join(dir, name));
    total += stat.isDirectory() ? dirApparentSize(path.join(dir, name)) : stat.size;
  }
  return total;
}
