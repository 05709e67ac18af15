// One broker per data directory. Two brokers appending to the same segments would interleave batches and each
// replay a log the other changed under it, so the second one must refuse to start before it touches anything.
//
// Why a pid file and not a kernel lock: Node has no flock/fcntl, and a kernel lock would need a native addon (a
// dependency and a build). A lock file holding the owner's pid survives kill -9 as a file, so the next start must
// tell a live owner from a dead one: `kill(pid, 0)` says whether the pid exists, and the process start time from
// /proc/<pid>/stat (Linux) tells a reused pid from the owner itself. A lock naming our own pid that this process did
// not take is stale too: in a container the broker is often pid 1 again after a restart.
// Containers sharing a volume are the exception: two brokers there are both pid 1, each in its own pid namespace,
// and neither can see the other's process. A lock records its pid namespace, and its holder touches it every few
// seconds (a heartbeat); a lock from another namespace is live while it is fresh and stale once it is not.
// Limits: the check is for one machine (a data directory shared over NFS between hosts is not protected), and
// without /proc a dead owner whose pid was reused by an unrelated live process blocks the start until it exits
// (the error names the pid and the file, so an operator can remove it).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';

export const LOCK_FILE = 'broker.lock';

interface LockContent {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat field 22), when known. */
  start: string | undefined;
  /** Linux boot id: a lock written before a reboot (power cut) is stale whatever its pid. */
  boot: string | undefined;
  /** The holder's pid namespace (`pid:[…]` from /proc/self/ns/pid) and host name, when known. */
  pidns: string | undefined;
  host: string | undefined;
}

/** How often a holder touches its lock, and how long a lock from another pid namespace stays live without it. */
export const LOCK_HEARTBEAT_MS = 5_000;
export const LOCK_STALE_MS = 30_000;

/** Lock files this process holds: a second store in the same process must be refused too. */
const heldHere = new Set<string>();

function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function parse(text: string): LockContent | undefined {
  try {
    const value = JSON.parse(text) as {
      pid?: unknown;
      start?: unknown;
      boot?: unknown;
      pidns?: unknown;
      host?: unknown;
    };
    if (typeof value.pid !== 'number' || !Number.isInteger(value.pid) || value.pid <= 0) return undefined;
    const optional = (field: unknown) => (typeof field === 'string' ? field : undefined);
    return {
      pid: value.pid,
      start: optional(value.start),
      boot: optional(value.boot),
      pidns: optional(value.pidns),
      host: optional(value.host),
    };
  } catch {
    return undefined;
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether the process named by a lock file still runs (and is the same process that wrote it). */
function holderAlive(path: string, holder: LockContent, now: number): boolean {
  const boot = bootId();
  if (holder.boot !== undefined && boot !== undefined && holder.boot !== boot) return false;
  const ns = pidNamespace();
  if (holder.pidns !== undefined && ns !== undefined && holder.pidns !== ns) {
    // Another container: its pid means nothing here. Live while its heartbeat keeps the lock fresh.
    return now - lockAge(path) < LOCK_STALE_MS;
  }
  if (holder.pid === process.pid) return heldHere.has(path);
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if (errorCode(error) === 'ESRCH') return false;
    // EPERM: it exists and belongs to someone else.
  }
  if (holder.start === undefined) return true;
  const start = processStart(holder.pid);
  return start === undefined || start === holder.start;
}

/** The lock file's modification time (ms), which its holder's heartbeat keeps recent; 0 if it is gone. */
function lockAge(path: string): number {
  try {
    return fs.statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function locked(path: string, holder: LockContent | undefined): BrokerError {
  const elsewhere = holder?.pidns !== undefined && holder.pidns !== pidNamespace();
  const who =
    holder === undefined
      ? 'another process'
      : elsewhere
        ? `process ${holder.pid} of another container (host ${holder.host ?? 'unknown'}; its lock is stale once untouched for ${LOCK_STALE_MS / 1000} s)`
        : `process ${holder.pid}`;
  return new BrokerError(
    'BROKER_ERR_STORE_LOCKED',
    `data directory is in use by ${who}: lock file ${path} (one broker per data directory; remove the file only if ` +
      'no broker uses the directory)',
  );
}

export interface DataDirLock {
  readonly path: string;
  release(): void;
}

/**
 * Takes the lock of `dir` (which must exist) or throws BROKER_ERR_STORE_LOCKED naming the lock file. A lock whose
 * owner is gone (kill -9, power cut) is taken over with a warning.
 */
export function lockDataDir(dir: string, logger?: Logger, heartbeatMs = LOCK_HEARTBEAT_MS): DataDirLock {
  const path = join(dir, LOCK_FILE);
  const content = JSON.stringify({
    pid: process.pid,
    start: processStart(process.pid),
    boot: bootId(),
    pidns: pidNamespace(),
    host: hostname(),
  });
  // Written whole under a private name, then linked into place: link() fails if the lock exists, and a reader never
  // sees a half-written lock file.
  const temporary = join(dir, `${LOCK_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(temporary, content, { flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        fs.linkSync(temporary, path);
        heldHere.add(path);
        const heartbeat = setInterval(() => touch(path), heartbeatMs);
        heartbeat.unref();
        return {
          path,
          release: () => {
            clearInterval(heartbeat);
            release(path, content);
          },
        };
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      const text = readText(path);
      if (text === undefined) continue; // released meanwhile
      const holder = parse(text);
      // An unreadable lock is not ours to judge: a broker of another version, or a file someone put there.
      if (holder === undefined || holderAlive(path, holder, Date.now())) throw locked(path, holder);
      // Stale. Moved aside by rename, which only one of two racing starts can do; the mover checks it moved the
      // stale file and not a lock the other one had just taken.
      const aside = join(dir, `${LOCK_FILE}.stale.${process.pid}`);
      try {
        fs.renameSync(path, aside);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw error;
      }
      if (readText(aside) !== text) {
        try {
          fs.linkSync(aside, path);
        } catch {}
        fs.unlinkSync(aside);
        throw locked(path, parse(readText(path) ?? ''));
      }
      fs.unlinkSync(aside);
      logger?.warn(
        { code: 'BROKER_ERR_STORE_LOCKED', path, pid: holder.pid },
        'store: took over the lock of a broker that is gone (killed or crashed)',
      );
    }
    throw locked(path, undefined);
  } finally {
    try {
      fs.unlinkSync(temporary);
    } catch {}
  }
}

function touch(path: string): void {
  try {
    const now = new Date();
    fs.utimesSync(path, now, now);
  } catch {
    // Gone (an operator removed it) or the disk refuses: the next start judges by what is there.
  }
}

function release(path: string, content: string): void {
  if (!heldHere.delete(path)) return;
  // Only our own lock: never remove one another broker took after an operator deleted ours.
  if (readText(path) === content) fs.rmSync(path, { force: true });
}
