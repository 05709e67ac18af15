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
