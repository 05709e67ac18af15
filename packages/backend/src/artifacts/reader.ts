// Reading stored artifacts for downloads: `<dir>/<sha256>`, content-addressed (files.ts writes them). Small artifacts
// are also kept in memory once read (a campaign sends the same bytes to every vehicle: without this each download
// cost a stat, an open, reads and a close on the file-system threads, for ten thousand vehicles all at once).
// Read-only, so the download worker thread can hold its own reader over the same directory.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface ArtifactReaderOptions {
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

export class ArtifactReader {
  /** Small artifacts' bytes by SHA-256, least recently served first. */
  private readonly hot = new Map<string, Buffer>();
  private hotBytes = 0;
  private readonly hotFileMaxBytes: number;
  private readonly hotTotalMaxBytes: number;
  /** One read per artifact however many downloads ask for it at once. */
  private readonly loading = new Map<string, Promise<StoredArtifact | undefined>>();
  /** Bumped by forget(): a read that started before a removal must not put the removed bytes back in memory. */
  private removals = 0;

  constructor(
    readonly dir: string,
    options: ArtifactReaderOptions = {},
  ) {
    this.hotFileMaxBytes = options.hotFileMaxBytes ?? 1024 * 1024;
    this.hotTotalMaxBytes = options.hotTotalMaxBytes ?? 64 * 1024 * 1024;
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
      const loaded = this.load(sha256).finally(() => {
        if (this.loading.get(sha256) === loaded) this.loading.delete(sha256);
      });
      pending = loaded;
      this.loading.set(sha256, pending);
    }
    return pending;
  }

  /** Stops holding an artifact's bytes: call it once its file is gone, so it is no longer served from memory. */
  forget(sha256: string): void {
    this.removals++;
    this.loading.delete(sha256);
    this.letGo(sha256);
  }

  private async load(sha256: string): Promise<StoredArtifact | undefined> {
    const removals = this.removals;
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
    if (removals !== this.removals) return { size: bytes.length, bytes };
    this.hot.set(sha256, bytes);
    this.hotBytes += bytes.length;
    for (const key of this.hot.keys()) {
      if (this.hotBytes <= this.hotTotalMaxBytes) break;
      this.letGo(key);
    }
    return { size: bytes.length, bytes };
  }

  private letGo(sha256: string): void {
    const held = this.hot.get(sha256);
    if (held === undefined) return;
    this.hot.delete(sha256);
    this.hotBytes -= held.length;
  }
}
