// The development PKI that `otalink up` and `otalink pki init` keep in one directory: a CA, the TLS server
// certificate shared by the broker and the backend's HTTPS (localhost, 127.0.0.1, ::1), the backend's MQTT client
// certificate, and per-VIN vehicle certificates under vehicles/. Files that are still good are reused, so vehicles
// and browsers that trust the CA keep working across restarts.
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { type CertificateAuthority, createCa, loadCa } from './ca.js';
import { PkiError } from './errors.js';
import { ensurePrivateDir, readIfExists, writeFileAtomic } from './files.js';
import { type IssuedCertificate, issueClientCert, issueServerCert } from './issue.js';
import { publicPointOfKeyPem } from './keys.js';

/** The subject CN of the backend's MQTT client certificate (its identity in the broker's ACL). */
export const BACKEND_IDENTITY = 'otalink-backend';
export const DEV_CA_NAME = 'otalink development CA';
export const DEV_SERVER_NAMES = {
  commonName: 'localhost',
  dnsNames: ['localhost'],
  ipAddresses: ['127.0.0.1', '::1'],
} as const;

/** Leaf certificates closer than this to expiry are re-issued at start-up. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

export interface CertPaths {
  cert: string;
  key: string;
}

export interface DevPkiPaths {
  dir: string;
  ca: CertPaths;
  server: CertPaths;
  backendClient: CertPaths;
  vehiclesDir: string;
}

export interface DevPki {
  paths: DevPkiPaths;
  ca: CertificateAuthority;
  /** TLS server certificate for the broker and the backend's HTTPS. */
  server: IssuedCertificate;
  /** MQTT client certificate of the backend (CN otalink-backend). */
  backendClient: IssuedCertificate;
  /** Files this call wrote; empty when everything was reused. */
  written: string[];
}

export function devPkiPaths(dir: string): DevPkiPaths {
  return {
    dir,
    ca: { cert: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem') },
    server: { cert: join(dir, 'server.pem'), key: join(dir, 'server-key.pem') },
    backendClient: { cert: join(dir, 'backend-client.pem'), key: join(dir, 'backend-client-key.pem') },
    vehiclesDir: join(dir, 'vehicles'),
  };
}

/** VINs become file names, so only the simulation VIN alphabet is accepted (no `/`, no `..`). */
const FILE_SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function vehicleCertPaths(dir: string, vin: string): CertPaths {
  if (!FILE_SAFE_ID.test(vin)) {
    throw new PkiError('PKI_ERR_INVALID_NAME', `not a VIN usable as a file name: ${JSON.stringify(vin)}`);
  }
  const vehiclesDir = devPkiPaths(dir).vehiclesDir;
  return { cert: join(vehiclesDir, `${vin}.pem`), key: join(vehiclesDir, `${vin}-key.pem`) };
}

async function writePair(paths: CertPaths, issued: IssuedCertificate, written: string[]): Promise<void> {
  await writeFileAtomic(paths.key, issued.keyPem, KEY_MODE);
  await writeFileAtomic(paths.cert, issued.certPem, CERT_MODE);
  written.push(paths.cert, paths.key);
}

const parsedCas = new WeakMap<CertificateAuthority, X509Certificate>();

/** The CA certificate parsed once, not once per vehicle certificate checked against it. */
function parsedCa(ca: CertificateAuthority): X509Certificate {
  let parsed = parsedCas.get(ca);
  if (parsed === undefined) {
    parsed = new X509Certificate(ca.certPem);
    parsedCas.set(ca, parsed);
  }
  return parsed;
}

/** An existing leaf that chains to `ca`, carries `commonName`, matches its key and is not about to expire. */
async function readLeaf(
  ca: CertificateAuthority,
  paths: CertPaths,
  commonName: string,
  accepts: (cert: X509Certificate) => boolean = () => true,
): Promise<IssuedCertificate | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(paths.cert), readIfExists(paths.key)]);
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new X509Certificate(certPem);
    const caCert = parsedCa(ca);
    const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
    const matchesKey = certSpki.subarray(certSpki.length - 65).equals(publicPointOfKeyPem(keyPem));
    const fresh = new Date(cert.validTo).getTime() - Date.now() > RENEW_BEFORE_MS;
    const good =
      cert.checkIssued(caCert) &&
      cert.verify(caCert.publicKey) &&
      cert.subject === `CN=${commonName}` &&
      matchesKey &&
      fresh &&
      accepts(cert);
    if (!good) return undefined;
    return {
      commonName,
      certPem,
      keyPem,
      serialNumber: cert.serialNumber,
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
    };
  } catch {
    // Unreadable leaf files are replaced; only the CA is precious.
    return undefined;
  }
}

async function loadOrCreateCa(paths: DevPkiPaths, written: string[]): Promise<CertificateAuthority> {
  const [certPem, keyPem] = await Promise.all([readIfExists(paths.ca.cert), readIfExists(paths.ca.key)]);
  if (certPem === undefined && keyPem === undefined) {
    const ca = await createCa({ commonName: DEV_CA_NAME, validDays: 3650 });
    await writePair(paths.ca, { ...ca, serialNumber: '', commonName: ca.commonName }, written);
    return ca;
  }
  // Half a CA, or one that does not load, is never silently replaced: everything issued by it would stop working.
  if (certPem === undefined || keyPem === undefined) {
    throw new PkiError(
      'PKI_ERR_INVALID_PEM',
      `${paths.dir}: found only one of ca.pem and ca-key.pem; restore the other or remove the directory to start over`,
    );
  }
  const ca = loadCa({ certPem, keyPem });
  if (ca.notAfter.getTime() <= Date.now()) {
    throw new PkiError('PKI_ERR_INVALID_PEM', `${paths.ca.cert}: the CA expired on ${ca.notAfter.toISOString()}`);
  }
  return ca;
}

export async function loadOrCreateDevPki(dir: string): Promise<DevPki> {
  const paths = devPkiPaths(dir);
  const written: string[] = [];
  await ensurePrivateDir(dir);
  const ca = await loadOrCreateCa(paths, written);
  const serverAccepts = (cert: X509Certificate) =>
    DEV_SERVER_NAMES.dnsNames.every((name) => cert.checkHost(name) !== undefined) &&
    DEV_SERVER_NAMES.ipAddresses.every((ip) => cert.checkIP(ip) !== undefined);
  let server = await readLeaf(ca, paths.server, DEV_SERVER_NAMES.commonName, serverAccepts);
  if (server === undefined) {
    server = await issueServerCert(ca, {
      commonName: DEV_SERVER_NAMES.commonName,
      dnsNames: [...DEV_SERVER_NAMES.dnsNames],
      ipAddresses: [...DEV_SERVER_NAMES.ipAddresses],
      validDays: 825,
    });
    await writePair(paths.server, server, written);
  }
  let backendClient = await readLeaf(ca, paths.backendClient, BACKEND_IDENTITY);
  if (backendClient === undefined) {
    backendClient = await issueClientCert(ca, { commonName: BACKEND_IDENTITY, validDays: 825 });
    await writePair(paths.backendClient, backendClient, written);
  }
  return { paths, ca, server, backendClient, written };
}

/**
 * Vehicle certificates (CN = VIN) under `vehicles/`, reusing those still good and issuing the rest. Returned in
 * the order of `vins`.
 */
export async function loadOrIssueVehicleCerts(
  pki: Pick<DevPki, 'ca' | 'paths'>,
  vins: readonly string[],
  options: { concurrency?: number } = {},
): Promise<Array<IssuedCertificate & { paths: CertPaths }>> {
  await ensurePrivateDir(pki.paths.vehiclesDir);
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const results = new Array<IssuedCertificate & { paths: CertPaths }>(vins.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < vins.length; i = next++) {
      const vin = vins[i] as string;
      const paths = vehicleCertPaths(pki.paths.dir, vin);
      let issued = await readLeaf(pki.ca, paths, vin);
      if (issued === undefined) {
        issued = await issueClientCert(pki.ca, { commonName: vin });
        await writePair(paths, issued, []);
      }
      results[i] = { ...issued, paths };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, vins.length) }, worker));
  return results;
}
