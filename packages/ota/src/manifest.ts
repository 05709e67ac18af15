// The artifact manifest and the vehicle's trust rules (after Uptane and Mender): a signature by a trusted key, the
// right hardware, a version newer than installed, an unexpired manifest, and a download no larger than declared
// whose SHA-256 matches. Pure: the signature check itself is injected (crypto-node.ts provides it for Node).
import { type Static, Type } from '@sinclair/typebox';
import { canonicalJsonBytes } from './canonical-json.js';
import { OtaError, type OtaErrorCode } from './errors.js';
import { compile, EpochMs, firstProblem, ID_PATTERN, Id } from './schema-common.js';
import { compareSemver, parseSemver, SEMVER_PATTERN } from './semver.js';

export const ManifestSchema = Type.Object(
  {
    artifactId: Id,
    name: Type.String({ minLength: 1, maxLength: 256 }),
    /** Semantic version 2.0.0 of the software in the artifact. */
    version: Type.String({ pattern: SEMVER_PATTERN, maxLength: 256 }),
    /** The hardware ids this artifact may be installed on. */
    hardwareIds: Type.Array(Id, { minItems: 1, maxItems: 256 }),
    /** Exact size in bytes. */
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    /** Lower-case hex SHA-256 of the artifact's bytes. */
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    /** Where to download it (HTTPS in production; the agent decides whether plain http is acceptable). */
    url: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 4096 }),
    issuedAt: EpochMs,
    expiresAt: EpochMs,
    /** Which trusted key signed it; part of the signed bytes, so it cannot be swapped. */
    keyId: Id,
    /** Only when true may a version that is not newer than the installed one be installed. */
    allowDowngrade: Type.Optional(Type.Boolean()),
  },
  { description: 'artifact manifest (signed)' },
);
export type Manifest = Static<typeof ManifestSchema>;

/** Standard base64 (with padding) of a 64-byte Ed25519 signature. */
export const SIGNATURE_PATTERN = '^[A-Za-z0-9+/]{86}==$';

export const SignedManifestSchema = Type.Object({
  manifest: ManifestSchema,
  /** Ed25519 over canonicalJson(manifest), standard base64. */
  signature: Type.String({ pattern: SIGNATURE_PATTERN }),
});
export type SignedManifest = Static<typeof SignedManifestSchema>;

const checkSignedManifest = compile(SignedManifestSchema);
const KEY_ID = new RegExp(ID_PATTERN);

/** The bytes that are signed: canonical JSON of the manifest object exactly as received (unknown fields included). */
export function manifestSigningBytes(manifest: Manifest): Uint8Array {
  return canonicalJsonBytes(manifest);
}

/** Verifies an Ed25519 signature (standard base64) of `message` by a 32-byte raw public key. Must not throw. */
export type SignatureVerifier = (message: Uint8Array, signature: string, publicKey: Uint8Array) => boolean;

export interface TrustedKey {
  keyId: string;
  /** 32-byte raw Ed25519 public key. */
  publicKey: Uint8Array;
}

/**
 * The keys a vehicle trusts, by key id. Rotation without a flag day: trust the new key next to the old one, sign
 * with the new key, and remove the old key once no valid manifest signed by it remains.
 */
export class TrustedKeys {
  private readonly keys = new Map<string, Uint8Array>();

  constructor(keys: Iterable<TrustedKey> = []) {
    for (const key of keys) this.add(key.keyId, key.publicKey);
  }

  add(keyId: string, publicKey: Uint8Array): this {
    if (!KEY_ID.test(keyId)) throw new OtaError('OTA_ERR_INVALID_KEY', `invalid key id ${JSON.stringify(keyId)}`);
    if (publicKey.length !== 32) throw new OtaError('OTA_ERR_INVALID_KEY', 'an Ed25519 public key has 32 bytes');
    this.keys.set(keyId, Uint8Array.from(publicKey));
    return this;
  }

  remove(keyId: string): boolean {
    return this.keys.delete(keyId);
  }

  get(keyId: string): Uint8Array | undefined {
    return this.keys.get(keyId);
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  keyIds(): string[] {
    return [...this.keys.keys()];
  }

  get size(): number {
    return this.keys.size;
  }
}

export type ManifestRefusalCode = Extract<
  OtaErrorCode,
  | 'OTA_ERR_INVALID_MANIFEST'
  | 'OTA_ERR_UNKNOWN_KEY'
  | 'OTA_ERR_BAD_SIGNATURE'
  | 'OTA_ERR_MANIFEST_EXPIRED'
  | 'OTA_ERR_MANIFEST_NOT_YET_VALID'
  | 'OTA_ERR_HARDWARE_MISMATCH'
  | 'OTA_ERR_INVALID_VERSION'
  | 'OTA_ERR_NOT_NEWER'
>;

export interface Refusal<C extends OtaErrorCode = OtaErrorCode> {
  code: C;
  text: string;
  /** For OTA_ERR_INVALID_MANIFEST: JSON Pointer of the offending field. */
  path?: string;
}

export type ManifestVerdict = { ok: true; manifest: Manifest } | { ok: false; error: Refusal<ManifestRefusalCode> };

export interface VerifyManifestOptions {
  trustedKeys: TrustedKeys;
  verifySignature: SignatureVerifier;
  /** This vehicle's hardware id; must be one of the manifest's hardwareIds. */
  hardwareId: string;
  /** The installed version, or undefined when nothing is installed yet. */
  installedVersion: string | undefined;
  /** Current time, epoch ms. */
  now: number;
  /** Tolerated clock difference for issuedAt in the future; default 5 minutes. Expiry gets no tolerance. */
  clockSkewMs?: number;
}

const DEFAULT_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The vehicle's trust decision. Order matters: the shape, then the key and signature, and only then the signed
 * fields, so nothing unsigned can influence which refusal comes back.
 */
export function verifyManifest(signed: unknown, options: VerifyManifestOptions): ManifestVerdict {
  const problem = firstProblem(checkSignedManifest, signed);
  if (problem !== undefined) {
    return refuse('OTA_ERR_INVALID_MANIFEST', `${problem.path || '/'}: ${problem.text}`, problem.path);
  }
  const { manifest, signature } = signed as SignedManifest;
  const publicKey = options.trustedKeys.get(manifest.keyId);
  if (publicKey === undefined) {
    return refuse('OTA_ERR_UNKNOWN_KEY', `key ${JSON.stringify(manifest.keyId)} is not trusted`);
  }
  let bytes: Uint8Array;
  try {
    bytes = manifestSigningBytes(manifest);
  } catch (e) {
    // An extra field that canonical JSON refuses (a fraction, say) cannot have been signed by our signer.
    return refuse('OTA_ERR_BAD_SIGNATURE', `manifest cannot be canonicalised: ${(e as Error).message}`);
  }
  let valid = false;
  try {
    valid = options.verifySignature(bytes, signature, publicKey);
  } catch {
    valid = false;
  }
  if (!valid) return refuse('OTA_ERR_BAD_SIGNATURE', `signature does not verify with key ${manifest.keyId}`);

  if (manifest.expiresAt <= manifest.issuedAt) {
    return refuse('OTA_ERR_INVALID_MANIFEST', 'expiresAt must be after issuedAt', '/manifest/expiresAt');
  }
  if (options.now >= manifest.expiresAt) {
    return refuse('OTA_ERR_MANIFEST_EXPIRED', `manifest expired at ${new Date(manifest.expiresAt).toISOString()}`);
  }
  const skew = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  if (manifest.issuedAt > options.now + skew) {
    return refuse(
      'OTA_ERR_MANIFEST_NOT_YET_VALID',
      `manifest issued in the future (${new Date(manifest.issuedAt).toISOString()})`,
    );
  }
  if (!manifest.hardwareIds.includes(options.hardwareId)) {
    return refuse(
      'OTA_ERR_HARDWARE_MISMATCH',
      `hardware ${JSON.stringify(options.hardwareId)} is not among ${JSON.stringify(manifest.hardwareIds)}`,
    );
  }
  const offered = parseSemver(manifest.version);
  if (offered === undefined) {
    return refuse('OTA_ERR_INVALID_MANIFEST', 'version is not a semantic version', '/manifest/version');
  }
  if (options.installedVersion !== undefined && manifest.allowDowngrade !== true) {
    const installed = parseSemver(options.installedVersion);
    if (installed === undefined) {
      return refuse(
        'OTA_ERR_INVALID_VERSION',
        `installed version ${JSON.stringify(options.installedVersion)} is not a semantic version; only a manifest with allowDowngrade can replace it`,
      );
    }
    if (compareSemver(offered, installed) <= 0) {
      return refuse(
        'OTA_ERR_NOT_NEWER',
        `version ${manifest.version} is not newer than installed ${options.installedVersion}`,
      );
    }
  }
  return { ok: true, manifest };
}

export type DownloadCheck = { ok: true } | { ok: false; error: Refusal<DownloadRefusalCode> };
export type DownloadRefusalCode = Extract<
  OtaErrorCode,
  'OTA_ERR_TOO_LARGE' | 'OTA_ERR_SIZE_MISMATCH' | 'OTA_ERR_HASH_MISMATCH'
>;

/** Call after every chunk: a server sending more than declared is cut off at once (endless-data attack). */
export function checkDeclaredSize(bytesSoFar: number, manifest: Pick<Manifest, 'size'>): DownloadCheck {
  if (bytesSoFar > manifest.size) {
    return {
      ok: false,
      error: { code: 'OTA_ERR_TOO_LARGE', text: `received ${bytesSoFar} bytes, manifest declares ${manifest.size}` },
    };
  }
  return { ok: true };
}

/** Call once the download ends: exactly the declared size and the declared SHA-256 (hex, any case). */
export function checkArtifact(
  actual: { size: number; sha256: string },
  manifest: Pick<Manifest, 'size' | 'sha256'>,
): DownloadCheck {
  if (actual.size > manifest.size) return checkDeclaredSize(actual.size, manifest);
  if (actual.size !== manifest.size) {
    return {
      ok: false,
      error: {
        code: 'OTA_ERR_SIZE_MISMATCH',
        text: `received ${actual.size} bytes, manifest declares ${manifest.size}`,
      },
    };
  }
  if (actual.sha256.toLowerCase() !== manifest.sha256) {
    return {
      ok: false,
      error: { code: 'OTA_ERR_HASH_MISMATCH', text: `sha256 ${actual.sha256} does not match ${manifest.sha256}` },
    };
  }
  return { ok: true };
}

function refuse(code: ManifestRefusalCode, text: string, path?: string): ManifestVerdict {
  return { ok: false, error: path === undefined ? { code, text } : { code, text, path } };
}
