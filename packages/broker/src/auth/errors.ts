// Errors from the password file and ACL modules. Each names the file and, for content errors, the line, because the
// person who reads them is editing that file.

export type AuthFileErrorCode =
  /** A password file line is not `user:$scrypt$N=..,r=..,p=..$salt$hash`. */
  | 'BROKER_ERR_PASSWD_FORMAT'
  /** The password file cannot be read or written. */
  | 'BROKER_ERR_PASSWD_FILE'
  /** A user name that cannot be stored (empty, contains ':' or a line break). */
  | 'BROKER_ERR_PASSWD_USERNAME'
  /** `otalink passwd -D` or an update named a user the file does not have. */
  | 'BROKER_ERR_PASSWD_NO_SUCH_USER'
  /** The two passwords typed at the prompt differ, or none was given. */
  | 'BROKER_ERR_PASSWD_MISMATCH'
  | 'BROKER_ERR_PASSWD_EMPTY'
  /** Bad command-line use of `otalink passwd`. */
  | 'BROKER_ERR_PASSWD_USAGE'
  /** An ACL file line that cannot be parsed, or an ACL file that cannot be read. */
  | 'BROKER_ERR_ACL';

export class AuthFileError extends Error {
  override readonly name = 'AuthFileError';
  readonly code: AuthFileErrorCode;
  /** The file the error is about, when there is one. */
  readonly file: string | undefined;
  /** 1-based line in `file`, for content errors. */
  readonly line: number | undefined;

  constructor(
    code: AuthFileErrorCode,
    message: string,
    options: { file?: string; line?: number; cause?: unknown } = {},
  ) {
    const where =
      options.file === undefined
        ? ''
        : options.line === undefined
          ? `${options.file}: `
          : `${options.file}:${options.line}: `;
    super(`${where}${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.file = options.file;
    this.line = options.line;
  }
}
