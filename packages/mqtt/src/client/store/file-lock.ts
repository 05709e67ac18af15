// One writer per file store: a lock file next to the log naming the holder's pid. Two writers would interleave
// lines and each compaction would drop the other's records, so a second opener fails with MQTT_ERR_STORE_LOCKED,
// whether it is another process or another client in this one.
//
// The lock is created with exclusive semantics: its content goes to a private file first, which is then
// hard-linked to the lock name (link(2) fails with EEXIST like open(O_CREAT|O_EXCL) does), so a lock file never
// exists without its pid, even if the creator dies mid-way. A lock whose pid no longer runs is stale (a SIGKILLed
// or crashed process) and is taken over: renamed aside first, so of two processes taking over the same stale lock
// only one moves it, and the other one finds the winner's live lock. Pids are reused (a container's app is often
// the same pid on every start; a vehicle reboots), so a lock is also stale when it names this process's pid with
// a token this process never issued, or when it was written under another Linux boot id. Where the file system has
// no hard links (FAT, exFAT), the lock is created with O_EXCL instead (createLock).

import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { MqttError } from '../../codec/errors.js';

export interface StoreLock {
  readonly path: string;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void;
}

interface Holder {
  pid: number;
  token: string;
  /** Linux boot id when the lock was written; empty where unknown. */
  boot: string;
}

/** Tokens of the locks this process holds: tells our own pid's live locks from a dead namesake's. */
const heldHere = new Set<string>();
let bootIdCache: string | undefined;

/** Takes the lock at `lockPath` for the store at `storePath`, or throws MQTT_ERR_STORE_LOCKED. */
export function acquireStoreLock(lockPath: string, storePath: string): StoreLock {
  const me: Holder = { pid: process.pid, token: randomBytes(8).toString('hex'), boot: bootId() };
  const mine = `${lockPath}.${me.pid}.${me.token}`;
  const content = `${me.pid}\n${me.token}\n${me.boot}\n`;
  try {
    writeFileSync(mine, content, { flag: 'wx' });
  } catch (err) {
    throw lockError(storePath, 'cannot write its lock file', err);
  }
  try {
    // Bounded: each round either takes the lock, finds a live holder, or removes one stale lock.
    for (let round = 0; round < 5; round++) {
      try {
        createLock(mine, lockPath, content);
        heldHere.add(me.token);
        return lockHandle(lockPath, me.token);
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw lockError(storePath, 'cannot create its lock file', err);
      }
      const holder = readHolder(lockPath);
      if (holder === undefined) continue; // released in between: try again
      if (isLive(holder)) throw lockedError(storePath, lockPath, holder.pid);
      takeOverStale(lockPath, holder);
    }
    throw lockedError(storePath, lockPath, undefined);
  } finally {
    tryUnlink(mine);
  }
}

/**
 * Creates the lock file holding `content` (already written to `mine`), or throws EEXIST. FAT and exFAT (a vehicle's
 * SD card) have no hard links: there the lock is created with O_EXCL and written after, so a creator that dies in
 * between leaves an empty lock, which reads as held by nobody alive (pid 0) and is taken over like any stale one.
 */
function createLock(mine: string, lockPath: string, content: string): void {
  try {
    linkSync(mine, lockPath);
  } catch (err) {
    const code = errno(err);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    writeFileSync(lockPath, content, { flag: 'wx' });
  }
}

function lockHandle(path: string, token: string): StoreLock {
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      heldHere.delete(token);
      // Only our own lock: a holder that took over after we were presumed dead keeps theirs.
      if (readHolder(path)?.token === token) tryUnlink(path);
    },
  };
}

/** Moves a stale lock aside and deletes it; if what moved turns out to be someone's fresh lock, puts it back. */
function takeOverStale(lockPath: string, stale: Holder): void {
  const aside = `${lockPath}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    renameSync(lockPath, aside);
  } catch (err) {
    if (errno(err) === 'ENOENT') return; // another process took it over first
    throw err;
  }
  const moved = readHolder(aside);
  if (moved !== undefined && moved.token !== stale.token) {
    // Between our read and our rename another process replaced the stale lock with its own: restore it. EEXIST
    // means a third one already holds the name, and the lock it holds is the one that counts.
    try {
      linkSync(aside, lockPath);
    } catch {}
  }
  tryUnlink(aside);
}

function readHolder(path: string): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
  const [pidText = '', token = '', boot = ''] = text.split('\n');
  const pid = Number(pidText);
  // Unreadable content was not written by this code: treat it as held by nobody alive (pid 0 never runs).
  return { pid: Number.isInteger(pid) && pid > 0 ? pid : 0, token, boot };
}

function isLive(holder: Holder): boolean {
  if (holder.pid === process.pid) return heldHere.has(holder.token);
  const boot = bootId();
  if (holder.boot !== '' && boot !== '' && holder.boot !== boot) return false;
  return isRunning(holder.pid);
}

function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

function isRunning(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, under another user.
    return errno(err) === 'EPERM';
  }
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function lockedError(storePath: string, lockPath: string, pid: number | undefined): MqttError {
  const who = pid === undefined ? 'other processes competing for it' : `process ${pid}`;
  const self = pid === process.pid ? ' (this process: another client or store has it open)' : '';
  return new MqttError(
    'MQTT_ERR_STORE_LOCKED',
    `the file store ${storePath} is in use by ${who}${self}; its lock is ${lockPath}`,
  );
}

function lockError(storePath: string, what: string, cause: unknown): MqttError {
  return new MqttError('MQTT_ERR_STORE', `the file store ${storePath}: ${what}`, { cause });
}
