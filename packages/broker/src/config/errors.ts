// The one error a bad broker configuration produces: it names where the value came from (file and line, an
// environment variable or a command-line flag) and the key, so the fix is one look away.

/** Where a setting came from. */
export type SettingOrigin =
  | { kind: 'file'; file: string; line: number }
  | { kind: 'env'; name: string }
  | { kind: 'flag'; name: string }
  | { kind: 'default' };

export class BrokerConfigError extends Error {
  override readonly name = 'BrokerConfigError';
  readonly code = 'BROKER_ERR_CONFIG';
  /** The config file, or the password/ACL file it points at; undefined for environment variables and flags. */
  readonly file: string | undefined;
  /** 1-based line in `file`. */
  readonly line: number | undefined;
  /** The config key; for environment variables and flags, their own name (OTALINK_BROKER_PORT, --port). */
  readonly key: string;

  constructor(origin: SettingOrigin, key: string, problem: string, options?: { cause?: unknown }) {
    const where =
      origin.kind === 'file'
        ? `${origin.file}:${origin.line}: ${key}`
        : origin.kind === 'env'
          ? `environment ${origin.name}`
          : origin.kind === 'flag'
            ? origin.name
            : key;
    super(`${where}: ${problem}`, options);
    this.file = origin.kind === 'file' ? origin.file : undefined;
    this.line = origin.kind === 'file' ? origin.line : undefined;
    this.key = origin.kind === 'env' || origin.kind === 'flag' ? origin.name : key;
  }
}
