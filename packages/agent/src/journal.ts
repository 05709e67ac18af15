// The agent's durable memory: one JSON file replaced atomically (write a temporary file, fsync it, rename it over
// the journal, fsync the directory), so a kill or power loss at any instant leaves either the old or the new state,
// never a torn one.
import { type FileHandle, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentState } from './state.js';

export const JOURNAL_FILE = 'journal.json';

export class AgentError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
  }
}

export interface JournalOptions {
  /** fsync the file and the directory (default true). The simulator may turn it off for 10 000 vehicles. */
  fsync?: boolean;
}

export class Journal {
  private readonly path: string;
  private readonly tmpPath: string;
  private readonly fsync: boolean;
  /** Writes are serialised so a slow fsync can never let an older state overwrite a newer one. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    options: JournalOptions = {},
  ) {
    this.path = join(dir, JOURNAL_FILE);
    this.tmpPath = join(dir, `${JOURNAL_FILE}.tmp`);
    this.fsync = options.fsync ?? true;
  }

  /** The last state written, or undefined for a new vehicle. Throws AGENT_ERR_JOURNAL if it cannot be read. */
  async read(): Promise<AgentState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AgentError('AGENT_ERR_JOURNAL', `cannot read ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      // Cannot happen with rename-based writes unless the disk lies; refuse rather than guess.
      throw new AgentError('AGENT_ERR_JOURNAL', `${this.path} is not valid JSON`, { cause: e });
    }
    if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== 1) {
      throw new AgentError('AGENT_ERR_JOURNAL', `${this.path} has an unknown format`);
    }
    return value as AgentState;
  }

  write(state: AgentState): Promise<void> {
    const text = JSON.stringify(state);
    const next = this.chain.then(() => this.writeNow(text));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async writeNow(text: string): Promise<void> {
    let file: FileHandle;
    try {
      file = await open(this.tmpPath, 'w');
    } catch (e) {
      // The directory is made when missing rather than before every write: a fleet process writes thousands.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await mkdir(this.dir, { recursive: true });
      file = await open(this.tmpPath, 'w');
    }
    try {
      await file.writeFile(text);
      if (this.fsync) await file.sync();
    } finally {
      await file.close();
    }
    await rename(this.tmpPath, this.path);
    if (this.fsync) {
      const dir = await open(this.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }
}
