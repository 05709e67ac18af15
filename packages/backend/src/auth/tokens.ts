// API tokens: `otk_<id>.<secret>` with 16 hex digits of public id and 256 random bits of secret. The store keeps
// the secret's SHA-256 only (a fast hash is enough for 256 random bits: there is nothing to brute-force), looked up
// by id and compared in constant time, so neither a store dump nor response timing gives a usable token away.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  API_ROLES,
  type ApiRole,
  type ApiTokenCreate,
  type ApiTokenCreated,
  type ApiTokenInfo,
  BackendError,
  MAX_TOKEN_LIFETIME_SECONDS,
} from '../api.js';
import type { ApiTokenRecord, BackendStore } from '../store/types.js';

export const TOKEN_PREFIX = 'otk_';
const TOKEN_SHAPE = /^otk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
/** Compared against when the id is unknown, so an unknown id costs the same as a wrong secret. */
const NO_HASH = Buffer.alloc(32);

export type TokenStore = Pick<BackendStore, 'commit' | 'getApiToken' | 'listApiTokens'>;

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** The info a client may see: the record without its hash. */
export function tokenInfo(record: ApiTokenRecord): ApiTokenInfo {
  const { secretHash: _hash, ...info } = record;
  return info;
}

/** The id of a token-shaped string (for logs: never the secret), or undefined. */
export function tokenIdOf(token: string): string | undefined {
  return TOKEN_SHAPE.exec(token)?.[1];
}

/** Whether a token may still be used: not revoked and not past its expiry. */
export function tokenUsable(info: ApiTokenInfo, now: number): boolean {
  return info.revokedAt === undefined && (info.expiresAt === undefined || now < info.expiresAt);
}

export function isApiRole(value: unknown): value is ApiRole {
  return typeof value === 'string' && (API_ROLES as readonly string[]).includes(value);
}

export class ApiTokens {
  constructor(
    private readonly store: TokenStore,
    private readonly now: () => number,
  ) {}

  /** `beforeCommit` gets the token before it is stored (the bootstrap writes its file first: no unknown admin). */
  async create(input: ApiTokenCreate, beforeCommit?: (token: string) => Promise<void>): Promise<ApiTokenCreated> {
    const name = typeof input?.name === 'string' ? input.name.trim() : '';
    const printable = [...name].every((c) => (c.codePointAt(0) ?? 0) >= 0x20 && c !== '\u007f');
    if (name.length === 0 || name.length > 128 || !printable) {
      throw new BackendError('OTA_ERR_VALIDATION', 'name must be 1..128 printable characters', { field: 'name' });
    }
    if (!isApiRole(input.role)) {
      throw new BackendError('OTA_ERR_VALIDATION', `role must be one of ${API_ROLES.join(', ')}`, { field: 'role' });
    }
    const lifetime = input.expiresInSeconds;
    if (
      lifetime !== undefined &&
      (!Number.isInteger(lifetime) || lifetime < 60 || lifetime > MAX_TOKEN_LIFETIME_SECONDS)
    ) {
      throw new BackendError(
        'OTA_ERR_VALIDATION',
        `expiresInSeconds must be an integer from 60 to ${MAX_TOKEN_LIFETIME_SECONDS}`,
        { field: 'expiresInSeconds' },
      );
    }
    const id = randomBytes(8).toString('hex');
    const createdAt = this.now();
    const secret = randomBytes(32).toString('base64url');
    const record: ApiTokenRecord = {
      id,
      name,
      role: input.role,
      createdAt,
      ...(lifetime === undefined ? {} : { expiresAt: createdAt + lifetime * 1000 }),
      secretHash: hashSecret(secret).toString('hex'),
    };
    const token = `${TOKEN_PREFIX}${id}.${secret}`;
    await beforeCommit?.(token);
    await this.store.commit({ apiTokens: [record] });
    return { token, info: tokenInfo(record) };
  }

  async list(): Promise<ApiTokenInfo[]> {
    return (await this.store.listApiTokens()).map(tokenInfo);
  }

  async count(): Promise<number> {
    return (await this.store.listApiTokens()).length;
  }

  async revoke(id: string): Promise<ApiTokenInfo> {
    const record = await this.store.getApiToken(id);
    if (record === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no API token ${id}`);
    if (record.revokedAt !== undefined) return tokenInfo(record);
    const revoked: ApiTokenRecord = { ...record, revokedAt: this.now() };
    await this.store.commit({ apiTokens: [revoked] });
    return tokenInfo(revoked);
  }

  async get(id: string): Promise<ApiTokenInfo | undefined> {
    const record = await this.store.getApiToken(id);
    return record === undefined ? undefined : tokenInfo(record);
  }

  async authenticate(token: string): Promise<ApiTokenInfo | undefined> {
    const m = typeof token === 'string' ? TOKEN_SHAPE.exec(token) : null;
    if (m === null) return undefined;
    const record = await this.store.getApiToken(m[1] as string);
    const expected = record === undefined ? NO_HASH : Buffer.from(record.secretHash, 'hex');
    const given = hashSecret(m[2] as string);
    const same = expected.length === given.length && timingSafeEqual(expected, given);
    if (!same || record === undefined || !tokenUsable(record, this.now())) return undefined;
    return tokenInfo(record);
  }
}
