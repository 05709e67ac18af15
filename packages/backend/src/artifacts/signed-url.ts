// Expiring download URLs: `/artifacts/{sha256}?exp=<epoch seconds>&sig=<HMAC-SHA256>`, so a CDN or any static
// server holding the secret can serve the bytes without asking the backend. The manifest's own expiry bounds how
// long a URL needs to stay valid.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SECRET_FILE = 'url-secret';
const SECRET_BYTES = 32;

/** Loads `<dataDir>/keys/url-secret`, creating it (mode 0600) on first use. */
export function loadOrCreateUrlSecret(dataDir: string): Buffer {
  const dir = join(dataDir, 'keys');
  const file = join(dir, SECRET_FILE);
  try {
    const secret = readFileSync(file);
    if (secret.length >= 16) return secret;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(SECRET_BYTES);
  // 'wx' so two processes starting at once cannot overwrite each other's secret; the loser reads the winner's.
  try {
    writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file);
    throw e;
  }
}

function mac(secret: Uint8Array, sha256: string, exp: number): string {
  return createHmac('sha256', secret).update(`${sha256}\n${exp}`).digest('base64url');
}

/** The path and query (no origin): `/artifacts/{sha256}?exp=…&sig=…`, valid until `expiresAtMs` (rounded up to a second). */
export function signArtifactPath(secret: Uint8Array, sha256: string, expiresAtMs: number): string {
  const exp = Math.ceil(expiresAtMs / 1000);
  return `/artifacts/${sha256}?exp=${exp}&sig=${mac(secret, sha256, exp)}`;
}

/** A full URL under `baseUrl` (e.g. https://127.0.0.1:8443); a trailing slash of the base is ignored. */
export function signArtifactUrl(secret: Uint8Array, baseUrl: string, sha256: string, expiresAtMs: number): string {
  return `${baseUrl.replace(/\/+$/, '')}${signArtifactPath(secret, sha256, expiresAtMs)}`;
}

export type SignedUrlVerdict =
  | { ok: true }
  | { ok: false; code: 'MISSING' | 'MALFORMED' | 'EXPIRED' | 'BAD_SIGNATURE' };

/** Checks the query of a download URL. `nowMs` is injectable for tests. Constant-time comparison of the MAC. */
export function verifyArtifactSignature(
  secret: Uint8Array,
  sha256: string,
  exp: string | undefined,
  sig: string | undefined,
  nowMs: number = Date.now(),
): SignedUrlVerdict {
  if (exp === undefined || sig === undefined) return { ok: false, code: 'MISSING' };
  if (!/^[0-9]{1,15}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return { ok: false, code: 'MALFORMED' };
  const expSeconds = Number(exp);
  const expected = Buffer.from(mac(secret, sha256, expSeconds));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, code: 'BAD_SIGNATURE' };
  }
  if (expSeconds * 1000 <= nowMs) return { ok: false, code: 'EXPIRED' };
  return { ok: true };
}
