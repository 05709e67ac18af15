// One error class for the package, with stable codes callers can branch on.

export type PkiErrorCode =
  | 'PKI_ERR_INVALID_OPTION'
  | 'PKI_ERR_INVALID_NAME'
  | 'PKI_ERR_INVALID_IP'
  | 'PKI_ERR_INVALID_PEM'
  | 'PKI_ERR_KEY_MISMATCH'
  | 'PKI_ERR_NOT_A_CA';

export class PkiError extends Error {
  readonly code: PkiErrorCode;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
  }
}
