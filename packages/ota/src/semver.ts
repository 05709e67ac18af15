// Semantic Versioning 2.0.0 parsing and precedence (semver.org section 11), for the "newer than installed" rule.

/** The official semver.org regular expression, anchored; no leading `v`, no leading zeros. */
export const SEMVER_PATTERN =
  '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)' +
  '(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?' +
  '(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$';

const SEMVER = new RegExp(SEMVER_PATTERN);

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: readonly string[];
  build: readonly string[];
}

/** undefined when `text` is not a semantic version, or when a numeric part is not a safe integer. */
export function parseSemver(text: string): SemVer | undefined {
  if (text.length > 256) return undefined;
  const m = SEMVER.exec(text);
  if (!m) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const patch = Number(m[3]);
  if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor) || !Number.isSafeInteger(patch)) return undefined;
  return {
    major,
    minor,
    patch,
    prerelease: m[4] === undefined ? [] : m[4].split('.'),
    build: m[5] === undefined ? [] : m[5].split('.'),
  };
}

export function isSemver(text: string): boolean {
  return parseSemver(text) !== undefined;
}

/**
 * Precedence: negative when a < b, 0 when equal, positive when a > b. Build metadata is ignored (so 1.0.0+a and
 * 1.0.0+b are equal: neither is newer); a pre-release is lower than its release (1.0.0-rc.1 < 1.0.0).
 */
export function compareSemver(a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major < b.major ? -1 : 1;
  if (a.minor !== b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch !== b.patch) return a.patch < b.patch ? -1 : 1;
  const pa = a.prerelease;
  const pb = b.prerelease;
  if (pa.length === 0 && pb.length === 0) return 0;
  if (pa.length === 0) return 1;
  if (pb.length === 0) return -1;
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const c = compareIdentifier(pa[i] as string, pb[i] as string);
    if (c !== 0) return c;
  }
  return pa.length === pb.length ? 0 : pa.length < pb.length ? -1 : 1;
}

const NUMERIC = /^\d+$/;

function compareIdentifier(a: string, b: string): number {
  const an = NUMERIC.test(a);
  const bn = NUMERIC.test(b);
  if (an && bn) {
    // Compare as numbers without precision limits: no leading zeros, so longer means larger.
    if (a.length !== b.length) return a.length < b.length ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (an) return -1;
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
