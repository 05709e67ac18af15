// The A/B slots on disk and the artifact checks: one directory per slot under the agent's state directory. A new
// version goes into the inactive slot (the download is moved there, never copied, so a slot holds one image) and
// the slot's meta.json, written last and atomically, says what the slot holds.
import { createReadStream } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkArtifact, type Manifest } from '@otalink/ota';
import { createSha256 } from '@otalink/ota/node';
import type { SlotName } from './state.js';

export interface SlotMeta {
  version: string;
  sha256: string;
  artifactId: string;
}

export class SlotStore {
  constructor(
    readonly stateDir: string,
    private readonly fsync = true,
  ) {}

  /** Where the artifact is downloaded to (one at a time: the agent runs one execution at a time). */
  get downloadPath(): string {
    return join(this.stateDir, 'download.part');
  }

  slotDir(slot: SlotName): string {
    return join(this.stateDir, 'slots', slot);
  }

  /**
   * SHA-256 and size of the downloaded file, streamed (never the whole artifact in memory), checked against it.
   * Throws when the file cannot be read, a vanished one included: that says nothing about the artifact.
   */
  async verifyDownload(manifest: Pick<Manifest, 'size' | 'sha256'>) {
    const actual = await hashFile(this.downloadPath, { missingIsEmpty: false });
    return checkArtifact(actual, manifest);
  }

  /**
   * Moves the verified download into `slot`. Idempotent, so a restart in the middle runs it again: when the
   * download is already gone, an image in the slot whose SHA-256 and size match counts as installed.
   */
  async install(slot: SlotName, manifest: Manifest): Promise<void> {
    const dir = this.slotDir(slot);
    const image = join(dir, 'image.bin');
    // The meta goes first, so a kill before the new meta is written never leaves the old meta naming the new image.
    await removeFile(join(dir, 'meta.json'));
    try {
      await rename(this.downloadPath, image);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw e;
      // ENOENT: the download is gone (a restart after the move) or the slot directory is not there yet.
      if (await exists(this.downloadPath)) {
        await mkdir(dir, { recursive: true });
        await rename(this.downloadPath, image);
      } else {
        // The meta was just removed, so an image already in the slot is only trusted once its hash matches.
        if (!(await exists(image))) throw new Error('the verified download is gone and the slot does not hold it');
        const actual = await hashFile(image);
        if (!checkArtifact(actual, manifest).ok) {
          throw new Error('the verified download is gone and the slot does not hold it');
        }
      }
    }
    await this.writeMeta(slot, manifest);
  }

  async readMeta(slot: SlotName): Promise<SlotMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(this.slotDir(slot), 'meta.json'), 'utf8')) as SlotMeta;
    } catch {
      return undefined;
    }
  }

  /** The default health check of a freshly booted slot: it holds exactly the artifact the manifest names. */
  async checkSlot(slot: SlotName, manifest: Manifest): Promise<{ ok: boolean; text?: string }> {
    const meta = await this.readMeta(slot);
    if (meta === undefined) return { ok: false, text: `slot ${slot} holds nothing` };
    if (meta.sha256 !== manifest.sha256 || meta.version !== manifest.version) {
      return { ok: false, text: `slot ${slot} holds ${meta.version}, not ${manifest.version}` };
    }
    return { ok: true };
  }

  async discardDownload(): Promise<void> {
    // One unlink in the usual case; whatever else took the file's place (a directory) goes too, so the next
    // download can start.
    if (!(await removeFile(this.downloadPath))) await rm(this.downloadPath, { force: true, recursive: true });
  }

  async discardSlot(slot: SlotName): Promise<void> {
    await rm(this.slotDir(slot), { recursive: true, force: true });
  }

  private async writeMeta(slot: SlotName, manifest: Manifest): Promise<void> {
    const meta: SlotMeta = { version: manifest.version, sha256: manifest.sha256, artifactId: manifest.artifactId };
    const path = join(this.slotDir(slot), 'meta.json');
    const file = await open(`${path}.tmp`, 'w');
    try {
      await file.writeFile(JSON.stringify(meta));
      if (this.fsync) await file.sync();
    } finally {
      await file.close();
    }
    await rename(`${path}.tmp`, path);
  }
}

/** SHA-256 and size of a file; a missing file counts as empty unless `missingIsEmpty` is false (then it throws). */
export async function hashFile(
  path: string,
  options: { missingIsEmpty?: boolean } = {},
): Promise<{ size: number; sha256: string }> {
  const hash = createSha256();
  let size = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || options.missingIsEmpty === false) throw e;
  }
  return { size, sha256: hash.digestHex() };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Unlinks a file; true when it is gone (a missing file included), false when the path is something else. */
async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'EISDIR' || code === 'EPERM') return false;
    throw e;
  }
}
