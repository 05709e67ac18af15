// Leaf certificates (servers and clients) signed by a CertificateAuthority, built directly in DER (see der.ts for
// why) and signed with node:crypto, which returns ECDSA signatures already in the DER form X.509 wants.
import { sign } from 'node:crypto';
import { promisify } from 'node:util';
import { type CertificateAuthority, CLOCK_SKEW_MS, randomSerial } from './ca.js';
import {
  bitString,
  booleanTrue,
  type Der,
  explicit,
  implicitPrimitive,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der.js';
import { ipAddressBytes } from './ip.js';
import { createKeyPair, type KeyPair } from './keys.js';
import { checkCommonName, checkDnsName, checkValidDays } from './names.js';
import { toPem } from './pem.js';

const OID = {
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const DAY_MS = 24 * 3600 * 1000;
// The callback form signs on the libuv thread pool: issuing many certificates at once uses every core.
const signAsync = promisify(sign);
const ecdsaWithSha256 = sequence(oid(OID.ecdsaWithSha256));
/** keyUsage digitalSignature only: with ECDHE an EC leaf key signs the handshake and nothing else. */
const digitalSignatureOnly = Uint8Array.of(0x03, 0x02, 0x07, 0x80);

export interface IssuedCertificate {
  readonly commonName: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** Hex, as openssl prints it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

interface LeafOptions {
  /** Default 365. */
  validDays?: number;
  /** Reuse a key pair (see createKeyPair); default: a new one per certificate. */
  keyPair?: KeyPair;
}

export interface ServerCertOptions extends LeafOptions {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface ClientCertOptions extends LeafOptions {
  /** The identity: a VIN for a vehicle, `otalink-backend` for the backend. */
  commonName: string;
}

function extension(id: string, critical: boolean, value: Der): Der {
  return critical ? sequence(oid(id), booleanTrue, octetString(value)) : sequence(oid(id), octetString(value));
}

async function buildLeaf(
  ca: CertificateAuthority,
  key: KeyPair,
  commonName: string,
  validDays: number,
  usage: 'serverAuth' | 'clientAuth',
  altNames: Der[],
): Promise<IssuedCertificate> {
  const now = Date.now();
  const notBefore = new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + validDays * DAY_MS) / 1000) * 1000);
  const serial = randomSerial();
  const extensions = [
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, digitalSignatureOnly),
    extension(OID.extKeyUsage, false, sequence(oid(OID[usage]))),
    extension(OID.subjectKeyIdentifier, false, octetString(key.keyId)),
    extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, ca.keyId))),
  ];
  if (altNames.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...altNames)));
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(serial),
    ecdsaWithSha256,
    ca.subjectDer,
    sequence(time(notBefore), time(notAfter)),
    sequence(set(sequence(oid(OID.commonName), utf8String(commonName)))),
    key.spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = await signAsync('sha256', tbs, ca.key.privateKey);
  const certificate = sequence(tbs, ecdsaWithSha256, bitString(signature));
  return {
    commonName,
    certPem: toPem('CERTIFICATE', certificate),
    keyPem: key.keyPem,
    serialNumber: Buffer.from(serial).toString('hex').toUpperCase(),
    notBefore,
    notAfter,
  };
}

/** A TLS server certificate (broker, backend HTTPS): serverAuth, with the names clients will check. */
export async function issueServerCert(
  ca: CertificateAuthority,
  options: ServerCertOptions,
): Promise<IssuedCertificate> {
  checkCommonName(options.commonName);
  const validDays = options.validDays ?? 365;
  checkValidDays(validDays);
  const dnsNames = options.dnsNames ?? [];
  for (const name of dnsNames) checkDnsName(name);
  const altNames = [
    ...dnsNames.map((name) => implicitPrimitive(2, new TextEncoder().encode(name))),
    ...(options.ipAddresses ?? []).map((ip) => implicitPrimitive(7, ipAddressBytes(ip))),
  ];
  const key = options.keyPair ?? (await createKeyPair());
  return buildLeaf(ca, key, options.commonName, validDays, 'serverAuth', altNames);
}

/** A TLS client certificate whose subject CN is the identity the broker's ACL keys on. */
export async function issueClientCert(
  ca: CertificateAuthority,
  options: ClientCertOptions,
): Promise<IssuedCertificate> {
  checkCommonName(options.commonName);
  const validDays = options.validDays ?? 365;
  checkValidDays(validDays);
  const key = options.keyPair ?? (await createKeyPair());
  return buildLeaf(ca, key, options.commonName, validDays, 'clientAuth', []);
}

/**
 * Client certificates for many identities. Key generation runs on the thread pool, `concurrency` at a time, so a
 * fleet of 10 000 takes seconds, not minutes.
 */
export async function issueClientCerts(
  ca: CertificateAuthority,
  commonNames: readonly string[],
  options: Omit<ClientCertOptions, 'commonName'> & { concurrency?: number } = {},
): Promise<IssuedCertificate[]> {
  const concurrency = Math.max(1, options.concurrency ?? 64);
  const results = new Array<IssuedCertificate>(commonNames.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < commonNames.length; i = next++) {
      results[i] = await issueClientCert(ca, { ...options, commonName: commonNames[i] as string });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, commonNames.length) }, worker));
  return results;
}
