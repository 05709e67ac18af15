// The file-system calls the log store makes, behind an interface so tests can inject failures (a full disk, an I/O
// error on write or sync) without a real full disk.
import fs from 'node:fs';

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

export const nodeStoreFs: StoreFs = {
  mkdirSync: (path, options) => {
    fs.mkdirSync(path, options);
  },
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
