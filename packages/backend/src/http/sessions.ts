// Dashboard sessions: a browser exchanges an API token for a random session id kept in an HttpOnly cookie, because
// EventSource cannot send an Authorization header. Held in memory (a restart logs browsers out, nothing else), keyed
// by the id's SHA-256 so a lookup compares hashes, not secrets; each session points at its token, which is
// re-checked on every request, so revoking the token ends its sessions too.
import { createHash, randomBytes } from 'node:crypto';

export const SESSION_COOKIE = 'otalink_session';
export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Past this many live sessions the oldest is dropped: logins cannot grow memory without bound. */
const MAX_SESSIONS = 10_000;

interface Session {
  tokenId: string;
  expiresAt: number;
}

const keyOf = (sessionId: string) => createHash('sha256').update(sessionId, 'utf8').digest('base64url');

export class Sessions {
  readonly #sessions = new Map<string, Session>();

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  /** A new session for this token; returns its id (the cookie's value). */
  create(tokenId: string): string {
    const now = this.now();
    for (const [key, session] of this.#sessions) if (session.expiresAt <= now) this.#sessions.delete(key);
    while (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    this.#sessions.set(keyOf(id), { tokenId, expiresAt: now + this.ttlMs });
    return id;
  }

  /** The token id of a live session, or undefined (unknown, expired). */
  tokenOf(sessionId: string): string | undefined {
    if (!/^[A-Za-z0-9_-]{43}$/.test(sessionId)) return undefined;
    const key = keyOf(sessionId);
    const session = this.#sessions.get(key);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    return session.tokenId;
  }

  delete(sessionId: string): void {
    this.#sessions.delete(keyOf(sessionId));
  }

  get size(): number {
    return this.#sessions.size;
  }
}

/** The value of one cookie from a Cookie header (the first one of that name), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Set-Cookie for a session: HttpOnly, SameSite=Strict, Secure over HTTPS; maxAgeMs 0 clears it. */
export function sessionCookie(value: string, maxAgeMs: number, secure: boolean): string {
  const parts = [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.floor(maxAgeMs / 1000)}`,
  ];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}
