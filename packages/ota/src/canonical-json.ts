// Canonical JSON for signatures: the subset of RFC 8785 (JSON Canonicalization Scheme) that our value types need.
// Signer and verifier must produce the same bytes for the same value whatever order the keys arrived in.
import { OtaError } from './errors.js';

// With the `u` flag a paired surrogate is one code point, so this matches only lone surrogates.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Serialises `value` as RFC 8785 does, for the subset we allow:
 * - objects: keys sorted by UTF-16 code units (JavaScript's default sort, as RFC 8785 section 3.2.3 asks),
 *   properties whose value is `undefined` omitted (as JSON.stringify does, so a value and its JSON round trip agree);
 * - no whitespace anywhere;
 * - strings escaped as ECMAScript's JSON.stringify does (RFC 8785 section 3.2.2.2); lone surrogates are refused;
 * - numbers: safe integers only (|n| <= 2^53 - 1), printed as JSON.stringify prints them. Fractions, NaN,
 *   Infinity and -0 are refused rather than canonicalised, so no two implementations can disagree on them;
 * - true, false, null, arrays.
 * Anything else (undefined at top level or in an array, functions, symbols, bigint, Dates, class instances) throws
 * OTA_ERR_NOT_CANONICALIZABLE.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, '');
  return parts.join('');
}

/** UTF-8 bytes of canonicalJson(value): what gets signed. */
export function canonicalJsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

function write(value: unknown, out: string[], path: string): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
        throw refuse(path, `number ${String(value)} is not a safe integer`);
      }
      out.push(JSON.stringify(value));
      return;
    case 'string':
      if (LONE_SURROGATE.test(value)) throw refuse(path, 'string contains a lone surrogate');
      out.push(JSON.stringify(value));
      return;
    case 'object':
      break;
    default:
      throw refuse(path, `a ${typeof value} has no JSON form`);
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      write(value[i], out, `${path}/${i}`);
    }
    out.push(']');
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw refuse(path, 'only plain objects can be canonicalised');
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  out.push('{');
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (LONE_SURROGATE.test(key)) throw refuse(path, 'key contains a lone surrogate');
    if (i > 0) out.push(',');
    out.push(JSON.stringify(key), ':');
    write(record[key], out, `${path}/${key}`);
  }
  out.push('}');
}

function refuse(path: string, text: string): OtaError {
  return new OtaError('OTA_ERR_NOT_CANONICALIZABLE', `${path || '/'}: ${text}`);
}
