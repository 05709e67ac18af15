// Candidate (a): an append-only log of our own. One file, records framed as
//   [u32 bodyLength][u32 crc32(body)][body = u8 type | u16 idLength | id | payload]
// Group commit: records handed in during one event-loop turn (or up to maxDelayMs) are written with one write()
// and made durable with one fdatasync(); every caller's promise resolves only after that sync.
// Recovery scans the file and cuts it at the first record whose length or CRC does not check (a torn tail).
// Compaction rewrites live records into a new file, syncs it, renames it over the old one and syncs the directory.
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

export const RECORD_PUT = 1;
export const RECORD_DELETE = 2;
export const RECORD_SESSION = 3;

const HEADER_BYTES = 8;

function encodeRecord(type, id, payload) {
  const idBytes = Buffer.from(id, 'utf8');
  const payloadLength = payload ? payload.length : 0;
  const bodyLength = 1 + 2 + idBytes.length + payloadLength;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  buf.writeUInt32LE(bodyLength, 0);
  buf.writeUInt8(type, 8);
  buf.writeUInt16LE(idBytes.length, 9);
  idBytes.copy(buf, 11);
  if (payload) payload.copy(buf, 11 + idBytes.length);
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_BYTES)), 4);
  return buf;
}

function fdatasync(fd) {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function writeAll(fd, buffers, position) {
  return new Promise((resolve, reject) =>
    fs.writev(fd, buffers, position, (err, written) => {
      if (err) return reject(err);
      const expected = buffers.reduce((n, b) => n + b.length, 0);
      // A short write on a full disk comes back as a byte count, not an error.
      if (written !== expected) {
        const short = new Error(`short write ${written}/${expected}`);
        short.code = 'ENOSPC';
        return reject(short);
      }
      resolve();
    }),
  );
}

export class LogStore {
  /** @param {{ dir: string, sync?: boolean, maxDelayMs?: number, compactRatio?: number, compactMinBytes?: number }} options */
  constructor(options) {
    this.dir = options.dir;
    this.file = path.join(options.dir, 'store.log');
    this.sync = options.sync !== false;
    this.maxDelayMs = options.maxDelayMs ?? 0;
    this.compactRatio = options.compactRatio ?? 0.5;
    this.compactMinBytes = options.compactMinBytes ?? 4 * 1024 * 1024;
    this.autoCompact = options.autoCompact !== false;
    // Appending grows the file, and on ext4 an fdatasync that must also persist a new size waits for a journal
    // commit; writing zeros ahead makes most syncs data-only. Zeros read back as "no record" (length 0).
    this.preallocateBytes = options.preallocateBytes ?? 4 * 1024 * 1024;
    this.allocated = 0;
    this.inlineWrite = options.inlineWrite === true;
    /** id -> { offset, length } of the live PUT/SESSION record */
    this.index = new Map();
    this.liveBytes = 0;
    this.end = 0;
    this.queue = [];
    this.flushing = false;
    this.scheduled = false;
    this.syncCount = 0;
    this.writeCount = 0;
    this.truncatedBytes = 0;
    this.failed = undefined;
  }

  open() {
    fs.mkdirSync(this.dir, { recursive: true });
    this.fd = fs.openSync(this.file, fs.existsSync(this.file) ? 'r+' : 'w+');
    const data = fs.readFileSync(this.file);
    let offset = 0;
    while (offset + HEADER_BYTES <= data.length) {
      const bodyLength = data.readUInt32LE(offset);
      if (bodyLength < 3 || offset + HEADER_BYTES + bodyLength > data.length) break;
      const body = data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + bodyLength);
      if (crc32(body) !== data.readUInt32LE(offset + 4)) break;
      const type = body[0];
      const idLength = body.readUInt16LE(1);
      const id = body.toString('utf8', 3, 3 + idLength);
      const recordLength = HEADER_BYTES + bodyLength;
      this.applyToIndex(type, id, offset, recordLength);
      offset += recordLength;
    }
    const tail = data.subarray(offset);
    let garbageEnd = tail.length;
    while (garbageEnd > 0 && tail[garbageEnd - 1] === 0) garbageEnd--;
    if (garbageEnd > 0) {
      // Torn tail: whatever follows the last good record was never acknowledged; zero it so it can never parse.
      this.truncatedBytes = garbageEnd;
      fs.writeSync(this.fd, Buffer.alloc(garbageEnd), 0, garbageEnd, offset);
      fs.fdatasyncSync(this.fd);
    }
    this.end = offset;
    this.allocated = data.length;
    return this;
  }

  applyToIndex(type, id, offset, length) {
    const previous = this.index.get(id);
    if (previous) this.liveBytes -= previous.length;
    if (type === RECORD_DELETE) {
      this.index.delete(id);
    } else {
      this.index.set(id, { offset, length });
      this.liveBytes += length;
    }
  }

  put(id, payload) {
    return this.enqueue(RECORD_PUT, id, payload);
  }

  putSession(id, payload) {
    return this.enqueue(RECORD_SESSION, id, payload);
  }

  delete(id) {
    return this.enqueue(RECORD_DELETE, id, undefined);
  }

  enqueue(type, id, payload) {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ type, id, buf: encodeRecord(type, id, payload), resolve, reject });
      this.schedule();
    });
  }

  schedule() {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (this.maxDelayMs > 0) setTimeout(run, this.maxDelayMs);
    else setImmediate(run);
  }

  async flush() {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue;
    this.queue = [];
    const start = this.end;
    try {
      const batchBytes = batch.reduce((n, r) => n + r.buf.length, 0);
      if (this.preallocateBytes > 0 && start + batchBytes > this.allocated) {
        const grow = Math.max(this.preallocateBytes, start + batchBytes - this.allocated);
        try {
          await writeAll(this.fd, [Buffer.alloc(grow)], this.allocated);
          this.allocated += grow;
        } catch (err) {
          // Not room for a whole chunk of zeros: append this batch alone; its own write says if even that fails.
          if (err.code !== 'ENOSPC') throw err;
          fs.ftruncateSync(this.fd, this.allocated);
        }
      }
      const buffers = batch.map((r) => r.buf);
      // A write into the page cache is a few µs; doing it inline saves one thread-pool round trip per batch.
      if (this.inlineWrite) {
        const written = fs.writevSync(this.fd, buffers, start);
        if (written !== batchBytes)
          throw Object.assign(new Error(`short write ${written}/${batchBytes}`), { code: 'ENOSPC' });
      } else {
        await writeAll(this.fd, buffers, start);
      }
      this.writeCount++;
      if (this.sync) {
        await fdatasync(this.fd);
        this.syncCount++;
      }
      let offset = start;
      this.allocated = Math.max(this.allocated, start + batchBytes);
      for (const r of batch) {
        this.applyToIndex(r.type, r.id, offset, r.buf.length);
        offset += r.buf.length;
      }
      this.end = offset;
      for (const r of batch) r.resolve();
    } catch (err) {
      // Nothing of this batch is acknowledged; cut off any partial bytes so the next batch does not land after garbage.
      try {
        if (this.allocated > start)
          fs.writeSync(this.fd, Buffer.alloc(this.allocated - start), 0, this.allocated - start, start);
        else fs.ftruncateSync(this.fd, start);
      } catch {
        // The cut will happen at the next open (CRC check) if it cannot happen now.
      }
      const error = new Error(`store write failed in ${this.file}: ${err.message}`, { cause: err });
      error.code = err.code;
      for (const r of batch) r.reject(error);
    } finally {
      this.flushing = false;
    }
    if (this.autoCompact && this.needsCompaction()) this.compact();
    if (this.queue.length > 0) this.schedule();
  }

  needsCompaction() {
    return this.end >= this.compactMinBytes && this.liveBytes < this.end * (1 - this.compactRatio);
  }

  /** Synchronous rewrite of the live records; only between flushes (the queue keeps collecting meanwhile). */
  compact() {
    const tmp = `${this.file}.compact`;
    const out = fs.openSync(tmp, 'w');
    const entries = [...this.index.entries()].sort((a, b) => a[1].offset - b[1].offset);
    const newIndex = new Map();
    let position = 0;
    const chunk = [];
    let chunkBytes = 0;
    const drain = () => {
      if (chunk.length === 0) return;
      fs.writevSync(out, chunk);
      chunk.length = 0;
      chunkBytes = 0;
    };
    for (const [id, loc] of entries) {
      const buf = Buffer.allocUnsafe(loc.length);
      fs.readSync(this.fd, buf, 0, loc.length, loc.offset);
      chunk.push(buf);
      chunkBytes += loc.length;
      newIndex.set(id, { offset: position, length: loc.length });
      position += loc.length;
      if (chunkBytes > 1 << 20) drain();
    }
    drain();
    fs.fdatasyncSync(out);
    fs.closeSync(out);
    fs.renameSync(tmp, this.file);
    const dirFd = fs.openSync(this.dir, 'r');
    fs.fsyncSync(dirFd);
    fs.closeSync(dirFd);
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'r+');
    this.index = newIndex;
    this.end = position;
    this.allocated = position;
    this.liveBytes = position;
    this.syncCount += 2;
  }

  read(id) {
    const loc = this.index.get(id);
    if (!loc) return undefined;
    const buf = Buffer.allocUnsafe(loc.length);
    fs.readSync(this.fd, buf, 0, loc.length, loc.offset);
    const idLength = buf.readUInt16LE(9);
    return buf.subarray(11 + idLength);
  }

  ids() {
    return this.index.keys();
  }

  async close() {
    while (this.flushing || this.queue.length > 0) {
      await new Promise((r) => setImmediate(r));
      if (!this.flushing && this.queue.length > 0) await this.flush();
    }
    fs.closeSync(this.fd);
  }
}
