// ECDSA P-256 key pairs for leaf certificates. The scalar and point come from ECDH key generation and are wrapped in
// PKCS#8 and SubjectPublicKeyInfo here: OpenSSL 3's key encoders cost ~0.6 ms of CPU per key, five times the key
// generation itself, which is what made 10 000 vehicle keys slow.
import { createECDH, createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { bitString, explicit, octetString, oid, sequence, smallInteger } from './der.js';
import { PkiError } from './errors.js';
import { fromPem, toPem } from './pem.js';

export interface KeyPair {
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string;
  /** SubjectPublicKeyInfo, DER. */
  readonly spki: Uint8Array;
  /** RFC 5280 4.2.1.2 method 1: SHA-1 of the public key bit string. */
  readonly keyId: Uint8Array;
}

function keyIdOf(spki: Uint8Array): Uint8Array {
  // A P-256 SPKI ends with the 65-byte uncompressed point, which is the bit string's content.
  return new Uint8Array(
    createHash('sha1')
      .update(spki.subarray(spki.length - 65))
      .digest(),
  );
}

const EC_P256_ALGORITHM = sequence(oid('1.2.840.10045.2.1'), oid('1.2.840.10045.3.1.7'));

export async function createKeyPair(): Promise<KeyPair> {
  const ecdh = createECDH('prime256v1');
  const point = new Uint8Array(ecdh.generateKeys());
  const scalar = new Uint8Array(32);
  const raw = ecdh.getPrivateKey();
  scalar.set(raw, 32 - raw.length);
  const spki = sequence(EC_P256_ALGORITHM, bitString(point));
  // RFC 5915 ECPrivateKey inside RFC 5208 PrivateKeyInfo, as OpenSSL writes it (curve named once, in the algorithm).
  const ecPrivateKey = sequence(smallInteger(1), octetString(scalar), explicit(1, bitString(point)));
  const pkcs8 = sequence(smallInteger(0), EC_P256_ALGORITHM, octetString(ecPrivateKey));
  return { keyPem: toPem('PRIVATE KEY', pkcs8), spki, keyId: keyIdOf(spki) };
}

// PKCS#8 of a P-256 key as createKeyPair and OpenSSL write it: fixed header, 32-byte scalar, public point.
const PKCS8_P256_HEADER = Buffer.from(
  '308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420',
  'hex',
);
const PKCS8_P256_LENGTH = 138;

/**
 * The uncompressed public point of a private key PEM, computed from its scalar. For the PKCS#8 layout above this
 * avoids OpenSSL's key decoder (~0.6 ms a key), which dominated re-reading thousands of vehicle keys; any other
 * layout takes the general path.
 */
export function publicPointOfKeyPem(keyPem: string): Uint8Array {
  let der: Uint8Array | undefined;
  try {
    der = fromPem('PRIVATE KEY', keyPem);
  } catch {
    der = undefined;
  }
  if (der?.length === PKCS8_P256_LENGTH && PKCS8_P256_HEADER.equals(der.subarray(0, PKCS8_P256_HEADER.length))) {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(der.subarray(PKCS8_P256_HEADER.length, PKCS8_P256_HEADER.length + 32));
    return new Uint8Array(ecdh.getPublicKey());
  }
  const spki = keyPairFromPem(keyPem).spki;
  return spki.subarray(spki.length - 65);
}

/** A key pair from its private key PEM (PKCS#8 or SEC1), with the key object for signing. */
export function keyPairFromPem(keyPem: string): KeyPair & { privateKey: KeyObject } {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    throw new PkiError('PKI_ERR_INVALID_PEM', 'not a private key PEM', { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PkiError('PKI_ERR_INVALID_PEM', 'expected an ECDSA P-256 private key');
  }
  const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    spki,
    keyId: keyIdOf(spki),
    privateKey,
  };
}
