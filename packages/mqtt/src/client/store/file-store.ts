// A durable MessageStore for Node: one append-only log of JSON lines (put/delete), rewritten as a snapshot when
// dead lines outnumber live ones.
//
// Why a log rather than a directory of small files written atomically: a directory costs open + write + fsync +
// rename + directory fsync per message, so a burst of 10 k publishes is 50 k syscalls and 20 k fsyncs; the log
// turns every put and delete made in the same tick into one write and (with `fsync: 'batch'`) one fdatasync, so
// durability costs one fsync per batch instead of per message. Recovery stays simple: replay the lines, ignore a
// torn last line (a crash mid-append), and start from a fresh snapshot. A SIGKILL loses nothing that was written;
// `fsync` covers power loss. One writer per store: two would interleave lines, so opening takes a lock file
// (`<path>.lock`, see file-lock.ts) and a second opener fails with MQTT_ERR_STORE_LOCKED until close().
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { MqttError } from '../../codec/errors.js';
import type { StoredRecord } from '../../session/records.js';
import { acquireStoreLock, type StoreLock } from './file-lock.js';
import type { MessageStore } from './store.js';

export interface FileStoreOptions {
  /** 'batch' (default): fdatasync once per batch before the batch's puts resolve. 'never': leave it to the OS. */
  fsync?: 'batch' | 'never';
  /** Compact when the log has this many more lines than live records. Default 10 000. */
  compactAfter?: number;
}

type LogLine = { op: 'put'; key: string; record: StoredRecord } | { op: 'del'; key: string };

export class FileStore implements MessageStore {
  private readonly records = new Map<string, StoredRecord>();
  private fd: number;
  private lines = 0;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private scheduled = false;
  private closed = false;
  private readonly lock: StoreLock;

  /**
   * Opens (creating if needed) the log at `path` and loads what it holds. Throws MQTT_ERR_STORE_LOCKED while
   * another FileStore (in any process still running) has `path` open.
   */
  static open(path: string, options: FileStoreOptions = {}): FileStore {
    return new FileStore(path, options);
  }

  private constructor(
    readonly path: string,
    private readonly options: FileStoreOptions,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.lock = acquireStoreLock(`${path}.lock`, path);
    try {
      this.fd = this.load();
    } catch (err) {
      this.lock.release();
      throw err;
    }
  }

  /** Reads the log, then starts a fresh snapshot and returns its append descriptor. */
  private load(): number {
    const path = this.path;
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError('cannot read the store', err);
    }
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.length === 0) continue;
      let entry: LogLine;
      try {
        entry = JSON.parse(line, revive) as LogLine;
      } catch (err) {
        if (i === lines.length - 1) break; // torn last line: the append a crash interrupted
        throw storeError(`line ${i + 1} of ${path} is not valid`, err);
      }
      if (entry.op === 'put') this.records.set(entry.key, entry.record);
      else this.records.delete(entry.key);
    }
    // Start from a snapshot: drops the dead lines and any torn tail before we append after it.
    return this.snapshot();
  }

  put(key: string, record: StoredRecord): Promise<void> {
    this.records.set(key, record);
    return this.append({ op: 'put', key, record });
  }

  get(key: string): StoredRecord | undefined {
    return this.records.get(key);
  }

  delete(key: string): Promise<void> {
    if (!this.records.delete(key)) return Promise.resolve();
    return this.append({ op: 'del', key });
  }

  list(): StoredRecord[] {
    return [...this.records.values()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    try {
      closeSync(this.fd);
    } finally {
      this.lock.release();
    }
  }

  private append(line: LogLine): Promise<void> {
    if (this.closed) return Promise.reject(storeError('the store is closed'));
    this.pending.push(JSON.stringify(line, replace));
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      // Everything put in this turn of the event loop goes out in one write.
      setImmediate(() => this.flush());
    }
    return done;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const data = `${this.pending.join('\n')}\n`;
    const count = this.pending.length;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      const buf = Buffer.from(data, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off);
      if (this.options.fsync !== 'never') fdatasyncSync(this.fd);
      this.lines += count;
      if (this.lines - this.records.size > (this.options.compactAfter ?? 10_000)) {
        const old = this.fd;
        this.fd = this.snapshot();
        closeSync(old);
      }
      for (const w of waiters) w.resolve();
    } catch (err) {
      const e = storeError('cannot write the store', err);
      for (const w of waiters) w.reject(e);
    }
  }

  /** Writes the live records to a new file, renames it over the log, and returns an append descriptor. */
  private snapshot(): number {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      const lines: string[] = [];
      for (const [key, record] of this.records) lines.push(JSON.stringify({ op: 'put', key, record }, replace));
      const buf = Buffer.from(lines.length > 0 ? `${lines.join('\n')}\n` : '', 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.lines = this.records.size;
    return openSync(this.path, 'a');
  }
}

function storeError(message: string, cause?: unknown): MqttError {
  return new MqttError('MQTT_ERR_STORE', message, { cause });
}

// Uint8Array fields (payloads, correlation data) travel as base64.
function replace(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return { $b64: Buffer.from(value.buffer, value.byteOffset, value.length).toString('base64') };
  }
  // A Buffer has already been turned into { type: 'Buffer', data: [...] } by its toJSON.
  if (value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer') {
    const data = (value as { data?: unknown }).data;
    if (Array.isArray(data)) return { $b64: Buffer.from(data as number[]).toString('base64') };
  }
  return value;
}

function revive(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && '$b64' in value) {
    const b = Buffer.from((value as { $b64: string }).$b64, 'base64');
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }
  return value;
}
