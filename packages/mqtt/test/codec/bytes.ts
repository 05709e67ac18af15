// Test helpers for writing packets as annotated hex listings and comparing decoded packets.
//
// `hex` reads a listing: hex byte pairs separated by spaces, `"text"` for the UTF-8 bytes of a literal (so a topic
// reads as itself, while its length prefix is still written by hand), and `#` to the end of a line for a comment.
import { prng } from '../support/prng.js';

/** Re-exported for the codec tests: every random split and fuzz input replays from its seed. */
export { prng };

const utf8 = new TextEncoder();

export function hex(strings: TemplateStringsArray, ...values: unknown[]): Uint8Array {
  let source = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) source += String(values[i]) + (strings[i + 1] ?? '');
  const out: number[] = [];
  for (const line of source.split('\n')) {
    let i = 0;
    while (i < line.length) {
      const c = line[i];
      if (c === '#') break;
      if (c === ' ' || c === '\t' || c === '|' || c === '\r') {
        i++;
      } else if (c === '"') {
        const close = line.indexOf('"', i + 1);
        if (close === -1) throw new Error(`unterminated string in hex listing: ${line}`);
        for (const b of utf8.encode(line.slice(i + 1, close))) out.push(b);
        i = close + 1;
      } else {
        const pair = line.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(pair)) throw new Error(`bad hex "${pair}" in listing: ${line}`);
        out.push(Number.parseInt(pair, 16));
        i += 2;
      }
    }
  }
  return Uint8Array.from(out);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * A plain copy of a decoded packet for deep comparison: keys whose value is undefined dropped (the decoder may
 * set `packetId: undefined`), byte views copied into standalone Uint8Arrays.
 */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = plain(v);
    return out;
  }
  return value;
}

/** Cuts `bytes` at random points into 1..maxPieces chunks (views, no copy). */
export function randomSplit(bytes: Uint8Array, random: () => number, maxPieces = 8): Uint8Array[] {
  const pieces = 1 + Math.floor(random() * maxPieces);
  const cuts = new Set<number>();
  for (let i = 1; i < pieces && bytes.length > 1; i++) cuts.add(1 + Math.floor(random() * (bytes.length - 1)));
  const sorted = [...cuts].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of sorted) {
    out.push(bytes.subarray(from, cut));
    from = cut;
  }
  out.push(bytes.subarray(from));
  return out;
}
