// The durable store: an append-only log in segments (docs/durable-store.md). Operations are encoded when their batch
// is written: everything issued during one event-loop turn (or while the previous sync ran) goes out as one write
// and one fdatasync, and every commit() waiting on it settles together (group commit). Compaction writes a snapshot
// of the live state as a new segment in slices between event-loop turns while appends go on in a segment after it,
// then unlinks the older ones. Recovery replays from the newest complete snapshot, cuts a torn tail in the last
// segment and refuses a damaged record anywhere else.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import type { Message } from '../message.js';
import { OpStore } from './base.js';
import { checkRecord, decodeBody, encodeRecord, MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from './codec.js';
import { FrameDecoder, FrameEncoder, type RecordSink } from './frames.js';
import { nodeStoreFs, type StoreFs } from './fs.js';
import { type DataDirLock, lockDataDir } from './lock.js';
import type { StoreOp } from './ops.js';
import { type FrozenState, StoreState } from './state.js';
import type { StoreContents, StoreLiveView, StoreSize } from './types.js';

/**
 * 2: frames of binary records after each segment's header (frames.ts). 1: one JSON record at a time (codec.ts), still
 * read; a newer broker's format is refused with the segment's path.
 */
export const STORE_FORMAT = 2;

export type SyncPolicy = 'batch' | 'none';

export interface LogStoreOptions {
  dir: string;
  /** 'batch' (default): one fdatasync per batch before any commit of it resolves. 'none': resolve after write(). */
  sync?: SyncPolicy;
  /** A segment is closed for appends past this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Compaction runs once the segments since the last snapshot pass this size and hold over 50 % dead bytes. */
  compactMinBytes?: number;
  /** Free disk space below which new messages are refused (acks and deletes go on). Default 16 MiB. */
  reserveBytes?: number;
  /** Most bytes written in one batch; the rest waits for the next. Default 4 MiB. */
  maxBatchBytes?: number;
  /** Compaction writes its snapshot in slices of at most this many bytes (or 4 ms), one per event-loop turn. */
  compactSliceBytes?: number;
  fs?: StoreFs;
  logger?: Logger;
  /** Take the data directory's lock file (default true); tests simulating a crash in one process turn it off. */
  lock?: boolean;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting on a batch that fails; those who are still see the rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

interface Segment {
  number: number;
  path: string;
  bytes: number;
}

type HeaderOp = Extract<StoreOp, { op: 'header' }>;

const SEGMENT_NAME = /^segment-(\d{8})\.log$/;
/** A snapshot being written; renamed to its segment name once complete and synced. */
const COMPACTING_SUFFIX = '.compacting';
/** Longest a compaction slice encodes before it writes and yields to the event loop. */
const SLICE_MS = 4;
const READ_CHUNK = 8 * 1024 * 1024;
const FREE_SPACE_CHECK_MS = 1000;

function segmentName(number: number): string {
  return `segment-${String(number).padStart(8, '0')}.log`;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== undefined && !error.message.startsWith(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/** What reading one segment found (its operations went to the state given to #readSegment). */
interface SegmentRead {
  /** A `snapshot-end` record was read. */
  snapshotEnd: boolean;
  /** Offset after the last good record. */
  goodEnd: number;
  /** Bytes after goodEnd (damage or a torn batch): no frame after it checks. */
  badBytes: number;
  /** Offset of the first bad record after the last good one, if any. */
  badOffset: number | undefined;
  /** Damaged stretches with good frames after them, skipped (their records are lost). */
  skipped: Array<{ offset: number; bytes: number }>;
}

/** How much of a segment the search for the next good frame after damage reads at a time. */
const SCAN_WINDOW = 16 * 1024 * 1024;
/** Record types of a body in format 1's form (codec.ts OP_CODES) and of format 2's binary records (frames.ts). */
const JSON_CODES = 19;
const MSG_CODE = 6;
const BINARY_CODES_FROM = 32;
const BINARY_CODES_TO = 39;

/**
 * The bytes of a segment near a candidate frame: from the scan's window when there, else read (9 bytes at a time)
 * from the file, so that a candidate whose records run past the window costs a few small reads, not the frame's.
 */
class ScanReader {
  readonly #small = Buffer.alloc(9);
  #smallAt = -1;
  constructor(
    readonly fs: StoreFs,
    readonly fd: number,
    public window: Buffer,
    public windowStart: number,
    public filled: number,
  ) {}

  /** The 9 bytes at file offset `position` (the caller keeps within the file), as a buffer and its offset. */
  at(position: number): [Buffer, number] {
    const inWindow = position - this.windowStart;
    if (inWindow >= 0 && inWindow + 9 <= this.filled) return [this.window, inWindow];
    if (this.#smallAt !== position) {
      this.#small.fill(0);
      readFully(this.fs, this.fd, this.#small, 9, position);
      this.#smallAt = position;
    }
    return [this.#small, 0];
  }
}

/** A body in format 1's form ([u8 op][u32 JSON length][JSON]) of `length` bytes at file offset `position`. */
function plausibleJson(reader: ScanReader, position: number, length: number): boolean {
  if (length < 6) return false;
  const [bytes, at] = reader.at(position);
  const code = bytes[at]!;
  if (code >= JSON_CODES) return false;
  const json = bytes.readUInt32LE(at + 1);
  if (code === MSG_CODE ? 5 + json > length : 5 + json !== length) return false;
  return bytes[at + 5] === 0x7b; // '{'
}

/**
 * Whether the `bodyLength` bytes at file offset `position` may be the body of a frame (format 2: records whose
 * lengths add up to exactly the frame's, each of a known type) or of a format 1 record: a cheap test that random bytes
 * almost never pass, so that the search for the next frame after damage computes few CRCs.
 */
function plausibleBody(reader: ScanReader, position: number, bodyLength: number, format: number): boolean {
  if (format === 1) return plausibleJson(reader, position, bodyLength);
  const end = position + bodyLength;
  let q = position;
  while (q < end) {
    if (end - q < 5) return false;
    const [bytes, at] = reader.at(q);
    const length = bytes.readUInt32LE(at);
    if (length < 1 || q + 4 + length > end) return false;
    const code = bytes[at + 4]!;
    if (code >= BINARY_CODES_FROM) {
      if (code > BINARY_CODES_TO) return false;
    } else if (!plausibleJson(reader, q + 4, length)) return false;
    q += 4 + length;
  }
  return true;
}

function readFully(fs: StoreFs, fd: number, buffer: Buffer, length: number, position: number): number {
  let filled = 0;
  while (filled < length) {
    const read = fs.readSync(fd, buffer, filled, length - filled, position + filled);
    if (read === 0) break;
    filled += read;
  }
  return filled;
}

/**
 * The offset of the first frame (format 1: record) after the damaged one at `from` whose length, record structure
 * and CRC check, or undefined when none does before the end of the segment (a torn tail, or damage to its end).
 */
export function nextGoodFrame(fs: StoreFs, fd: number, size: number, from: number, format: number): number | undefined {
  const window = Buffer.allocUnsafe(Math.min(SCAN_WINDOW, Math.max(size - from, RECORD_HEADER_BYTES)));
  const reader = new ScanReader(fs, fd, window, 0, 0);
  let windowStart = from + 1;
  while (windowStart + RECORD_HEADER_BYTES + 6 <= size) {
    const filled = readFully(fs, fd, window, Math.min(window.length, size - windowStart), windowStart);
    if (filled < RECORD_HEADER_BYTES) return undefined;
    reader.windowStart = windowStart;
    reader.filled = filled;
    for (let at = 0; at + RECORD_HEADER_BYTES <= filled; at++) {
      const bodyLength = window.readUInt32LE(at);
      if (bodyLength < 6 || bodyLength > MAX_RECORD_BYTES) continue;
      const position = windowStart + at;
      if (position + RECORD_HEADER_BYTES + bodyLength > size) continue;
      if (!plausibleBody(reader, position + RECORD_HEADER_BYTES, bodyLength, format)) continue;
      let frame: Buffer;
      if (at + RECORD_HEADER_BYTES + bodyLength <= filled)
        frame = window.subarray(at, at + RECORD_HEADER_BYTES + bodyLength);
      else {
        frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
        if (readFully(fs, fd, frame, frame.length, position) < frame.length) continue;
      }
      if (checkRecord(frame, 0, frame.length) === 'ok') return position;
    }
    // The next window starts where a header no longer fitted in this one.
    windowStart += filled - RECORD_HEADER_BYTES + 1;
  }
  return undefined;
}

/**
 * Loaded payloads are views of the chunks the log was read in (one copy of the file's bytes, none per message). A
 * chunk whose kept payloads fill less than half of it (most of its messages were delivered or dropped before the
 * restart) would keep the rest in memory for nothing: those payloads are copied out into one buffer of their own, so
 * what loaded payloads hold in memory stays under twice their size.
 */
export function unpinSparseChunks(
  messages: ReadonlyMap<number, Message>,
  payloadBytes: number,
  chunkBytes: number,
): number {
  // Kept payloads that fill at least half of all the chunks read keep them under twice their size already.
  if (payloadBytes * 2 >= chunkBytes) return 0;
  const kept = new Map<ArrayBufferLike, number>();
  // Consecutive messages mostly come from one chunk: one Map update per run, not per message.
  let run: ArrayBufferLike | undefined;
  let runBytes = 0;
  for (const message of messages.values()) {
    const chunk = message.payload.buffer;
    if (chunk !== run) {
      if (run !== undefined) kept.set(run, (kept.get(run) ?? 0) + runBytes);
      run = chunk;
      runBytes = 0;
    }
    runBytes += message.payload.byteLength;
  }
  if (run !== undefined) kept.set(run, (kept.get(run) ?? 0) + runBytes);
  const sparse = new Map<ArrayBufferLike, { copy: Buffer; at: number }>();
  for (const [chunk, bytes] of kept) {
    if (bytes * 2 < chunk.byteLength) sparse.set(chunk, { copy: Buffer.allocUnsafeSlow(bytes), at: 0 });
  }
  if (sparse.size === 0) return 0;
  let moved = 0;
  for (const message of messages.values()) {
    const into = sparse.get(message.payload.buffer);
    if (into === undefined) continue;
    const length = message.payload.byteLength;
    into.copy.set(message.payload, into.at);
    message.payload = new Uint8Array(into.copy.buffer, into.copy.byteOffset + into.at, length);
    into.at += length;
    moved++;
  }
  return moved;
}

export class LogStore extends OpStore {
  readonly durable = true;
  readonly dir: string;
  readonly #fs: StoreFs;
  readonly #logger: Logger | undefined;
  readonly #sync: SyncPolicy;
  readonly #segmentBytes: number;
  readonly #compactMinBytes: number;
  readonly #reserveBytes: number;
  readonly #maxBatchBytes: number;
  readonly #compactSliceBytes: number;
  #segments: Segment[] = [];
  #fd = -1;
  /** Bytes of all segments since (and including) the newest snapshot. */
  #sinceSnapshot = 0;
  #pending: StoreOp[] = [];
  /** Builds each batch's frame in one buffer, reused from batch to batch. */
  readonly #encoder = new FrameEncoder();
  #next: Deferred | undefined;
  #current: Deferred | undefined;
  #flushing = false;
  #scheduled = false;
  #full: string | undefined;
  /** A write could not be undone or a sync failed: nothing more is written until restart. */
  #broken: Error | undefined;
  #lastFreeCheck = 0;
  #recheck: NodeJS.Timeout | undefined;
  #loaded = false;
  #closed = false;
  /** The broker's queues and in-flight windows, once it holds them (the state then keeps none). */
  #view: StoreLiveView | undefined;
  readonly #lockWanted: boolean;
  #lock: DataDirLock | undefined;
  /** Bytes of the chunks the log was read in at load (what loaded payloads may keep in memory). */
  #chunkBytes = 0;
  /** Counters for tests and logs. */
  readonly counters = {
    batches: 0,
    syncs: 0,
    compactions: 0,
    truncatedBytes: 0,
    /** Damaged stretches skipped at load (BROKER_ERR_STORE_CORRUPT) and their bytes, whose records were lost. */
    corruptRegions: 0,
    corruptBytes: 0,
  };

  constructor(options: LogStoreOptions) {
    super();
    this.dir = options.dir;
    this.#fs = options.fs ?? nodeStoreFs;
    this.#logger = options.logger;
    this.#sync = options.sync ?? 'batch';
    this.#segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    this.#compactMinBytes = options.compactMinBytes ?? 64 * 1024 * 1024;
    this.#reserveBytes = options.reserveBytes ?? 16 * 1024 * 1024;
    this.#maxBatchBytes = options.maxBatchBytes ?? 4 * 1024 * 1024;
    this.#compactSliceBytes = options.compactSliceBytes ?? 1024 * 1024;
    this.#compactAt = this.#compactMinBytes;
    this.#lockWanted = options.lock ?? true;
  }

  get writable(): boolean {
    return this.#full === undefined && this.#broken === undefined;
  }

  get broken(): boolean {
    return this.#broken !== undefined;
  }

  get idle(): boolean {
    return this.#pending.length === 0 && this.#current === undefined;
  }

  /** Why the store refuses new messages, if it does. */
  get refusal(): string | undefined {
    return this.#broken?.message ?? this.#full;
  }

  // ---------------------------------------------------------------- load

  async load(): Promise<StoreContents> {
    if (this.#loaded) throw new BrokerError('BROKER_ERR_STORE', 'load() may be called once');
    this.#loaded = true;
    try {
      return this.#load();
    } catch (error) {
      // A store that did not open holds nothing: the directory is free for the next attempt.
      this.#lock?.release();
      this.#lock = undefined;
      throw error;
    }
  }

  #load(): StoreContents {
    const fs = this.#fs;
    let names: string[];
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      // Before anything is read or removed: a second broker on this directory stops here.
      if (this.#lockWanted) this.#lock = lockDataDir(this.dir, this.#logger);
      names = fs.readdirSync(this.dir);
    } catch (error) {
      if (error instanceof BrokerError) throw error;
      throw new BrokerError('BROKER_ERR_STORE', `cannot use data directory ${this.dir}: ${errorText(error)}`, {
        cause: error,
      });
    }
    // A snapshot a crash interrupted before its rename: the segments it was made from are all still there.
    for (const name of names) if (name.endsWith(COMPACTING_SUFFIX)) this.#unlink(join(this.dir, name));
    const segments = names
      .map((name) => SEGMENT_NAME.exec(name))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => ({ number: Number(match[1]), path: join(this.dir, match[0]), bytes: 0 }))
      .sort((a, b) => a.number - b.number);
    let state = new StoreState();
    let start = -1;
    let reads: SegmentRead[] = [];
    // The newest complete snapshot is where replay starts; a snapshot torn by a crash is discarded with what follows.
    // Records are applied as they are read (no list of a whole segment's operations is built).
    for (let candidate = segments.length - 1; candidate >= 0; candidate--) {
      const segment = segments[candidate]!;
      const header = this.#readHeader(segment);
      if (header === undefined) {
        const emptySize = candidate === segments.length - 1 ? this.#sizeWithoutFrames(segment) : undefined;
        if (emptySize !== undefined) {
          // Created by a crash between open and the header's sync: it never held anything. Said when it had bytes:
          // a file damaged otherwise (cut, overwritten) goes the same way, and its loss must not be silent.
          if (emptySize > 0) {
            this.counters.truncatedBytes += emptySize;
            this.#logger?.warn(
              { code: 'BROKER_ERR_STORE_TORN_TAIL', path: segment.path, offset: 0, bytes: emptySize },
              'store: removed a last segment with no valid header and no record (a crash as it was created, or damage)',
            );
          }
          this.#unlink(segment.path);
          segments.pop();
          continue;
        }
        // A damaged header with frames after it: read as this format (the damage is logged with what it took); it
        // is the snapshot if it holds a snapshot's end.
        const read = this.#readSegment(segment, STORE_FORMAT, state);
        if (!read.snapshotEnd) {
          state = new StoreState();
          continue;
        }
        reads = [read];
        start = candidate;
        break;
      }
      if (!header.snapshot) continue;
      const read = this.#readSegment(segment, header.format, state);
      // Format 2 snapshots take their name only once complete and synced: one without its end that segments follow
      // was damaged since, and the segments it replaced are gone; what the damage did not take is kept (what it took
      // is logged below). As the last segment it is treated as torn, like any last segment.
      const damaged = read.skipped.length > 0 || read.badOffset !== undefined;
      if (!read.snapshotEnd && !(header.format >= 2 && damaged && candidate < segments.length - 1)) {
        state = new StoreState();
        continue;
      }
      reads = [read];
      start = candidate;
      break;
    }
    if (start < 0 && segments.length > 0) throw this.#corrupt(segments[0]!, 0, 'no complete snapshot segment found');
    const kept: Segment[] = [];
    if (start >= 0) {
      for (let index = start + 1; index < segments.length; index++) {
        const header = this.#readHeader(segments[index]!);
        if (header?.snapshot === true) {
          // A later snapshot that did not complete (format 1 before sliced compaction wrote snapshots in place): the
          // segments before it still hold its state, and it holds nothing else.
          this.#unlink(segments[index]!.path);
          segments.splice(index, 1);
          index--;
          continue;
        }
        // A segment without a header here is the last one (see above); it is read as empty.
        reads.push(this.#readSegment(segments[index]!, header?.format ?? STORE_FORMAT, state));
      }
      for (let index = 0; index < reads.length; index++) {
        const segment = segments[start + index]!;
        const read = reads[index]!;
        const last = index === reads.length - 1;
        for (const region of read.skipped) this.#lost(segment, region.offset, region.bytes);
        if (read.badOffset !== undefined) {
          // Damage to the end of an older segment is not a torn batch (appends moved on from it): kept as it is.
          if (!last) this.#lost(segment, read.badOffset, read.badBytes);
          else this.#cutTail(segment, read);
        }
        segment.bytes = read.goodEnd;
        kept.push(segment);
      }
      for (const old of segments.slice(0, start)) this.#unlink(old.path);
    } else {
      for (const old of segments) this.#unlink(old.path);
    }
    state.dropUnreferenced();
    unpinSparseChunks(state.messages, state.payloadBytes, this.#chunkBytes);
    this.state = state;
    this.nextId = state.maxId + 1;
    this.#segments = kept;
    this.#sinceSnapshot = kept.reduce((n, s) => n + s.bytes, 0);
    try {
      // Appends go to a fresh segment: the old last one keeps exactly what was read back.
      if (kept.length === 0) this.#openSegment(true, [{ op: 'snapshot-end' }]);
      else this.#openSegment(false, []);
    } catch (error) {
      throw new BrokerError('BROKER_ERR_STORE', `cannot write in data directory ${this.dir}: ${errorText(error)}`, {
        cause: error,
      });
    }
    this.#checkFreeSpace(Date.now());
    return state.contents();
  }

  #corrupt(segment: Segment, offset: number, what: string): BrokerError {
    return new BrokerError(
      'BROKER_ERR_STORE_CORRUPT',
      `store segment ${segment.path} ${what} (offset ${offset}); move the data directory aside to start empty`,
    );
  }

  /**
   * The segment's size if no good frame follows its (bad) header: a segment a crash left empty, or one damaged
   * whole. Undefined if one does: damage to read past.
   */
  #sizeWithoutFrames(segment: Segment): number | undefined {
    const fd = this.#fs.openSync(segment.path, 'r');
    try {
      const size = this.#fs.fstatSync(fd).size;
      return nextGoodFrame(this.#fs, fd, size, 0, STORE_FORMAT) === undefined ? size : undefined;
    } finally {
      this.#fs.closeSync(fd);
    }
  }

  /**
   * Damage found at load: the frames (records) in it are lost, whatever they held (messages, queue entries, acks,
   * session changes); the store starts with everything else. Logged with what an operator needs to find it, counted.
   */
  #lost(segment: Segment, offset: number, bytes: number): void {
    this.counters.corruptRegions++;
    this.counters.corruptBytes += bytes;
    this.#logger?.error(
      { code: 'BROKER_ERR_STORE_CORRUPT', path: segment.path, offset, bytes },
      'store: skipped a damaged stretch of the log (checksum or length does not check); the records in it are lost, ' +
        'the rest was loaded',
    );
  }

  #unlink(path: string): void {
    try {
      this.#fs.unlinkSync(path);
    } catch (error) {
      this.#logger?.warn({ code: 'BROKER_ERR_STORE', path, err: error }, 'could not remove an old store segment');
    }
  }

  #cutTail(segment: Segment, read: SegmentRead): void {
    this.counters.truncatedBytes += read.badBytes;
    this.#logger?.warn(
      { code: 'BROKER_ERR_STORE_TORN_TAIL', path: segment.path, offset: read.goodEnd, bytes: read.badBytes },
      'store: cut a torn tail (a batch a crash interrupted, never acknowledged; or damage since)',
    );
    const fd = this.#fs.openSync(segment.path, 'r+');
    try {
      this.#fs.ftruncateSync(fd, read.goodEnd);
      this.#fs.fsyncSync(fd);
    } finally {
      this.#fs.closeSync(fd);
    }
  }

  /**
   * The segment's header record, or undefined when it has none that checks. A format newer than this broker reads is
   * refused before anything is removed: it may have been written by a newer version, and reading it as damage would
   * cut or delete what that version acknowledged.
   */
  #readHeader(segment: Segment): HeaderOp | undefined {
    const fs = this.#fs;
    const fd = fs.openSync(segment.path, 'r');
    let op: StoreOp;
    try {
      const buffer = Buffer.alloc(4096);
      const read = fs.readSync(fd, buffer, 0, buffer.length, 0);
      if (checkRecord(buffer, 0, read) !== 'ok') return undefined;
      op = decodeBody(buffer.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + buffer.readUInt32LE(0)));
    } catch {
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
    if (op.op !== 'header') return undefined;
    if (!(op.format >= 1 && op.format <= STORE_FORMAT)) {
      throw new BrokerError(
        'BROKER_ERR_STORE',
        `store segment ${segment.path} has format ${String(op.format)}; this broker reads formats 1 to ${STORE_FORMAT} (was it written by a newer version?)`,
      );
    }
    return op;
  }

  /**
   * Reads a segment in chunks and applies its records to `state`; stops at the first record (format 1) or frame
   * (format 2) that does not check. The header is a format 1 record in both.
   */
  #readSegment(segment: Segment, format: number, state: StoreState): SegmentRead {
    const fs = this.#fs;
    const fd = fs.openSync(segment.path, 'r');
    const decoder = new FrameDecoder();
    let snapshotEnd = false;
    const apply = (op: StoreOp): void => {
      if (op.op === 'snapshot-end') snapshotEnd = true;
      state.apply(op);
    };
    const sink: RecordSink = {
      op: apply,
      message: (id, topic, payload, qos, retain, properties, expiresAt, origin) =>
        state.loadMessage(id, topic, payload, qos, retain, properties, expiresAt, origin),
      enqueue: (clientId, entryId, messageId, qos, retain, subscriptionIds, sharedFilter) =>
        state.enqueue(clientId, entryId, messageId, qos, retain, subscriptionIds, sharedFilter),
      dequeue: (clientId, entryId) => state.dequeue(clientId, entryId),
    };
    try {
      const size = fs.fstatSync(fd).size;
      // Each chunk is read into memory of its own, never reused: the payloads of format 2 frames are views of it
      // (no copy per frame or message). A chunk stays in memory while a message in it is kept (see #unpinSparse).
      let buffer = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, Math.max(size, 1)));
      this.#chunkBytes += buffer.length;
      let fresh = true; // nothing decoded from `buffer` yet: it may be read into again
      let bufferStart = 0; // file offset of buffer[0]
      let filled = 0;
      let offset = 0; // file offset of the next record or frame
      const skipped: SegmentRead['skipped'] = [];
      const end = (): SegmentRead => {
        const badBytes = size - offset;
        return { snapshotEnd, goodEnd: offset, badBytes, badOffset: badBytes > 0 ? offset : undefined, skipped };
      };
      /**
       * A frame that does not check at `offset`: if a good one follows, the damage between is skipped (its records
       * are lost, the caller logs them) and reading goes on there; else the rest is a torn tail or damage to its end.
       */
      const skipDamage = (): boolean => {
        const next = nextGoodFrame(fs, fd, size, offset, format);
        if (next === undefined) return false;
        skipped.push({ offset, bytes: next - offset });
        offset = next;
        buffer = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, size - offset));
        this.#chunkBytes += buffer.length;
        fresh = true;
        bufferStart = offset;
        filled = 0;
        return true;
      };
      for (;;) {
        const at = offset - bufferStart;
        const status = checkRecord(buffer, at, filled - at);
        if (status === 'ok') {
          const bodyLength = buffer.readUInt32LE(at);
          const body = buffer.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + bodyLength);
          try {
            if (offset === 0 || format === 1) apply(decodeBody(body));
            else {
              decoder.decode(body, sink, true);
              fresh = false;
            }
          } catch (error) {
            throw this.#corrupt(segment, offset, `has a record that cannot be read (${errorText(error)})`);
          }
          offset += RECORD_HEADER_BYTES + bodyLength;
          continue;
        }
        if (status === 'bad' || bufferStart + filled >= size) {
          if (offset < size && skipDamage()) continue;
          return end();
        }
        // Short: move the partial record to the front and read more (growing for a record larger than the buffer).
        const partial = filled - at;
        const needed = partial >= 4 ? RECORD_HEADER_BYTES + buffer.readUInt32LE(at) : RECORD_HEADER_BYTES;
        if (offset + needed > size) {
          // A frame longer than what the file holds: torn, or a damaged length.
          if (skipDamage()) continue;
          return end();
        }
        const next =
          fresh && needed <= buffer.length
            ? buffer
            : Buffer.allocUnsafeSlow(Math.max(needed, Math.min(READ_CHUNK, size - offset)));
        if (next !== buffer) this.#chunkBytes += next.length;
        buffer.copy(next, 0, at, filled);
        fresh = true;
        buffer = next;
        bufferStart = offset;
        filled = partial;
        const read = fs.readSync(fd, buffer, filled, buffer.length - filled, bufferStart + filled);
        if (read === 0) return end();
        filled += read;
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Starts a new segment with a header (and, for a snapshot, the state) and makes it the append target. The previous
   * one's descriptor is closed unless `keepPrevious` (its caller still syncs it, and closes it).
   */
  #openSegment(
    snapshot: boolean,
    body: StoreOp[],
    number = (this.#segments.at(-1)?.number ?? 0) + 1,
    keepPrevious = false,
  ): Segment {
    const fs = this.#fs;
    const path = join(this.dir, segmentName(number));
    const fd = fs.openSync(path, 'wx');
    const header = encodeRecord({ op: 'header', format: STORE_FORMAT, segment: number, snapshot });
    let bytes = header;
    if (body.length > 0) {
      const encoder = new FrameEncoder(4096);
      encoder.begin();
      for (const op of body) encoder.add(op);
      bytes = Buffer.concat([header, encoder.finish()]);
    }
    try {
      const written = fs.writeSync(fd, bytes, 0, bytes.length, 0);
      if (written !== bytes.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
      fs.fsyncSync(fd);
      this.#syncDir();
    } catch (error) {
      fs.closeSync(fd);
      this.#unlink(path);
      throw error;
    }
    if (this.#fd >= 0 && !keepPrevious) fs.closeSync(this.#fd);
    this.#fd = fd;
    const segment = { number, path, bytes: bytes.length };
    this.#segments.push(segment);
    return segment;
  }

  async #syncDirAsync(): Promise<void> {
    const fd = this.#fs.openSync(this.dir, 'r');
    try {
      await this.#fs.fsync(fd);
    } finally {
      this.#fs.closeSync(fd);
    }
  }

  #syncDir(): void {
    const fd = this.#fs.openSync(this.dir, 'r');
    try {
      this.#fs.fsyncSync(fd);
    } finally {
      this.#fs.closeSync(fd);
    }
  }

  override attachLive(view: StoreLiveView): void {
    this.#view = view;
    this.state.dropEntries();
  }

  // ---------------------------------------------------------------- writing

  protected apply(op: StoreOp): void {
    this.#pending.push(op);
    if (this.#flushing) this.#issuedWhileWriting = true;
    else this.#schedule();
  }

  /** An operation came while the write loop ran: if the loop stops at a failed write, it gets an attempt of its own. */
  #issuedWhileWriting = false;

  #schedule(): void {
    if (!this.#scheduled && !this.#flushing) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  commit(): Promise<void> {
    // Nothing issued from now on can be made durable before a restart: every commit fails, not only the next one.
    if (this.#broken !== undefined && this.#pending.length === 0 && this.#current === undefined) {
      return Promise.reject(this.#fail(this.#broken));
    }
    // Only a failed batch is pending, waiting for room (no attempt scheduled): a commit fails now rather than wait.
    if (this.#waitingForRoom !== undefined && !this.#scheduled && !this.#flushing) {
      return Promise.reject(this.#waitingForRoom);
    }
    if (this.#pending.length > 0) {
      this.#next ??= deferred();
      return this.#next.promise;
    }
    if (this.#current !== undefined) return this.#current.promise;
    return Promise.resolve();
  }

  whenWritten(): Promise<void> {
    const upTo = this.operations;
    if (this.#writtenOps >= upTo) return Promise.resolve();
    // Some of them were dropped by a write that cannot be tried again (they are not counted): they never will be.
    if (this.#broken !== undefined) return Promise.reject(this.#fail(this.#broken));
    return new Promise<void>((resolve, reject) => {
      this.#writtenWaiters.push({ upTo, resolve, reject });
    });
  }

  /**
   * Operations durable, in issue order (a prefix of `operations`). One that could not be encoded counts too (it is
   * gone, not waiting); those a broken store dropped do not, so waiting for them fails.
   */
  #writtenOps = 0;
  #writtenWaiters: Array<{ upTo: number; resolve(): void; reject(error: Error): void }> = [];
  /** Set while a failed batch waits at the head of #pending for the disk to take writes again: its error. */
  #waitingForRoom: BrokerError | undefined;

  /**
   * `count` more operations are durable; or, with `failure`, they never will be (the store can write nothing more):
   * they are not counted, so whoever waits for them hears so, now and later.
   */
  #settleWritten(count: number, failure?: BrokerError): void {
    const waiters = this.#writtenWaiters;
    if (failure !== undefined) {
      this.#writtenWaiters = [];
      for (const waiter of waiters) waiter.reject(failure);
      return;
    }
    this.#writtenOps += count;
    if (waiters.length === 0) return;
    let done = 0;
    while (done < waiters.length && waiters[done]!.upTo <= this.#writtenOps) waiters[done++]!.resolve();
    if (done > 0) this.#writtenWaiters = waiters.slice(done);
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    if (this.#closed) return;
    void this.#flushLoop();
  };

  async #flushLoop(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      // A batch whose write failed is back at the head of #pending: the next attempt comes with the next operation
      // or when the disk has room again (#scheduleRecheck), not in a loop against a full disk.
      while (this.#pending.length > 0) {
        this.#issuedWhileWriting = false;
        if (!(await this.#writeBatch())) break;
      }
    } finally {
      this.#flushing = false;
      // Issued after the failure (what its holders undo, a new request): tried once more, and failing again, its
      // own commits hear so instead of waiting for space.
      if (this.#issuedWhileWriting && this.#pending.length > 0) this.#schedule();
    }
  }

  /** Whether the batch was written; false if it failed and waits at the head of #pending for another attempt. */
  async #writeBatch(): Promise<boolean> {
    const pending = this.#pending;
    let take = pending.length;
    const encoder = this.#encoder;
    let encodeError: unknown;
    encoder.begin();
    try {
      for (let i = 0; i < pending.length; i++) {
        encoder.add(pending[i]!);
        if (encoder.frameBytes >= this.#maxBatchBytes) {
          take = i + 1;
          break;
        }
      }
    } catch (error) {
      // Not reachable from the broker (MQTT strings fit the record fields); fails this batch rather than the loop.
      encodeError = error;
      take = pending.length;
    }
    const ops = take === pending.length ? pending : pending.slice(0, take);
    this.#pending = take === pending.length ? [] : pending.slice(take);
    let waiting: Deferred | undefined;
    if (this.#pending.length === 0) {
      waiting = this.#next;
      this.#next = undefined;
    }
    this.#current = waiting ?? deferred();
    /** The batch was written and its sync failed: whether it is on disk is unknown. */
    let unsure = false;
    /** Settles a snapshot frozen after this batch: true once the batch is durable, false if it cannot be. */
    let settleSnapshot: ((durable: boolean) => void) | undefined;
    try {
      if (encodeError !== undefined) throw encodeError;
      if (this.#broken !== undefined) throw this.#broken;
      this.#rotateIfDue();
      const segment = this.#segments.at(-1)!;
      const fd = this.#fd;
      const start = segment.bytes;
      const batch = encoder.finish();
      let written = 0;
      try {
        written = this.#fs.writeSync(fd, batch, 0, batch.length, start);
        if (written !== batch.length) {
          throw Object.assign(new Error(`short write ${written}/${batch.length}`), { code: 'ENOSPC' });
        }
      } catch (error) {
        this.#undo(segment, start);
        throw error;
      }
      segment.bytes += batch.length;
      this.#sinceSnapshot += batch.length;
      for (const op of ops) this.state.apply(op);
      this.counters.batches++;
      // Everything issued is written now (nothing is pending): the state, and the broker's view, are exactly what
      // the log holds up to here. A snapshot of this moment goes before the segment that appends move on to.
      if (this.#pending.length === 0 && this.#compactionDue()) {
        this.#tryCompaction(
          new Promise<boolean>((resolve) => {
            settleSnapshot = resolve;
          }),
        );
      }
      try {
        if (this.#sync === 'batch') {
          try {
            await this.#fs.fdatasync(fd);
          } catch (error) {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written since can be trusted.
            this.#broken = new Error(`fdatasync failed on ${segment.path}: ${errorText(error)}`, { cause: error });
            unsure = true;
            throw error;
          }
          this.counters.syncs++;
        }
        settleSnapshot?.(true);
      } finally {
        // A compaction moved appends to a new segment: this one's descriptor was kept for the sync above.
        if (fd !== this.#fd) this.#fs.closeSync(fd);
      }
      this.#checkFreeSpace(Date.now());
      this.#waitingForRoom = undefined;
      this.#settleWritten(ops.length);
      const done = this.#current;
      this.#current = undefined;
      done?.resolve();
      return true;
    } catch (error) {
      settleSnapshot?.(false);
      // The failed batch's commits reject in the microtasks that follow: what they drop (held QoS 2 deliveries,
      // still in the broker's view) must be gone before a snapshot reads the view.
      this.#failedThisTurn = true;
      setImmediate(() => {
        this.#failedThisTurn = false;
      });
      const failure = this.#fail(error, unsure);
      const done = this.#current;
      this.#current = undefined;
      // A write that failed left nothing of the batch in the log (#undo): its operations are tried again, ahead of
      // everything issued since, so the log stays a prefix of what the broker did in memory and never skips a
      // record (docs/durable-store.md, "What a failed write means"). Not after a failed sync (on disk or not: the
      // restart decides) or a failed cut: nothing more is written before a restart.
      const retry = this.#broken === undefined && encodeError === undefined;
      let later: Deferred | undefined;
      if (retry) {
        this.#pending = this.#pending.length === 0 ? ops : ops.concat(this.#pending);
        // Everything pending waits behind this batch now: its commits fail too, and callers ask again.
        later = this.#next;
        this.#next = undefined;
        this.#waitingForRoom = failure;
      } else {
        this.#waitingForRoom = undefined;
        this.#settleWritten(ops.length, this.#broken === undefined ? undefined : failure);
      }
      done?.reject(failure);
      later?.reject(failure);
      return !retry;
    }
  }

  /** Cuts the partial bytes of a failed write so that nothing of the batch can be replayed. */
  #undo(segment: Segment, start: number): void {
    try {
      this.#fs.ftruncateSync(this.#fd, start);
    } catch (error) {
      this.#broken = new Error(`cannot cut a failed write in ${segment.path}: ${errorText(error)}`, { cause: error });
    }
  }

  /** `unsure`: the batch was written, its sync failed (BROKER_ERR_STORE_SYNC); else nothing of it is in the log. */
  #fail(error: unknown, unsure = false): BrokerError {
    const path = this.#segments.at(-1)?.path ?? this.dir;
    const reason = `store write failed in ${path}: ${errorText(error)}`;
    if (this.#full === undefined) {
      this.#full = reason;
      this.#logger?.error(
        { code: 'BROKER_ERR_STORE_FULL', path, err: error },
        'store: refusing new messages until the disk has room again (acknowledgements pause)',
      );
      this.#scheduleRecheck();
    }
    return new BrokerError(unsure ? 'BROKER_ERR_STORE_SYNC' : 'BROKER_ERR_STORE_FULL', reason, { cause: error });
  }

  #checkFreeSpace(now: number): void {
    if (now - this.#lastFreeCheck < FREE_SPACE_CHECK_MS) return;
    this.#lastFreeCheck = now;
    let free: number;
    try {
      free = this.#fs.freeBytes(this.dir);
    } catch {
      return; // no statfs here: rely on write errors
    }
    if (free >= this.#reserveBytes || this.#full !== undefined) return;
    this.#full = `free space in ${this.dir} (${free} bytes) is below the store reserve (${this.#reserveBytes} bytes)`;
    this.#logger?.error(
      { code: 'BROKER_ERR_STORE_FULL', path: this.dir, free, reserve: this.#reserveBytes },
      'store: disk almost full, refusing new messages (acks and deletes go on)',
    );
    this.#scheduleRecheck();
  }

  /** While full, looks once a second whether space came back (twice the reserve, so it does not flap). */
  #scheduleRecheck(): void {
    if (this.#recheck !== undefined || this.#closed) return;
    this.#recheck = setInterval(() => {
      if (this.#broken !== undefined) return;
      let free = Number.POSITIVE_INFINITY;
      try {
        free = this.#fs.freeBytes(this.dir);
      } catch {
        // No statfs here: the next write finds out.
      }
      if (free < this.#reserveBytes * 2) return;
      this.#full = undefined;
      clearInterval(this.#recheck);
      this.#recheck = undefined;
      this.#logger?.info({ path: this.dir, free }, 'store: disk has room again, accepting messages');
      // A failed batch waiting for another attempt goes now, not with the next operation someone issues.
      if (this.#pending.length > 0) this.#schedule();
    }, FREE_SPACE_CHECK_MS);
    this.#recheck.unref();
  }

  #compactRequested = false;
  /** A batch failed and the event loop has not turned since (see #writeBatch). */
  #failedThisTurn = false;
  /** Bytes since the last snapshot at which compaction is due again (raised after a failed one). */
  #compactAt: number;
  /** The compaction writing its snapshot, if one runs. */
  #compaction: Promise<void> | undefined;
  #closing = false;

  #rotateIfDue(): void {
    if (this.#segments.at(-1)!.bytes >= this.#segmentBytes) {
      const next = this.#openSegment(false, []);
      this.#sinceSnapshot += next.bytes;
    }
  }

  /** Whether to compact now: asked for, or the log since the last snapshot is large and mostly dead. */
  #compactionDue(): boolean {
    if (this.#compaction !== undefined || this.#closing || this.#failedThisTurn) return false;
    if (this.#compactRequested) {
      this.#compactRequested = false;
      return true;
    }
    if (this.#sinceSnapshot < this.#compactAt) return false;
    if (this.#view === undefined) return this.state.liveBytes * 2 < this.#sinceSnapshot;
    // The live size comes from a walk over the broker's queues: done again only after another quarter of the
    // threshold is written, not every batch.
    const live = this.state.liveBytes + this.state.scanEntries(this.#view).bytes;
    if (live * 2 < this.#sinceSnapshot) return true;
    this.#compactAt = this.#sinceSnapshot + this.#compactMinBytes / 4;
    return false;
  }

  /** Starts a compaction after a written batch; one that cannot start fails alone, not the batch (written already). */
  #tryCompaction(batchDurable: Promise<boolean>): void {
    try {
      this.#startCompaction(batchDurable);
    } catch (error) {
      this.#compactAt = this.#sinceSnapshot + this.#compactMinBytes;
      this.#logger?.warn(
        { code: 'BROKER_ERR_STORE_COMPACT', path: this.dir, err: error },
        'store: compaction could not start; nothing was lost, retried later',
      );
    }
  }

  /**
   * Reserves the next segment number for a snapshot, moves appends to the one after it (so that replay order stays:
   * old segments, snapshot, newer appends), and freezes the state of everything written so far, which is everything
   * issued. The snapshot is then written under a temporary name in slices, one per event-loop turn, and renamed into
   * place only if the batch it was frozen after (`batchDurable`) was synced.
   */
  #startCompaction(batchDurable: Promise<boolean>): void {
    const before = this.#segments.slice();
    const number = before.at(-1)!.number + 1;
    // The previous segment's descriptor stays open: the batch just written to it is synced by the caller.
    const next = this.#openSegment(false, [], number + 1, true);
    const frozen = this.state.freeze(this.#view);
    this.#sinceSnapshot += next.bytes;
    const running = this.#writeSnapshot(number, frozen, before, batchDurable).finally(() => frozen.release());
    const settled = running.then(
      () => {
        this.#compactAt = this.#compactMinBytes;
      },
      (error: unknown) => {
        this.#compactAt = this.#sinceSnapshot + this.#compactMinBytes;
        if (this.#closing) return; // abandoned at shutdown: nothing to report
        this.#logger?.warn(
          { code: 'BROKER_ERR_STORE_COMPACT', path: join(this.dir, segmentName(number)), err: error },
          'store: compaction failed; nothing was lost (the older segments are kept), retried later',
        );
        throw error;
      },
    );
    settled.catch(() => {});
    this.#compaction = settled.finally(() => {
      this.#compaction = undefined;
    });
    this.#compaction.catch(() => {});
  }

  async #writeSnapshot(
    number: number,
    frozen: FrozenState,
    before: Segment[],
    batchDurable: Promise<boolean>,
  ): Promise<void> {
    const fs = this.#fs;
    const started = Date.now();
    const path = join(this.dir, segmentName(number));
    const temporary = `${path}${COMPACTING_SUFFIX}`;
    let bytes = 0;
    let renamed = false;
    let fd = fs.openSync(temporary, 'wx');
    try {
      // The header is a format 1 record; each slice after it is one frame.
      const header = encodeRecord({ op: 'header', format: STORE_FORMAT, segment: number, snapshot: true });
      const encoder = new FrameEncoder(Math.min(this.#compactSliceBytes * 2, 4 * 1024 * 1024));
      const writeBytes = (buffer: Buffer) => {
        const written = fs.writeSync(fd, buffer, 0, buffer.length, bytes);
        if (written !== buffer.length) {
          throw Object.assign(new Error(`short write ${written}/${buffer.length}`), { code: 'ENOSPC' });
        }
        bytes += buffer.length;
      };
      writeBytes(header);
      const add = (op: StoreOp) => encoder.add(op);
      const write = () => {
        writeBytes(encoder.finish());
        encoder.begin();
      };
      encoder.begin();
      let chunkBytes = 0;
      let sliceStart = performance.now();
      let count = 0;
      for (const op of frozen.ops()) {
        add(op);
        chunkBytes = encoder.frameBytes;
        if (chunkBytes < this.#compactSliceBytes && (++count & 63) !== 0) continue;
        if (chunkBytes < this.#compactSliceBytes && performance.now() - sliceStart < SLICE_MS) continue;
        write();
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.#closing) throw new Error('the store is closing');
        sliceStart = performance.now();
      }
      add({ op: 'snapshot-end' });
      write();
      await fs.fdatasync(fd);
      // Closed once: while this waits below, the descriptor number may be given to a segment the appends open, which
      // a second close here (on a failure below) would take from them.
      const done = fd;
      fd = -1;
      fs.closeSync(done);
      // The state was frozen after the last batch was written, before its sync: if that sync failed, the snapshot
      // would make durable what its publishers were told was not taken (and what the broker dropped since).
      if (!(await batchDurable)) throw new Error('the batch before the snapshot could not be made durable');
      // Complete and durable: it takes its segment name, and only once that is durable do the older ones go.
      fs.renameSync(temporary, path);
      renamed = true;
    } catch (error) {
      if (!renamed) {
        try {
          if (fd >= 0) fs.closeSync(fd);
        } catch {}
        this.#unlink(temporary);
      }
      throw error;
    }
    const snapshot: Segment = { number, path, bytes };
    try {
      await this.#syncDirAsync();
    } catch (error) {
      // Its rename may not be durable: keep the older segments too (replay picks the snapshot if it is there).
      const older = this.#segments.filter((segment) => segment.number < number);
      this.#segments = [...older, snapshot, ...this.#segments.filter((segment) => segment.number > number)];
      throw error;
    }
    this.#segments = [snapshot, ...this.#segments.filter((segment) => segment.number > number)];
    // Unlinking tens of MB and syncing the directory take milliseconds each: on the pool, not the event loop.
    for (const old of before) {
      await fs.unlink(old.path).catch((error: unknown) => {
        this.#logger?.warn(
          { code: 'BROKER_ERR_STORE', path: old.path, err: error },
          'could not remove an old store segment',
        );
      });
    }
    await this.#syncDirAsync();
    const previous = this.#sinceSnapshot;
    this.#sinceSnapshot = this.#segments.reduce((n, s) => n + s.bytes, 0);
    this.counters.compactions++;
    this.#logger?.info(
      { path, liveBytes: bytes, freedBytes: previous - this.#sinceSnapshot, ms: Date.now() - started },
      'store: compacted',
    );
  }

  /** Resolves once no compaction is running (one started by the size trigger runs beside the appends). */
  async compacted(): Promise<void> {
    await this.#compaction?.catch(() => undefined);
  }

  /** Compacts now (tests, and an operator wanting space back); resolves once the snapshot replaced the old log. */
  async compactNow(): Promise<void> {
    await this.#compaction?.catch(() => undefined);
    this.#compactRequested = true;
    // An empty session delete of a client id nobody can have makes sure a batch runs.
    this.deleteSession('');
    await this.commit();
    await this.#compaction;
  }

  size(): StoreSize {
    return {
      bytes: this.#segments.reduce((n, s) => n + s.bytes, 0),
      segments: this.#segments.length,
      messages: this.state.messages.size + (this.#view === undefined ? 0 : this.state.scanEntries(this.#view).messages),
      corruptRegions: this.counters.corruptRegions,
      corruptBytes: this.counters.corruptBytes,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    try {
      while (this.#pending.length > 0 || this.#flushing) {
        this.#schedule();
        // A write failing at shutdown leaves its batch (and what follows) out of the log, as a crash would: one
        // attempt, not a wait for a disk that may never have room.
        const written = await this.commit().then(
          () => true,
          () => false,
        );
        if (!written) break;
      }
      // A compaction in progress stops at its next slice and removes its unfinished snapshot.
      await this.#compaction?.catch(() => undefined);
    } finally {
      this.#closed = true;
      if (this.#recheck !== undefined) clearInterval(this.#recheck);
      if (this.#fd >= 0) this.#fs.closeSync(this.#fd);
      this.#fd = -1;
      this.#lock?.release();
      this.#lock = undefined;
    }
  }
}
