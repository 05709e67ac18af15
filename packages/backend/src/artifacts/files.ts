// Artifact bytes, stored by content: `<dir>/<sha256>`. An upload streams into a temp file while it is hashed, is
// fsynced, then renamed to its hash, so a crash never leaves a half-written file under a valid name and the same
// bytes uploaded twice land on the same file. Small artifacts are also kept in memory once read (a campaign
// sends the same bytes to every vehicle: without this each download cost a stat, an open, reads and a close on the
// file-system threads, for ten thousand vehicles all at once).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type ArtifactBytes, BackendError } from '../api.js';

export interface ArtifactFilesOptions {
  /** Artifacts up to this size are kept in memory after their first download (default 1 MiB) ... */
  hotFileMaxBytes?: number;
  /** ... up to this many bytes in all; the least recently served go first (default 64 MiB). */
  hotTotalMaxBytes?: number;
}

/** A stored artifact for serving: its size, and its bytes when it is small enough to be held in memory. */
export interface StoredArtifact {
  size: number;
  bytes?: Buffer;
}

export class ArtifactFiles {
  private readonly tmpDir: string;
  /** Small artifacts' bytes by SHA-256, least recently served first. */
  private readonly hot = new Map<string, Buffer>();
  private hotBytes = 0;
  private readonly hotFileMaxBytes: number;
  private readonly hotTotalMaxBytes: number;
  /** One read per artifact however many downloads ask for it at once. */
  private readonly loading = new Map<string, Promise<StoredArtifact | undefined>>();

  constructor(
    readonly dir: string,
    options: ArtifactFilesOptions = {},
  ) {
    this.hotFileMaxBytes = options.hotFileMaxBytes ?? 1024 * 1024;
    this.hotTotalMaxBytes = options.hotTotalMaxBytes ?? 64 * 1024 * 1024;
    this.tmpDir = join(dir, 'tmp');
    try {
      mkdirSync(this.tmpDir, { recursive: true });
      // Leftovers of uploads interrupted by a crash.
      for (const name of readdirSync(this.tmpDir)) rmSync(join(this.tmpDir, name), { force: true });
    } catch (e) {
      throw new BackendError('OTA_ERR_STORE', `cannot use the artifact directory ${dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  pathOf(sha256: string): string {
    return join(this.dir, sha256);
  }

  /** Size of the stored file, or undefined when it is missing. */
  async sizeOf(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  /**
   * The artifact for serving, or undefined when its file is missing. A small one comes with its bytes, read once
   * and checked against its hash (bytes that do not match are not kept: they are streamed from the file as they
   * are, and the vehicle's own hash check refuses them).
   */
  async open(sha256: string): Promise<StoredArtifact | undefined> {
    const bytes = this.hot.get(sha256);
    if (bytes !== undefined) {
      this.hot.delete(sha256);
      this.hot.set(sha256, bytes);
      return { size: bytes.length, bytes };
    }
    let pending = this.loading.get(sha256);
    if (pending === undefined) {
      pending = this.load(sha256).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, pending);
    }
    return pending;
  }

  private async load(sha256: string): Promise<StoredArtifact | undefined> {
    const size = await this.sizeOf(sha256);
    if (size === undefined) return undefined;
    if (size > this.hotFileMaxBytes) return { size };
    let bytes: Buffer;
    try {
      bytes = await readFile(this.pathOf(sha256));
    } catch {
      return undefined;
    }
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) return { size };
    this.hot.set(sha256, bytes);
    this.hotBytes += bytes.length;
    for (const key of this.hot.keys()) {
      if (this.hotBytes <= this.hotTotalMaxBytes) break;
      this.letGo(key);
    }
    return { size: bytes.length, bytes };
  }

  /** Stops holding an artifact's bytes in memory. */
  private letGo(sha256: string): void {
    const held = this.hot.get(sha256);
    if (held === undefined) return;
    this.hot.delete(sha256);
    this.hotBytes -= held.length;
  }

  /** Writes the bytes, returns their SHA-256 and size. `maxBytes` bounds an upload. */
  async put(bytes: ArtifactBytes, maxBytes = Number.MAX_SAFE_INTEGER): Promise<{ sha256: string; size: number }> {
    const tmp = join(this.tmpDir, `${randomBytes(12).toString('hex')}.part`);
    const hash = createHash('sha256');
    let size = 0;
    let handle: FileHandle | undefined;
    try {
      handle = await open(tmp, 'wx', 0o644);
      const write = async (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > maxBytes) {
          throw new BackendError('OTA_ERR_VALIDATION', `artifact larger than ${maxBytes} bytes`, { field: 'body' });
        }
        hash.update(chunk);
        await (handle as FileHandle).write(chunk);
      };
      if (bytes instanceof Uint8Array) await write(bytes);
      else if (Symbol.asyncIterator in bytes) for await (const chunk of bytes) await write(chunk);
      else for (const chunk of bytes) await write(chunk);
      await handle.sync();
      await handle.close();
      handle = undefined;
      const sha256 = hash.digest('hex');
      await rename(tmp, this.pathOf(sha256));
      await syncDir(this.dir);
      return { sha256, size };
    } catch (e) {
      await handle?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (e instanceof BackendError) throw e;
      throw new BackendError('OTA_ERR_STORE', `storing an artifact in ${this.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  async remove(sha256: string): Promise<void> {
    this.letGo(sha256);
    await unlink(this.pathOf(sha256)).catch(() => undefined);
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
