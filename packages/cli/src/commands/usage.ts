// What the sub-commands share for their command lines: the usage error and the parsers of common values.

/** A bad flag or argument: the command prints it with the usage and exits 2. */
export class UsageError extends Error {}

/** A percentage flag, `N` or `N%`, within 0..100. */
export function parsePercent(text: string, flag: string): number {
  const value = Number(text.replace(/%$/, ''));
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 100) {
    throw new UsageError(`${flag} must be a percentage 0..100, got "${text}"`);
  }
  return value;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration flag in whole seconds: `90`, `90s`, `15m`, `12h`, `30d`. */
export function parseDurationSeconds(text: string, flag: string): number {
  const m = /^([0-9]{1,9})([smhd]?)$/.exec(text.trim());
  if (m === null) throw new UsageError(`${flag} must be a duration like 3600, 90s, 15m, 12h or 30d, got "${text}"`);
  return Number(m[1]) * (DURATION_UNITS[m[2] || 's'] as number);
}
