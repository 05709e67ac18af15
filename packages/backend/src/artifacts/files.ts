// Artifact bytes, stored by content: `<dir>/<sha256>`. An upload streams into a temp file while it is hashed, is
// fsynced, then renamed to its hash, so a crash never leaves a half-written file under a valid name and the same
// bytes uploaded twice land on the same file. Reading (and the memory cache of small artifacts) is reader.ts's.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type ArtifactBytes, BackendError } from '../api.js';
import { ArtifactReader, type ArtifactReaderOptions } from './reader.js';

export type { StoredArtifact } from './reader.js';

export interface ArtifactFilesOptions extends ArtifactReaderOptions {
  /** Told after an artifact's file is removed (the download worker drops its copy of the bytes); awaited. */
  onRemoved?: (sha256: string) => void | Promise<void>;
}

export class ArtifactFiles extends ArtifactReader {
  private readonly tmpDir: string;
  private readonly onRemoved: ((sha256: string) => void | Promise<void>) | undefined;

  constructor(dir: string, options: ArtifactFilesOptions = {}) {
    super(dir, options);
    this.onRemoved = options.onRemoved;
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
    await unlink(this.pathOf(sha256)).catch(() => undefined);
    this.forget(sha256);
    await this.onRemoved?.(sha256);
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
