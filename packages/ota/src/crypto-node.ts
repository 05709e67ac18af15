// The one Node-specific file of the OTA package: Ed25519 and SHA-256 from node:crypto. Everything else here is pure
// and takes these functions as parameters, so a browser or another runtime can supply its own.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { OtaError } from './errors.js';
import { type Manifest, manifestSigningBytes, type SignatureVerifier, type SignedManifest } from './manifest.js';

// DER headers that turn 32 raw bytes into SPKI (public) and PKCS#8 (private seed) Ed25519 keys (RFC 8410).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface Ed25519KeyPair {
  /** 32-byte raw public key, as TrustedKeys holds it. */
  publicKey: Uint8Array;
  /** 32-byte raw private seed. */
  privateKey: Uint8Array;
  publicKeyPem: string;
  privateKeyPem: string;
}

export function generateEd25519KeyPair(): Ed25519KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKey: rawPublicKey(publicKey),
    privateKey: rawPrivateKey(privateKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** A PEM (SPKI) or 32-byte raw Ed25519 public key as 32 raw bytes. Throws OTA_ERR_INVALID_KEY. */
export function publicKeyBytes(key: string | Uint8Array): Uint8Array {
  return rawPublicKey(toPublicKeyObject(key));
}

/** A stable default key id: `ed25519:` and the first 16 hex digits of SHA-256 over the raw public key. */
export function keyIdOf(publicKey: string | Uint8Array): string {
  return `ed25519:${sha256Hex(publicKeyBytes(publicKey)).slice(0, 16)}`;
}

/** Signs canonicalJson(manifest). The private key is a PKCS#8 PEM or a 32-byte raw seed. */
export function signManifest(manifest: Manifest, privateKey: string | Uint8Array): SignedManifest {
  const signature = sign(null, manifestSigningBytes(manifest), toPrivateKeyObject(privateKey));
  return { manifest, signature: signature.toString('base64') };
}

const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 64;

/** The SignatureVerifier for verifyManifest. Never throws: a malformed key or signature is simply invalid. */
export const verifyEd25519: SignatureVerifier = (message, signature, publicKey) => {
  try {
    const sig = Buffer.from(signature, 'base64');
    if (sig.length !== 64) return false;
    const cacheKey = Buffer.from(publicKey).toString('hex');
    let key = publicKeyCache.get(cacheKey);
    if (key === undefined) {
      key = toPublicKeyObject(publicKey);
      // Vehicles trust a handful of keys; the bound only guards against a caller cycling through many.
      if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyCache.clear();
      publicKeyCache.set(cacheKey, key);
    }
    return verify(null, message, key, sig);
  } catch {
    return false;
  }
};

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Incremental SHA-256 for a download that arrives in chunks. */
export interface Sha256Hasher {
  update(chunk: Uint8Array): void;
  /** Lower-case hex; ends the hasher. */
  digestHex(): string;
}

export function createSha256(): Sha256Hasher {
  const hash = createHash('sha256');
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digestHex: () => hash.digest('hex'),
  };
}

function toPublicKeyObject(key: string | Uint8Array): KeyObject {
  try {
    if (typeof key === 'string') {
      const object = createPublicKey(key);
      if (object.asymmetricKeyType !== 'ed25519') throw new Error(`not Ed25519 but ${object.asymmetricKeyType}`);
      return object;
    }
    if (key.length !== 32) throw new Error(`a raw Ed25519 public key has 32 bytes, not ${key.length}`);
    return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, key]), format: 'der', type: 'spki' });
  } catch (e) {
    throw new OtaError('OTA_ERR_INVALID_KEY', `invalid Ed25519 public key: ${(e as Error).message}`, { cause: e });
  }
}

function toPrivateKeyObject(key: string | Uint8Array): KeyObject {
  try {
    if (typeof key === 'string') {
      const object = createPrivateKey(key);
      if (object.asymmetricKeyType !== 'ed25519') throw new Error(`not Ed25519 but ${object.asymmetricKeyType}`);
      return object;
    }
    if (key.length !== 32) throw new Error(`a raw Ed25519 private key has 32 bytes, not ${key.length}`);
    return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, key]), format: 'der', type: 'pkcs8' });
  } catch (e) {
    throw new OtaError('OTA_ERR_INVALID_KEY', `invalid Ed25519 private key: ${(e as Error).message}`, { cause: e });
  }
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ type: 'spki', format: 'der' });
  return new Uint8Array(der.subarray(der.length - 32));
}

function rawPrivateKey(key: KeyObject): Uint8Array {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  return new Uint8Array(der.subarray(der.length - 32));
}
