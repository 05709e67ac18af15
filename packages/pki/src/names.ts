// What may go into a subject CN and a DNS subjectAltName.
import { PkiError } from './errors.js';

/** X.520 caps a common name at 64 characters; control characters would confuse logs and ACL identities. */
export function checkCommonName(commonName: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (commonName.length === 0 || commonName.length > 64 || /[\u0000-\u001f\u007f]/.test(commonName)) {
    throw new PkiError(
      'PKI_ERR_INVALID_NAME',
      `common name must be 1..64 characters without control characters: ${JSON.stringify(commonName)}`,
    );
  }
}

const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function checkDnsName(name: string): void {
  if (name.length > 253 || !DNS_NAME.test(name)) {
    throw new PkiError('PKI_ERR_INVALID_NAME', `not a DNS name: ${JSON.stringify(name)}`);
  }
}

export function checkValidDays(days: number): void {
  if (!Number.isFinite(days) || days <= 0 || days > 36_500) {
    throw new PkiError('PKI_ERR_INVALID_OPTION', `validDays must be a positive number of days, got ${days}`);
  }
}
