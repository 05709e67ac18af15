// The certificate authority: created with @peculiar/x509 over Node's WebCrypto (it is made once), and loaded back
// from PEM with what issuing leaves needs kept at hand: its subject name DER, key id and signing key.
import './reflect-metadata.js';
import { type KeyObject, X509Certificate as NodeCertificate, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError } from './errors.js';
import { type KeyPair, keyPairFromPem } from './keys.js';
import { checkCommonName, checkValidDays } from './names.js';

const crypto = webcrypto as unknown as Crypto;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** Clocks of vehicles and test machines drift; certificates start counting a little in the past. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 3600 * 1000;

export interface CertificateAuthority {
  readonly commonName: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The CA's subject Name, DER: the issuer of every certificate it signs. */
  readonly subjectDer: Uint8Array;
  /** Its subjectKeyIdentifier: the authorityKeyIdentifier of every certificate it signs. */
  readonly keyId: Uint8Array;
  readonly key: KeyPair & { readonly privateKey: KeyObject };
}

export interface CreateCaOptions {
  commonName: string;
  /** Default 3650. */
  validDays?: number;
}

/** A 128-bit positive serial whose first byte is never 0, so its DER INTEGER is always 16 bytes. */
export function randomSerial(): Uint8Array {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40;
  return new Uint8Array(serial);
}

export async function createCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  checkCommonName(options.commonName);
  const validDays = options.validDays ?? 3650;
  checkValidDays(validDays);
  const keys = (await crypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(randomSerial()).toString('hex'),
      name: [{ CN: [options.commonName] }],
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + validDays * DAY_MS),
      keys,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        // pathLength 0: this CA signs leaf certificates only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = x509.PemConverter.encode(pkcs8.buffer as ArrayBuffer, 'PRIVATE KEY');
  return loadCa({ certPem: certificate.toString('pem'), keyPem });
}

/** A CA from its certificate and private key PEM; checks that it is a CA and that the key belongs to it. */
export function loadCa(pem: { certPem: string; keyPem: string }): CertificateAuthority {
  let nodeCert: NodeCertificate;
  let certificate: x509.X509Certificate;
  try {
    nodeCert = new NodeCertificate(pem.certPem);
    certificate = new x509.X509Certificate(pem.certPem);
  } catch (err) {
    throw new PkiError('PKI_ERR_INVALID_PEM', 'CA certificate is not a PEM X.509 certificate', { cause: err });
  }
  if (!nodeCert.ca) throw new PkiError('PKI_ERR_NOT_A_CA', `${nodeCert.subject} is not a CA certificate`);
  const key = keyPairFromPem(pem.keyPem);
  const certSpki = nodeCert.publicKey.export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(key.spki)) {
    throw new PkiError('PKI_ERR_KEY_MISMATCH', 'the CA private key does not belong to the CA certificate');
  }
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const commonName = certificate.subjectName.getField('CN')[0] ?? nodeCert.subject;
  return {
    commonName,
    certPem: `${pem.certPem.trim()}\n`,
    keyPem: key.keyPem,
    notBefore: new Date(nodeCert.validFrom),
    notAfter: new Date(nodeCert.validTo),
    subjectDer: new Uint8Array(certificate.subjectName.toArrayBuffer()),
    keyId: ski === null ? key.keyId : new Uint8Array(Buffer.from(ski.keyId, 'hex')),
    key,
  };
}
