// A durable MessageStore for Node: one append-only log of put/delete lines, rewritten as a snapshot when dead
// lines outnumber live ones (a large store a slice per turn of the event loop, so the application is not held up
// while it drains a month of messages).
//
// Why a log rather than a directory of small files written atomically: a directory costs open + write + fsync +
// rename + directory fsync per message, so a burst of 10 k publishes is 50 k syscalls and 20 k fsyncs; the log
// turns every put and delete made in the same tick into one write and (with `fsync: 'batch'`) one fdatasync, so
// durability costs one fsync per batch instead of per message. A SIGKILL loses nothing that was written; `fsync`
// covers power loss. One writer per store: two would interleave lines, so opening takes a lock file
// (`<path>.lock`, see file-lock.ts) and a second opener fails with MQTT_ERR_STORE_LOCKED until close().
//
// A line is `<crc32 of the JSON, 8 hex> <JSON>`; lines of the older checksum-less format (plain JSON) still load.
// The JSON is a put (a whole record), a del, or a set: a message's new state and packet id, written when only those
// changed (a queued message sent), so a payload goes to flash once, not once per state.
// Recovery replays the lines and skips any that fails its checksum or is not a record: a torn last line (a crash
// mid-append) or a damaged one in the middle (flash, power loss with `fsync: 'never'`) must neither keep the
// client from starting nor take the records after it along. A log with damaged lines is kept as `<path>.corrupt`
// before it is rewritten. A failed write is cut off again, so a partial line never has another appended to it:
// on a full disk the failed batch is appended again with the next one (a vehicle's disk may stay full for a long
// time, and rewriting the whole store at every write would only burn CPU and flash); after any other failure
// (EIO), or if the cut itself failed, the next write rewrites the whole store into a new file.
//
// The log is read in chunks and written in chunks: a month offline can make it larger than the longest string
// V8 holds (~512 MiB), and it must still open. Compaction also counts bytes, not only lines: with large payloads
// 10 000 dead lines would be gigabytes.
import { isAscii } from 'node:buffer';
import fs from 'node:fs';
import { dirname } from 'node:path';
import zlib from 'node:zlib';
import { MqttError } from '../../codec/errors.js';
import { isPacketId } from '../../codec/packets.js';
import { isOutgoingState, isStoredRecord, type OutgoingRecord, type StoredRecord } from '../../session/records.js';
import { acquireStoreLock, type StoreLock } from './file-lock.js';
import type { MessageStore } from './store.js';

export interface FileStoreOptions {
  /**
   * 'batch' (default): a batch holding a change that is not relaxed resolves once an fdatasync begun after its write
   * has completed; relaxed changes alone are flushed to the device with the next such batch, or at close(). The
   * fdatasync runs off the event loop, one at a time: batches written while one runs share the next (group commit),
   * so a slow flash device neither holds up the client nor costs a flush per batch. 'never': leave it to the OS.
   */
  fsync?: 'batch' | 'never';
  /**
   * Compact when the log has this many more lines than live records. Default: 50 000 or the number of live
   * records, whichever is more, so that a large store (a month offline) is not rewritten whole every 50 000
   * changes while it drains: each compaction then pays for as many changes as it rewrites records. The floor
   * bounds what a start-up replays (50 000 dead lines: ~0.1 s here); at 10 000 a drain of 10 000 messages (three
   * lines each: queued, sent, acknowledged) rewrote the store twice, a fifth of its CPU.
   */
  compactAfter?: number;
  /**
   * Compact when the dead lines' bytes exceed both this and the live records' bytes (the log stays under twice
   * its live size plus this). Default 8 MiB.
   */
  compactAfterBytes?: number;
}

/** What a snapshot wrote: each live key's line size, and the file's bytes and lines. */
type Snapshot = { sizes: Map<string, number>; liveBytes: number; fileBytes: number; lines: number };

/**
 * A snapshot being written to `<path>.tmp`: at once (writeSnapshot), or a slice per turn of the event loop for a
 * large store (see `maybeCompact`). `entries` walks the live records as it goes (a Map's iterator sees changes made
 * meanwhile); keys changed since it began (`touched`) are skipped there and written last, with their state at the
 * end, so the snapshot is current when it replaces the log.
 */
interface Compaction {
  fd: number;
  entries: IterableIterator<[string, StoredRecord]>;
  touched: Set<string>;
  snapshot: Snapshot;
}

/**
 * 'set': a new state (and packet id) for the message the key's earlier line holds, payload and all: a message sent
 * after it waited in the queue (a burst, a month offline) is written once in full, not twice.
 */
type LogLine =
  | { op: 'put'; key: string; record: StoredRecord }
  | { op: 'set'; key: string; state: OutgoingRecord['state']; packetId: number | undefined }
  | { op: 'del'; key: string };
type Waiter = { resolve: () => void; reject: (err: unknown) => void };
/** A pending change to a key (see `pending`). */
const DELETED = 0;
/** A put whose record differs from the one on disk in its state and packet id only: written as a 'set' line. */
class StateChange {
  constructor(readonly record: OutgoingRecord) {}
}
type Change = StoredRecord | StateChange | typeof DELETED | undefined;

const NEWLINE = 0x0a;
/** Reads and writes go in pieces of about this size: no string or buffer grows with the log. */
const CHUNK = 1 << 20;
/**
 * A store whose live records take more than this is compacted a slice of this size per turn of the event loop,
 * not at once: formatting 100 000 records in one go held the event loop (the client, the application) for ~0.7 s;
 * a slice takes ~10 ms.
 */
const COMPACT_SLICE_BYTES = 256 << 10;

export class FileStore implements MessageStore {
  private readonly records = new Map<string, StoredRecord>();
  /** Bytes of each live record's line in the log, for keys whose latest state is written. */
  private onDisk = new Map<string, number>();
  private liveBytes = 0;
  /** Length of the log up to its last complete line: where the next append starts. */
  private fileBytes = 0;
  private fd = -1;
  private lines = 0;
  /**
   * Latest unwritten change per key, formatted only when the batch is written: a record (a put line), DELETED (a del
   * line) or undefined (nothing: a key put and deleted in one tick costs no write at all). A message published while
   * the window has room is put twice in one tick (queued, then sent with its packet id): one line, formatted once.
   */
  private pending = new Map<string, Change>();
  /** The pending batch holds a change that must be durable before it settles (one not relaxed). */
  private syncPending = false;
  /** Batches written to the log, and how many of them the last completed fdatasync (or snapshot) covered. */
  private written = 0;
  private synced = 0;
  private waiters: Waiter[] = [];
  /** What every change of the pending batch returns (see append). */
  private batchDone: Promise<void> | undefined;
  /** Waiters of written batches for the next fdatasync (one is running: they wait for the one after it). */
  private syncWaiters: Waiter[] = [];
  /** The fdatasync running on the thread pool, settled (never rejected) when it ends. */
  private syncing: Promise<void> | undefined;
  /** The descriptor the running fdatasync flushes (-1: none runs). */
  private syncingFd = -1;
  /**
   * The log replaced while an fdatasync ran on it: closed when that ends. `covered` once its replacement was adopted
   * whole (renamed and the directory flushed): the snapshot then holds what the flush was for.
   */
  private retired: { fd: number; covered: boolean } | undefined;
  private closing: Promise<void> | undefined;
  private scheduled = false;
  private closed = false;
  /** A write failed: the log is behind `records`, so the next write is a full snapshot, not an append. */
  private broken = false;
  /** After a compaction failed (a full disk, say), the line count at which to try again. */
  private compactRetryAt = 0;
  private compaction: Compaction | undefined;
  private readonly lock: StoreLock;
  private skipped = 0;

  /**
   * Opens (creating if needed) the log at `path` and loads what it holds. Throws MQTT_ERR_STORE_LOCKED while
   * another FileStore (in any process still running) has `path` open, MQTT_ERR_STORE if it cannot be read or
   * written.
   */
  static open(path: string, options: FileStoreOptions = {}): FileStore {
    return new FileStore(path, options);
  }

  /** A compaction is under way, written a slice per turn of the event loop. */
  get compacting(): boolean {
    return this.compaction !== undefined;
  }

  /** Lines skipped at open because they were damaged (checksum, syntax or shape); the log was kept as `.corrupt`. */
  get skippedLines(): number {
    return this.skipped;
  }

  private constructor(
    readonly path: string,
    private readonly options: FileStoreOptions,
  ) {
    try {
      fs.mkdirSync(dirname(path), { recursive: true });
    } catch (err) {
      throw storeError(`cannot create the directory of ${path}`, err);
    }
    try {
      this.lock = acquireStoreLock(`${path}.lock`, path);
    } catch (err) {
      // A holder's lock file that cannot be read or moved aside (EACCES) fails with the store's code too.
      throw err instanceof MqttError ? err : storeError(`cannot take the lock of ${path}`, err);
    }
    try {
      this.load();
    } catch (err) {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.lock.release();
      throw err instanceof MqttError ? err : storeError(`cannot open ${path}`, err);
    }
  }

  /** Reads the log; rewrites it if it holds dead or damaged lines, else appends to it as it is. */
  private load(): void {
    const path = this.path;
    const scan = this.scan();
    if (scan === undefined) {
      // No log yet: create it, and make its name durable before anything is appended to it.
      this.fd = fs.openSync(path, 'a');
      this.syncDir();
      return;
    }
    this.skipped = scan.skipped;
    if (scan.skipped > 0) {
      // Keep the damaged log for a post-mortem: a hard link costs no copy (and no space on a full disk).
      tryUnlink(`${path}.corrupt`);
      try {
        fs.linkSync(path, `${path}.corrupt`);
      } catch {}
    }
    if (scan.lines > this.records.size || scan.skipped > 0) {
      let snapshot: Snapshot | undefined;
      try {
        snapshot = this.writeSnapshot();
      } catch {
        // A full or failing disk: appending to the log as it is still works, and loses nothing.
      }
      if (snapshot !== undefined) {
        this.adopt(snapshot);
        return;
      }
    }
    this.fd = fs.openSync(path, 'a');
    this.lines = scan.lines;
    // A torn last line (a crash mid-append) goes before anything is appended after it.
    if (scan.size > scan.goodEnd) fs.ftruncateSync(this.fd, scan.goodEnd);
    this.fileBytes = scan.goodEnd;
  }

  /** Replays the log into `records`; undefined when there is none. */
  private scan(): { lines: number; skipped: number; goodEnd: number; size: number } | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storeError(`cannot read ${this.path}`, err);
    }
    let lines = 0;
    let skipped = 0;
    let offset = 0;
    let goodEnd = 0;
    const onLine = (line: Buffer): void => {
      offset += line.length + 1;
      goodEnd = offset;
      lines++;
      const entry = parseLine(line);
      if (entry === undefined) {
        skipped++;
        return;
      }
      if (entry.op === 'put') {
        this.records.set(entry.key, entry.record);
        this.noteOnDisk(entry.key, line.length + 1);
      } else if (entry.op === 'set') {
        const before = this.records.get(entry.key);
        // The line it changes was damaged (and skipped), or never written: nothing to apply it to.
        if (before?.kind !== 'outgoing') {
          skipped++;
          return;
        }
        this.records.set(entry.key, withState(before, entry.state, entry.packetId));
        this.noteOnDisk(entry.key, (this.onDisk.get(entry.key) ?? 0) + line.length + 1);
      } else {
        this.records.delete(entry.key);
        this.noteOnDisk(entry.key, undefined);
      }
    };
    try {
      const chunk = Buffer.allocUnsafe(CHUNK);
      let carry: Buffer[] = [];
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        const view = chunk.subarray(0, n);
        let start = 0;
        for (;;) {
          const nl = view.indexOf(NEWLINE, start);
          if (nl === -1) {
            carry.push(Buffer.from(view.subarray(start)));
            break;
          }
          const piece = view.subarray(start, nl);
          if (carry.length === 0) onLine(piece);
          else {
            onLine(Buffer.concat([...carry, piece]));
            carry = [];
          }
          start = nl + 1;
        }
      }
      let tail = 0;
      for (const c of carry) tail += c.length;
      return { lines, skipped, goodEnd, size: goodEnd + tail };
    } catch (err) {
      throw storeError(`cannot read ${this.path}`, err);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** `relaxed`: a batch of nothing but relaxed changes is written without fdatasync (see MessageStore.put). */
  put(key: string, record: StoredRecord, relaxed = false): Promise<void> {
    if (this.closed) return Promise.reject(storeError('the store is closed'));
    const before = this.records.get(key);
    this.records.set(key, record);
    if (!relaxed) this.syncPending = true;
    // A 'set' line only follows the line it changes: the state on disk, not one still pending.
    const onlyState =
      before !== undefined && this.onDisk.has(key) && !this.pending.has(key) && sameMessage(before, record);
    return this.append(key, onlyState ? new StateChange(record as OutgoingRecord) : record);
  }

  get(key: string): StoredRecord | undefined {
    return this.records.get(key);
  }

  delete(key: string, relaxed = false): Promise<void> {
    if (this.closed) return Promise.reject(storeError('the store is closed'));
    if (!this.records.delete(key)) return Promise.resolve();
    if (!relaxed) this.syncPending = true;
    // Never written (put and deleted in this tick): nothing to write.
    return this.append(key, this.onDisk.has(key) || this.broken ? DELETED : undefined);
  }

  list(): StoredRecord[] {
    return [...this.records.values()];
  }

  /** Flushes, waits for a flush under way, and releases the log and its lock; every call waits for the same end. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    this.abandonCompaction();
    this.flush();
    // The fdatasync under way (and the one its batches started) settle their waiters before the descriptor goes.
    while (this.syncing !== undefined) await this.syncing;
    if (this.broken || this.pending.size > 0) {
      // A last chance for what a failed write left out.
      try {
        this.replaceLog();
      } catch {}
    } else if (this.synced < this.written && this.options.fsync !== 'never') {
      // A clean end keeps even relaxed changes through a power cut (a drained backlog is not sent again).
      try {
        fs.fdatasyncSync(this.fd);
        this.synced = this.written;
      } catch {}
    }
    try {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
    } finally {
      this.lock.release();
    }
  }

  private append(key: string, change: Change): Promise<void> {
    // A compaction under way writes this key again at its end, with its state then.
    this.compaction?.touched.add(key);
    // Re-inserted so the batch keeps the order of the latest changes.
    this.pending.delete(key);
    this.pending.set(key, change);
    // One promise for the batch, shared by its changes: they settle together, and a burst of 20 000 publishes made
    // 20 000 promises and waiters for the collector.
    this.batchDone ??= new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    const done = this.batchDone;
    if (!this.scheduled) {
      this.scheduled = true;
      // Everything put in this turn of the event loop goes out in one write.
      setImmediate(() => this.flush());
    }
    return done;
  }

  private flush(): void {
    this.scheduled = false;
    // Pending lines and no waiter: a batch the disk had no room for (see appendLines).
    if (this.waiters.length === 0 && this.pending.size === 0) return;
    const pending = this.pending;
    const waiters = this.waiters;
    const sync = this.syncPending;
    this.pending = new Map();
    this.waiters = [];
    this.batchDone = undefined;
    this.syncPending = false;
    let written = 0;
    try {
      if (this.broken) {
        // The log missed a batch: rewrite it from what is in memory, which holds that batch too.
        this.abandonCompaction();
        this.replaceLog();
      } else {
        written = this.appendLines(pending, sync);
      }
    } catch (err) {
      if (this.rewroteForSizeLimit(err)) {
        for (const w of waiters) w.resolve();
        return;
      }
      const e = storeError(`cannot write ${this.path}`, err);
      for (const w of waiters) w.reject(e);
      return;
    }
    if (written > 0 && sync && this.options.fsync !== 'never') {
      for (const w of waiters) this.syncWaiters.push(w);
      this.startSync();
    } else {
      for (const w of waiters) w.resolve();
    }
    // After the batch is handed to its fdatasync: a compaction that replaces the log now settles the batches still
    // queued for a flush, and counts as covering the one running (adopt).
    this.maybeCompact();
  }

  /**
   * EFBIG: the log reached a file size limit (`ulimit -f`, FAT32's 4 GiB), which no append will pass. A rewrite of
   * the live records, the failed batch with them, may fit: tried at once, then spaced as failed compactions are.
   * Returns whether it made the batch durable.
   */
  private rewroteForSizeLimit(err: unknown): boolean {
    if ((err as NodeJS.ErrnoException).code !== 'EFBIG' || this.broken || this.lines < this.compactRetryAt) {
      return false;
    }
    try {
      this.abandonCompaction();
      this.replaceLog();
    } catch {
      this.compactionFailed();
      return false;
    }
    this.compactRetryAt = 0;
    this.pending = new Map();
    this.syncPending = false;
    return true;
  }

  /**
   * Flushes what the log holds to the device, on the thread pool: its waiters settle when it ends. While one runs,
   * batches written meanwhile wait for the next, started when it ends (one fdatasync covers all of them).
   */
  private startSync(): void {
    if (this.syncing !== undefined || this.syncWaiters.length === 0) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    const fd = this.fd;
    this.syncingFd = fd;
    const covers = this.written;
    let settle!: () => void;
    this.syncing = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const done = (err: Error | null): void => {
      this.syncing = undefined;
      this.syncingFd = -1;
      const retired = this.retired?.fd === fd ? this.retired : undefined;
      if (retired !== undefined) {
        this.retired = undefined;
        try {
          fs.closeSync(fd);
        } catch {}
        // The log was replaced meanwhile by a snapshot made durable, and adopted, before this ended: it holds these.
        if (retired.covered) err = null;
      }
      if (err === null) {
        if (retired === undefined) this.synced = Math.max(this.synced, covers);
        for (const w of waiters) w.resolve();
      } else {
        // After a failed flush the kernel may have dropped any page written since the last good one, these
        // batches' and earlier relaxed ones alike: the next write rewrites the log from memory. The batches
        // waiting for the next flush were written after those pages and fail with them.
        this.broken = true;
        const e = storeError(`cannot write ${this.path}`, err);
        const queued = this.syncWaiters;
        this.syncWaiters = [];
        for (const w of waiters) w.reject(e);
        for (const w of queued) w.reject(e);
      }
      settle();
      this.startSync();
    };
    try {
      fs.fdatasync(fd, done);
    } catch (err) {
      // Not expected of fs.fdatasync (only bad arguments throw), but handled as its failure would be.
      done(err as Error);
    }
  }

  /** Writes the batch's lines (not flushed to the device: see startSync); returns how many. */
  private appendLines(pending: Map<string, Change>, sync: boolean): number {
    const start = this.fileBytes;
    const parts: Buffer[] = [];
    let size = 0;
    let count = 0;
    const sizes: Array<[string, number | undefined]> = [];
    try {
      for (const [key, change] of pending) {
        if (change === undefined) continue;
        const line = formatLine(
          change === DELETED
            ? { op: 'del', key }
            : change instanceof StateChange
              ? { op: 'set', key, state: change.record.state, packetId: change.record.packetId }
              : { op: 'put', key, record: change },
        );
        parts.push(line);
        size += line.length;
        count++;
        // A 'set' line keeps the line it changes live (so a record in flight may count two lines: the dead-line
        // count that triggers compaction is over by at most the window).
        const live = change instanceof StateChange ? (this.onDisk.get(key) ?? 0) + line.length : line.length;
        sizes.push([key, this.records.has(key) ? live : undefined]);
        if (size >= CHUNK) {
          this.writeAll(this.fd, parts);
          parts.length = 0;
          size = 0;
        }
      }
      if (parts.length > 0) this.writeAll(this.fd, parts);
    } catch (err) {
      // Cut the partial batch off again, chunks already written too: the next line must not be glued to half of
      // one, and the whole batch goes again.
      try {
        fs.ftruncateSync(this.fd, start);
        this.fileBytes = start;
        const code = (err as NodeJS.ErrnoException).code;
        // Back as the pending batch (nothing was added meanwhile: this runs in flush, synchronously), so changes
        // made before the next write replace its lines and go last, as append() does for any batch.
        if (!this.broken && (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG')) {
          this.pending = pending;
          this.syncPending = sync;
        } else this.broken = true;
      } catch {
        this.broken = true;
      }
      throw err;
    }
    this.lines += count;
    if (count > 0) this.written++;
    for (const [key, bytes] of sizes) this.noteOnDisk(key, bytes);
    return count;
  }

  private writeAll(fd: number, parts: Buffer[]): void {
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off);
    if (fd === this.fd) this.fileBytes += buf.length;
  }

  private maybeCompact(): void {
    // Closing: a compaction started now would outlive close() and write the log after the lock is released.
    if (this.compaction !== undefined || this.closed) return;
    const dead = this.fileBytes - this.liveBytes;
    const lineLimit = this.options.compactAfter ?? Math.max(50_000, this.records.size);
    const tooManyLines = this.lines - this.records.size > lineLimit;
    const tooManyBytes = dead > Math.max(this.liveBytes, this.options.compactAfterBytes ?? 8 << 20);
    if (!(tooManyLines || tooManyBytes) || this.lines < this.compactRetryAt) return;
    if (this.liveBytes > COMPACT_SLICE_BYTES) {
      this.startCompaction();
      return;
    }
    try {
      this.replaceLog();
      this.compactRetryAt = 0;
    } catch {
      this.compactionFailed();
    }
  }

  /** The appended batches are durable; the dead lines wait for the next try, which a full disk should not see at every write. */
  private compactionFailed(): void {
    this.compactRetryAt = this.lines + Math.max(100, this.records.size);
  }

  private startCompaction(): void {
    try {
      this.compaction = this.openSnapshot();
    } catch {
      this.compactionFailed();
      return;
    }
    setImmediate(() => this.compactSlice());
  }

  /** Writes the next slice of the snapshot; the last one also swaps the log. */
  private compactSlice(): void {
    const c = this.compaction;
    if (c === undefined) return;
    try {
      if (!this.writeSlice(c, COMPACT_SLICE_BYTES)) {
        setImmediate(() => this.compactSlice());
        return;
      }
      this.closeSnapshot(c);
    } catch {
      this.abandonCompaction();
      this.compactionFailed();
      return;
    }
    this.compaction = undefined;
    this.compactRetryAt = 0;
    try {
      this.adopt(c.snapshot);
    } catch {
      // `broken` is set: the next write rewrites the log whole.
    }
  }

  /** Drops a compaction under way: the log it was to replace is still the log, complete. */
  private abandonCompaction(): void {
    const c = this.compaction;
    if (c === undefined) return;
    this.compaction = undefined;
    this.dropSnapshot(c);
  }

  private openSnapshot(): Compaction {
    const fd = fs.openSync(`${this.path}.tmp`, 'w');
    const snapshot: Snapshot = { sizes: new Map(), liveBytes: 0, fileBytes: 0, lines: 0 };
    return { fd, entries: this.records.entries(), touched: new Set(), snapshot };
  }

  /** Writes about `bytes` more of the snapshot's records; true once all are written. */
  private writeSlice(c: Compaction, bytes: number): boolean {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    while (size < bytes) {
      const next = c.entries.next();
      if (next.done) {
        done = true;
        break;
      }
      const [key, record] = next.value;
      if (c.touched.has(key)) continue;
      size += snapshotLine(c.snapshot, parts, key, formatLine({ op: 'put', key, record }), true);
    }
    if (parts.length > 0) this.writeAll(c.fd, parts);
    return done;
  }

  /** Writes the touched keys' state, makes the snapshot durable and renames it over the log. */
  private closeSnapshot(c: Compaction): void {
    const parts: Buffer[] = [];
    for (const key of c.touched) {
      const record = this.records.get(key);
      if (record !== undefined) snapshotLine(c.snapshot, parts, key, formatLine({ op: 'put', key, record }), true);
      else if (c.snapshot.sizes.has(key)) snapshotLine(c.snapshot, parts, key, formatLine({ op: 'del', key }), false);
    }
    if (parts.length > 0) this.writeAll(c.fd, parts);
    fs.fdatasyncSync(c.fd);
    fs.closeSync(c.fd);
    c.fd = -1;
    fs.renameSync(`${this.path}.tmp`, this.path);
  }

  /** A half-written snapshot only takes space (which may be what ran out): it goes. */
  private dropSnapshot(c: Compaction | undefined): void {
    if (c !== undefined && c.fd >= 0) {
      try {
        fs.closeSync(c.fd);
      } catch {}
    }
    tryUnlink(`${this.path}.tmp`);
  }

  /** Swaps the log for a snapshot of `records`. */
  private replaceLog(): void {
    this.adopt(this.writeSnapshot());
  }

  /** Writes the live records to a new file and renames it over the log. Changes nothing if it throws. */
  private writeSnapshot(): Snapshot {
    let c: Compaction | undefined;
    try {
      c = this.openSnapshot();
      while (!this.writeSlice(c, CHUNK)) {}
      this.closeSnapshot(c);
    } catch (err) {
      this.dropSnapshot(c);
      throw err;
    }
    return c.snapshot;
  }

  /**
   * Makes the renamed snapshot the log appended to. Whatever fails here, the old descriptor is gone (it names the
   * file renamed away: what went there would be lost), and `broken` has the next write rewrite the log again.
   */
  private adopt(snapshot: Snapshot): void {
    let retired: { fd: number; covered: boolean } | undefined;
    if (this.fd >= 0) {
      // A flush still running on it keeps it open until it ends (startSync); any other is closed now.
      if (this.fd === this.syncingFd) {
        retired = { fd: this.fd, covered: false };
        this.retired = retired;
      } else {
        try {
          fs.closeSync(this.fd);
        } catch {}
      }
      this.fd = -1;
    }
    this.onDisk = snapshot.sizes;
    this.liveBytes = snapshot.liveBytes;
    this.fileBytes = snapshot.fileBytes;
    this.lines = snapshot.lines;
    this.broken = true;
    const waiting = this.syncWaiters;
    this.syncWaiters = [];
    try {
      this.fd = fs.openSync(this.path, 'a');
      // The rename is only durable once the directory is: without this a power cut can bring the old log back,
      // and with it lose everything appended to the new one since.
      this.syncDir();
    } catch (err) {
      // The old log may come back after a power cut, and what these batches wrote there was never flushed.
      const e = storeError(`cannot write ${this.path}`, err);
      for (const w of waiting) w.reject(e);
      throw err;
    }
    this.broken = false;
    // The snapshot was made durable before its rename, now durable too: it holds every change the batches waiting
    // for a flush made, and those of a flush still running on the old log.
    if (retired !== undefined) retired.covered = true;
    for (const w of waiting) w.resolve();
    this.written++;
    this.synced = this.written;
  }

  private noteOnDisk(key: string, bytes: number | undefined): void {
    const before = this.onDisk.get(key);
    if (before !== undefined) this.liveBytes -= before;
    if (bytes === undefined) this.onDisk.delete(key);
    else {
      this.onDisk.set(key, bytes);
      this.liveBytes += bytes;
    }
  }

  private syncDir(): void {
    if (this.options.fsync === 'never' || process.platform === 'win32') return;
    const fd = fs.openSync(dirname(this.path), 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Adds `line` for `key` to a snapshot's parts and accounts for it (`live` false: a 'del' line); returns its length. */
function snapshotLine(snapshot: Snapshot, parts: Buffer[], key: string, line: Buffer, live: boolean): number {
  const bytes = line.length;
  const before = snapshot.sizes.get(key);
  if (before !== undefined) snapshot.liveBytes -= before;
  if (!live) snapshot.sizes.delete(key);
  else {
    snapshot.sizes.set(key, bytes);
    snapshot.liveBytes += bytes;
  }
  snapshot.fileBytes += bytes;
  snapshot.lines++;
  parts.push(line);
  return line.length;
}

/** The same message (the session hands out the same payload and properties objects for it) in another state. */
function sameMessage(a: StoredRecord, b: StoredRecord): boolean {
  return (
    a.kind === 'outgoing' &&
    b.kind === 'outgoing' &&
    a.payload === b.payload &&
    a.seq === b.seq &&
    a.topic === b.topic &&
    a.qos === b.qos &&
    a.retain === b.retain &&
    a.properties === b.properties &&
    a.expiresAt === b.expiresAt
  );
}

function withState(
  record: OutgoingRecord,
  state: OutgoingRecord['state'],
  packetId: number | undefined,
): OutgoingRecord {
  const changed: OutgoingRecord = { ...record, state };
  if (packetId === undefined) delete changed.packetId;
  else changed.packetId = packetId;
  return changed;
}

function storeError(message: string, cause?: unknown): MqttError {
  return new MqttError('MQTT_ERR_STORE', message, { cause });
}

function tryUnlink(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {}
}

/** `<crc32 of the JSON, 8 hex> <JSON>\n`, encoded once: the checksum is taken over the bytes written. */
function formatLine(line: LogLine): Buffer {
  const json = lineJson(line);
  const length = Buffer.byteLength(json, 'utf8');
  const buf = Buffer.allocUnsafe(length + 10);
  buf.write(json, 9, 'utf8');
  writeHex8(buf, crc32(buf.subarray(9, 9 + length)));
  buf[8] = 0x20;
  buf[9 + length] = NEWLINE;
  return buf;
}

/**
 * The line's JSON. A message with no properties (the usual record) and a deletion are written out by hand: a
 * replacer makes JSON.stringify several times slower, and even without one, copying the record to swap its payload
 * for base64 took three times as long as this (the store's largest cost per message). Only the topic and the key
 * can hold characters that need escaping.
 */
function lineJson(line: LogLine): string {
  if (line.op === 'del') return `{"op":"del","key":${JSON.stringify(line.key)}}`;
  if (line.op === 'set') {
    const id = line.packetId === undefined ? '' : `,"packetId":${line.packetId}`;
    return `{"op":"set","key":${JSON.stringify(line.key)},"state":"${line.state}"${id}}`;
  }
  const r = line.record;
  // expiresAt comes with properties (a Message Expiry Interval); a record with either goes through JSON.stringify.
  if (r.kind === 'outgoing' && r.properties === undefined && r.expiresAt === undefined) {
    let json = `{"op":"put","key":${JSON.stringify(line.key)},"record":{"kind":"outgoing","seq":${r.seq},"topic":${JSON.stringify(r.topic)},"payload":{"$b64":"${base64(r.payload)}"},"qos":${r.qos},"retain":${r.retain},"state":"${r.state}"`;
    if (r.packetId !== undefined) json += `,"packetId":${r.packetId}`;
    return `${json}}}`;
  }
  return JSON.stringify(line, replace);
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

/** The entry a line holds, or undefined if it is damaged: a bad checksum, bad JSON, or no record. */
function parseLine(line: Buffer): LogLine | undefined {
  if (line.length === 0) return undefined;
  let json: Buffer = line;
  // `<8 hex> {` ; a line starting with `{` is of the older format without a checksum.
  if (line[0] !== 0x7b) {
    if (line.length < 10 || line[8] !== 0x20) return undefined;
    json = line.subarray(9);
    if (readHex8(line) !== crc32(json)) return undefined;
  }
  let entry: unknown;
  try {
    // Mostly base64 and ASCII names: decoded as one-byte text when it is, several times faster than UTF-8.
    entry = JSON.parse(json.toString(isAscii(json) ? 'latin1' : 'utf8'), revive);
  } catch {
    return undefined;
  }
  if (entry === null || typeof entry !== 'object') return undefined;
  const e = entry as { op?: unknown; key?: unknown; record?: unknown };
  if (typeof e.key !== 'string') return undefined;
  if (e.op === 'del') return { op: 'del', key: e.key };
  if (e.op === 'set') {
    const { state, packetId } = entry as { state?: unknown; packetId?: unknown };
    if (!isOutgoingState(state) || (packetId !== undefined && !isPacketId(packetId))) return undefined;
    return { op: 'set', key: e.key, state, packetId };
  }
  if (e.op === 'put' && isStoredRecord(e.record)) return { op: 'put', key: e.key, record: e.record };
  return undefined;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

// zlib.crc32 (Node 20.15+) is native; the table is for older 20.x. Both are the same CRC-32.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

function crc32(buf: Uint8Array): number {
  if (nativeCrc32 !== undefined) return nativeCrc32(buf);
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// The checksum's hex digits, written and read byte by byte: toString(16) and padStart were one of the store's
// largest costs per line.
const HEX = Buffer.from('0123456789abcdef', 'latin1');

function writeHex8(buf: Buffer, n: number): void {
  for (let i = 0; i < 8; i++) buf[i] = HEX[(n >>> (28 - 4 * i)) & 0xf]!;
}

/** The 8 lowercase hex digits at the start of `line` as a number; -1 if they are not. */
function readHex8(line: Buffer): number {
  let n = 0;
  for (let i = 0; i < 8; i++) {
    const c = line[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

// Uint8Array fields (payloads, correlation data) travel as base64.
function replace(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { $b64: base64(value) };
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
