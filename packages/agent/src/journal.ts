// The agent's durable memory: an append-only log of whole states, one line each (`<JSON>\t<CRC-32 hex>\n`); the last
// line whose CRC checks is the state. A step costs one append (and an fdatasync) on a file kept open instead of a
// file replacement (open, write, close, rename: 7x the CPU, and in the simulator that is 10 000 vehicles' worth).
// A torn last line from a crash fails its CRC and the state before it stands; appends never touch earlier lines.
// Once the log passes COMPACT_BYTES, or when it cannot safely be appended to (new, torn tail, failed append), the
// next state goes into a fresh file that replaces the log atomically (temporary file, fsync, rename, fsync of the
// directory), so a kill or power loss at any instant leaves an old or the new state, never none.
import { type FileHandle, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { AgentState } from './state.js';

export const JOURNAL_FILE = 'journal.log';
/** Earlier agents replaced this one JSON document per step; it is read when no log exists yet. */
export const LEGACY_JOURNAL_FILE = 'journal.json';
/** The log is rewritten with only the current state once it is this long (a state is ~1-3 KB). */
export const COMPACT_BYTES = 64 * 1024;

const NEWLINE = 0x0a;
const TAB = 0x09;

/**
 * By default at most this many journals of one process hold their log open. A fleet simulator runs thousands of
 * agents in one process, whose open-files limit their sockets share: past it, the journal written least recently
 * lets go of its file and opens it again (to append) at its next write.
 */
export const MAX_OPEN_JOURNALS = 1024;
let maxOpenJournals = MAX_OPEN_JOURNALS;
/** The journals holding their log open, least recently written first. */
const openJournals = new Set<Journal>();

/**
 * Sets how many journals of this process may hold their log open (a simulator that knows its file budget raises
 * it: a cap below the number of agents writing in turn makes every write reopen its log).
 */
export function setMaxOpenJournals(count: number): void {
  maxOpenJournals = Math.max(1, Math.floor(count));
}

export class AgentError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
  }
}

export interface JournalOptions {
  /** fsync appends, the compacted file and the directory (default true). The simulator turns it off. */
  fsync?: boolean;
}

export class Journal {
  private readonly path: string;
  private readonly tmpPath: string;
  private readonly legacyPath: string;
  private readonly fsync: boolean;
  /** Writes are serialised so a slow fsync can never let an older state overwrite a newer one. */
  private chain: Promise<void> = Promise.resolve();
  /** The log, open for appending, once this instance knows it ends with an intact line. */
  private file: FileHandle | undefined;
  /** The log's length: what is appended to, and what says when to compact. */
  private bytes = 0;
  /** While the log is closed: it ends exactly after an intact line (read() found it so, or it was let go). */
  private appendable = false;
  private closed = false;
  /** read() took the state from an earlier agent's journal.json, which the first compaction then removes. */
  private legacyRead = false;

  constructor(
    readonly dir: string,
    options: JournalOptions = {},
  ) {
    this.path = join(dir, JOURNAL_FILE);
    this.tmpPath = join(dir, `${JOURNAL_FILE}.tmp`);
    this.legacyPath = join(dir, LEGACY_JOURNAL_FILE);
    this.fsync = options.fsync ?? true;
  }

  /** The last state written, or undefined for a new vehicle. Throws AGENT_ERR_JOURNAL if it cannot be read. */
  async read(): Promise<AgentState | undefined> {
    const log = await this.readOptional(this.path);
    if (log !== undefined) {
      const last = lastIntactRecord(log);
      if (last === undefined) {
        // Every line we write is synced before the next one is appended: no intact line means the disk lies.
        throw new AgentError('AGENT_ERR_JOURNAL', `${this.path} holds no intact record`);
      }
      this.bytes = last.end;
      this.appendable = last.end === log.length;
      return checkFormat(last.value, this.path);
    }
    const legacy = await this.readOptional(this.legacyPath);
    if (legacy === undefined) return undefined;
    this.legacyRead = true;
    let value: unknown;
    try {
      value = JSON.parse(legacy.toString('utf8'));
    } catch (e) {
      throw new AgentError('AGENT_ERR_JOURNAL', `${this.legacyPath} is not valid JSON`, { cause: e });
    }
    return checkFormat(value, this.legacyPath);
  }

  write(state: AgentState): Promise<void> {
    const json = Buffer.from(JSON.stringify(state));
    const line = Buffer.allocUnsafe(json.length + 10);
    json.copy(line);
    line[json.length] = TAB;
    line.write(crc32(json).toString(16).padStart(8, '0'), json.length + 1, 'latin1');
    line[json.length + 9] = NEWLINE;
    return this.enqueue(() => this.writeNow(line));
  }

  /** Runs `step` after the steps in hand; a failed step does not stop the ones after it. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Waits for the writes in hand and lets go of the file (a lifetime's end; a killed one too). */
  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    openJournals.delete(this);
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
  }

  /** Marks this journal as the latest written; past the cap the least recent one lets go of its file. */
  private touch(): void {
    openJournals.delete(this);
    openJournals.add(this);
    if (openJournals.size <= maxOpenJournals) return;
    const oldest = openJournals.values().next().value as Journal;
    openJournals.delete(oldest);
    oldest.letGo();
  }

  /** Closes the log after the writes in hand; it ends with an intact line, so the next write appends to it. */
  private letGo(): void {
    void this.enqueue(async () => {
      const file = this.file;
      if (file === undefined || openJournals.has(this)) return;
      this.file = undefined;
      this.appendable = true;
      await file.close();
    });
  }

  private async writeNow(line: Buffer): Promise<void> {
    if (this.closed) throw new AgentError('AGENT_ERR_JOURNAL', `the journal ${this.path} is closed`);
    const fits = this.bytes + line.length <= COMPACT_BYTES;
    if (this.file === undefined && this.appendable && fits) this.file = await open(this.path, 'a');
    this.appendable = false;
    if (this.file === undefined || !fits) return this.compact(line);
    try {
      await this.file.writeFile(line);
      if (this.fsync) await this.file.datasync();
      this.bytes += line.length;
      this.touch();
    } catch (e) {
      // Part of the line may be on disk: the next state goes into a fresh file rather than after a torn line.
      await this.dropFile();
      throw e;
    }
  }

  /** Replaces the log with a file holding only `line`, atomically, and keeps the new log open for appending. */
  private async compact(line: Buffer): Promise<void> {
    await this.dropFile();
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
      await file.writeFile(line);
      if (this.fsync) await file.sync();
    } finally {
      await file.close();
    }
    await rename(this.tmpPath, this.path);
    if (this.fsync) await syncDir(this.dir);
    // The log now wins over an earlier agent's journal.json; removing it is tidiness, not correctness.
    if (this.legacyRead) await rm(this.legacyPath, { force: true });
    this.legacyRead = false;
    this.file = await open(this.path, 'a');
    this.bytes = line.length;
    this.touch();
  }

  private async dropFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    openJournals.delete(this);
    await file?.close().catch(() => undefined);
  }

  private async readOptional(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AgentError('AGENT_ERR_JOURNAL', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The last line of `log` whose CRC checks and whose JSON parses, with the offset just after it. */
function lastIntactRecord(log: Buffer): { value: unknown; end: number } | undefined {
  let end = log.length;
  // A torn tail has no newline yet: it is skipped like any line that fails its check.
  if (end > 0 && log[end - 1] !== NEWLINE) end = log.lastIndexOf(NEWLINE, end - 1) + 1;
  while (end > 0) {
    // (Buffer#lastIndexOf counts a negative offset from the end: a blank first line must not wrap around.)
    const start = end >= 2 ? log.lastIndexOf(NEWLINE, end - 2) + 1 : 0;
    const tab = end - 10;
    if (tab >= start && log[tab] === TAB) {
      const json = log.subarray(start, tab);
      const crc = Number.parseInt(log.toString('latin1', tab + 1, tab + 9), 16);
      if (crc === crc32(json)) {
        try {
          return { value: JSON.parse(json.toString('utf8')), end };
        } catch {
          // A CRC match on bad JSON is not something we wrote; keep looking further back.
        }
      }
    }
    end = start;
  }
  return undefined;
}

function checkFormat(value: unknown, path: string): AgentState {
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== 1) {
    throw new AgentError('AGENT_ERR_JOURNAL', `${path} has an unknown format`);
  }
  return value as AgentState;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
