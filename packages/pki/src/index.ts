// @otalink/pki: a small X.509 PKI for development and simulation (ECDSA P-256). A CA, TLS server certificates and
// client certificates whose CN is the identity (a VIN, or otalink-backend) the broker's ACL confines.
export { type CertificateAuthority, type CreateCaOptions, createCa, loadCa } from './ca.js';
export {
  BACKEND_IDENTITY,
  type CertPaths,
  DEV_CA_NAME,
  DEV_SERVER_NAMES,
  type DevPki,
  type DevPkiPaths,
  devPkiPaths,
  loadOrCreateDevPki,
  loadOrIssueVehicleCerts,
  vehicleCertPaths,
} from './dev-pki.js';
export { PkiError, type PkiErrorCode } from './errors.js';
export {
  type ClientCertOptions,
  type IssuedCertificate,
  issueClientCert,
  issueClientCerts,
  issueServerCert,
  type ServerCertOptions,
} from './issue.js';
export { createKeyPair, type KeyPair, keyPairFromPem } from './keys.js';
export { fromPem, toPem } from './pem.js';
