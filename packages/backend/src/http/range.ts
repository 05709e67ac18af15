// Parses an HTTP Range header against a known size (RFC 9110 §14). Pure, so every case is a table row in a test.
// Only one range is served: several ranges would need multipart/byteranges, which no OTA downloader asks for, so a
// multi-range request gets the whole representation (200) — RFC 9110 lets a server ignore Range.

export type RangeDecision =
  /** No usable Range: send the whole representation with 200. */
  | { kind: 'whole' }
  /** One satisfiable range, inclusive bounds. */
  | { kind: 'partial'; start: number; end: number }
  /** Syntactically valid but no byte of it exists: 416 with a Content-Range that names the size. */
  | { kind: 'unsatisfiable' };

const SPEC = /^(\d*)-(\d*)$/;

export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'whole' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'whole' };
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  // A malformed header is ignored (RFC 9110 §14.2), as is a multi-range one (see the file comment).
  if (specs.length !== 1) return { kind: 'whole' };
  const match = SPEC.exec(specs[0] as string);
  if (match === null) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    // Suffix range: the last n bytes.
    const length = Number(last);
    if (!Number.isSafeInteger(length)) return { kind: 'whole' };
    if (length === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start)) return { kind: 'whole' };
  if (last !== '') {
    const end = Number(last);
    // A last position before the first makes the spec invalid, so the header is ignored.
    if (!Number.isSafeInteger(end) || end < start) return { kind: 'whole' };
    if (start >= size) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start, end: Math.min(end, size - 1) };
  }
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: size - 1 };
}

/**
 * Whether an If-Range precondition lets the Range apply. Only strong ETags are compared (RFC 9110 §13.1.5); a date
 * is never a strong validator here because artifacts are content-addressed, so a date If-Range means "whole".
 */
export function ifRangeAllows(ifRange: string | undefined, etag: string): boolean {
  if (ifRange === undefined) return true;
  return ifRange.trim() === etag;
}

/** Whether an If-None-Match header matches the strong ETag (weak comparison, as RFC 9110 §13.1.2 asks). */
export function ifNoneMatchHits(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const bare = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === bare;
  });
}
