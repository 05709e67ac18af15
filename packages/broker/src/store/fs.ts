// The file-system calls the log store makes, behind an interface so tests can inject failures (a full disk, an I/O
// error on write or sync) without a real full disk.
import fs from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface StoreFs {
  mkdirSync(path: string, options: { recursive: true }): void;
  readdirSync(path: string): string[];
  openSync(path: string, flags: string): number;
  closeSync(fd: number): void;
  fstatSync(fd: number): { size: number };
  readSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  /** Returns the bytes written; fewer than asked means the disk is full. */
  writeSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  ftruncateSync(fd: number, length: number): void;
  /** On the libuv pool: the broker keeps serving while the disk syncs. */
  fdatasync(fd: number): Promise<void>;
  fsyncSync(fd: number): void;
  /** On the libuv pool: compaction syncs the directory and removes old segments without holding the event loop. */
  fsync(fd: number): Promise<void>;
  unlink(path: string): Promise<void>;
  unlinkSync(path: string): void;
  /** Atomic replace: a finished compaction snapshot takes its segment name. */
  renameSync(from: string, to: string): void;
  /** Free bytes for unprivileged writers on the file system holding `path`. */
  freeBytes(path: string): number;
}

/**
 * `mkdir -p`, one level at a time: Node 20's recursive mkdirSync loops for ever on a path under /proc (a data_dir of
 * /proc/nope hung start-up at 100 % CPU, deaf to SIGTERM, instead of failing with the path).
 */
function makeDirectories(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; ) {
    const stat = fs.statSync(dir, { throwIfNoEntry: false });
    if (stat !== undefined) {
      if (!stat.isDirectory()) throw Object.assign(new Error(`not a directory: ${dir}`), { code: 'ENOTDIR' });
      break;
    }
    missing.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (const dir of missing.reverse()) {
    try {
      fs.mkdirSync(dir);
    } catch (error) {
      // Made meanwhile by someone else: as good.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

export const nodeStoreFs: StoreFs = {
  mkdirSync: (path) => makeDirectories(path),
  readdirSync: (path) => fs.readdirSync(path),
  openSync: (path, flags) => fs.openSync(path, flags),
  closeSync: (fd) => fs.closeSync(fd),
  fstatSync: (fd) => fs.fstatSync(fd),
  readSync: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  writeSync: (fd, buffer, offset, length, position) => fs.writeSync(fd, buffer, offset, length, position),
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  fdatasync: (fd) =>
    new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  fsync: (fd) => new Promise<void>((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve()))),
  unlink: (path) =>
    new Promise<void>((resolve, reject) => fs.unlink(path, (error) => (error ? reject(error) : resolve()))),
  unlinkSync: (path) => fs.unlinkSync(path),
  renameSync: (from, to) => fs.renameSync(from, to),
  freeBytes: (path) => {
    const stats = fs.statfsSync(path);
    return stats.bavail * stats.bsize;
  },
};
