// The password file: one `user:$scrypt$N=16384,r=8,p=1$<salt b64>$<hash b64>` per line. The scrypt cost is stored on
// each line so it can be raised later without invalidating the passwords already there.
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Authenticate, AuthenticationRequest, AuthenticationResult } from '../options.js';
import { AuthFileError } from './errors.js';

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

export const defaultScryptParams: ScryptParams = { N: 16384, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
// Refuse costs that would make one verification take the broker down (memory = 128 * N * r bytes).
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;
const HASH_LINE = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export interface PasswordHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

/** Why `username` cannot be stored in a password file, or undefined. */
export function usernameProblem(username: string): string | undefined {
  if (username.length === 0) return 'a user name must not be empty';
  if (username.includes(':')) return 'a user name must not contain ":"';
  if (/[\r\n\0]/.test(username)) return 'a user name must not contain line breaks or U+0000';
  // The file's lines are read trimmed, and one starting with '#' is a comment: such a name would read back as
  // another user, or none (and ' backend' beside 'backend' made the whole file unreadable).
  if (username.trim() !== username) return 'a user name must not start or end with white space';
  if (username.startsWith('#')) return 'a user name must not start with "#" (a comment in the file)';
  return undefined;
}

function scryptParamsProblem(params: ScryptParams): string | undefined {
  const { N, r, p } = params;
  if (!Number.isSafeInteger(N) || N < 2 || (N & (N - 1)) !== 0) return `N must be a power of two >= 2, got ${N}`;
  if (!Number.isSafeInteger(r) || r < 1) return `r must be a positive integer, got ${r}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > 16) return `p must be an integer from 1 to 16, got ${p}`;
  if (128 * N * r > MAX_SCRYPT_MEMORY) return `N=${N},r=${r} needs more than ${MAX_SCRYPT_MEMORY >> 20} MiB per hash`;
  return undefined;
}

function scryptAsync(password: Uint8Array, salt: Uint8Array, params: ScryptParams, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem must cover 128 * N * r, or Node refuses costs above its 32 MiB default.
    const maxmem = 128 * params.N * params.r + 1024 * 1024;
    scrypt(password, salt, length, { N: params.N, r: params.r, p: params.p, maxmem }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

function toBytes(password: string | Uint8Array): Uint8Array {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
}

export function formatPasswordHash(h: PasswordHash): string {
  const { N, r, p } = h.params;
  return `$scrypt$N=${N},r=${r},p=${p}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
}

/** Parses the part after `user:`; returns a reason string when it is not a valid hash. */
export function parsePasswordHash(text: string): PasswordHash | string {
  const m = HASH_LINE.exec(text);
  if (m === null) return 'expected $scrypt$N=<n>,r=<r>,p=<p>$<salt base64>$<hash base64>';
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const problem = scryptParamsProblem(params);
  if (problem !== undefined) return problem;
  const salt = Buffer.from(m[4] as string, 'base64');
  const hash = Buffer.from(m[5] as string, 'base64');
  if (salt.length < 8) return 'the salt must be at least 8 bytes';
  if (hash.length < 16) return 'the hash must be at least 16 bytes';
  return { params, salt, hash };
}

export async function hashPassword(
  password: string | Uint8Array,
  params: ScryptParams = defaultScryptParams,
): Promise<string> {
  const problem = scryptParamsProblem(params);
  if (problem !== undefined) throw new RangeError(`scrypt parameters: ${problem}`);
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(toBytes(password), salt, params, HASH_BYTES);
  return formatPasswordHash({ params, salt, hash });
}

/** Recomputes the hash with the parameters stored in `stored` and compares in constant time. */
export async function verifyPassword(stored: PasswordHash, password: string | Uint8Array): Promise<boolean> {
  const computed = await scryptAsync(toBytes(password), stored.salt, stored.params, stored.hash.length);
  return timingSafeEqual(computed, stored.hash);
}

/**
 * Parses password file text into user → hash, in file order. Blank lines and lines starting with `#` are skipped.
 * Throws BROKER_ERR_PASSWD_FORMAT naming `file` and the line.
 */
export function parsePasswordFile(text: string, file: string): Map<string, PasswordHash> {
  const users = new Map<string, PasswordHash>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const fail = (message: string) => new AuthFileError('BROKER_ERR_PASSWD_FORMAT', message, { file, line: i + 1 });
    if (colon <= 0) throw fail('expected user:$scrypt$...');
    const username = line.slice(0, colon);
    const parsed = parsePasswordHash(line.slice(colon + 1));
    if (typeof parsed === 'string') throw fail(`user "${username}": ${parsed}`);
    if (users.has(username)) throw fail(`user "${username}" appears twice`);
    users.set(username, parsed);
  }
  return users;
}

/** File text for `users` (one line each, in map order), as parsePasswordFile reads it back. */
export function formatPasswordFile(users: ReadonlyMap<string, PasswordHash>): string {
  let text = '';
  for (const [username, hash] of users) text += `${username}:${formatPasswordHash(hash)}\n`;
  return text;
}

export function readPasswordFile(file: string): Map<string, PasswordHash> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AuthFileError('BROKER_ERR_PASSWD_FILE', `cannot read the password file: ${(error as Error).message}`, {
      file,
      cause: error,
    });
  }
  return parsePasswordFile(text, file);
}

/**
 * Replaces `file` with `text` so readers see the old or the new file, never half of one: write a temporary file in
 * the same directory (same file system, so rename is atomic), fsync it, then rename over the target. Mode 0600: the
 * hashes are slow to crack, not impossible.
 */
export async function writeFileAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    // open's mode is filtered by the umask; the file must end up exactly 0600.
    await chmod(temp, mode);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export interface PasswordAuthenticatorOptions {
  /** Let clients without a user name in. Clients that send one must still get it right. */
  allowAnonymous?: boolean;
  /**
   * Successful verifications remembered (per user, as an HMAC of the password under a per-process random key) so a
   * reconnecting vehicle does not pay a full scrypt each time. 0 disables. Default 10 000.
   */
  cacheSize?: number;
}

const BAD_CREDENTIALS = 0x86;
const NOT_AUTHORIZED = 0x87;
const SERVER_BUSY = 0x89;

/**
 * Password checks (scrypt, ~16 MiB and tens of ms each) running at once. They run on libuv's pool of 4 threads, which
 * also does the durable store's fdatasync: a flood of CONNECTs with wrong passwords must not hold up every QoS 1/2
 * acknowledgement of the broker.
 */
const MAX_CONCURRENT_CHECKS = 2;
/** Checks waiting for a turn; one more is refused at once with Server busy (0x89; 3.1.1: server unavailable). */
const MAX_WAITING_CHECKS = 1000;
/** A check that waited this long is not done: its client, past the default CONNECT timeout, has gone. */
const MAX_WAIT_MS = 10_000;

/** Turns for a limited resource, first come first served, with a bounded line. */
export class Turns {
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  constructor(
    readonly max: number,
    readonly maxWaiting: number,
  ) {}

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves true when it is the caller's turn (call `done` after), false at once when the line is full. */
  take(): Promise<boolean> | boolean {
    if (this.#running < this.max) {
      this.#running++;
      return true;
    }
    if (this.#waiting.length >= this.maxWaiting) return false;
    return new Promise((resolve) => this.#waiting.push(() => resolve(true)));
  }

  done(): void {
    const next = this.#waiting.shift();
    // The turn passes straight to the next in line; only without one is it given back.
    if (next !== undefined) next();
    else this.#running--;
  }
}

/**
 * An `Authenticate` hook backed by a password file (read once, now; errors name file and line). Unknown users cost
 * the same scrypt as known ones, so response time does not reveal which user names exist.
 *
 * Listeners with `identityFromCertificate` accept a verified certificate without asking this hook; elsewhere a client
 * certificate does not replace the password.
 */
export function createPasswordAuthenticator(
  file: string | ReadonlyMap<string, PasswordHash>,
  options: PasswordAuthenticatorOptions = {},
): Authenticate {
  const users = typeof file === 'string' ? readPasswordFile(file) : new Map(file);
  const allowAnonymous = options.allowAnonymous ?? false;
  const cacheSize = options.cacheSize ?? 10_000;
  const cacheKey = randomBytes(32);
  const verified = new Map<string, Buffer>();
  const turns = new Turns(MAX_CONCURRENT_CHECKS, MAX_WAITING_CHECKS);
  // A fixed hash nobody knows the password of, at the default cost, for users not in the file.
  const dummy: PasswordHash = {
    params: defaultScryptParams,
    salt: randomBytes(SALT_BYTES),
    hash: randomBytes(HASH_BYTES),
  };

  const remembered = (username: string, password: Uint8Array): boolean => {
    const known = verified.get(username);
    if (known === undefined) return false;
    return timingSafeEqual(known, createHmac('sha256', cacheKey).update(password).digest());
  };
  const remember = (username: string, password: Uint8Array): void => {
    if (cacheSize <= 0) return;
    verified.delete(username);
    // Map keeps insertion order: the first key is the least recently verified.
    if (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
    verified.set(username, createHmac('sha256', cacheKey).update(password).digest());
  };

  return async (request: AuthenticationRequest): Promise<AuthenticationResult> => {
    const { username, password } = request;
    if (username === undefined) {
      if (password !== undefined) return { ok: false, reasonCode: BAD_CREDENTIALS };
      return allowAnonymous ? { ok: true } : { ok: false, reasonCode: NOT_AUTHORIZED };
    }
    const stored = users.get(username);
    const given = password ?? new Uint8Array(0);
    if (stored !== undefined && remembered(username, given)) return { ok: true, username };
    const asked = performance.now();
    if (!(await turns.take())) return { ok: false, reasonCode: SERVER_BUSY };
    let ok: boolean;
    try {
      if (performance.now() - asked > MAX_WAIT_MS) return { ok: false, reasonCode: SERVER_BUSY };
      ok = await verifyPassword(stored ?? dummy, given);
    } finally {
      turns.done();
    }
    if (!ok || stored === undefined || password === undefined) return { ok: false, reasonCode: BAD_CREDENTIALS };
    remember(username, given);
    return { ok: true, username };
  };
}
