// UTF-8 for MQTT strings: exact byte length, encoding into a buffer, and decoding with the specifications' checks
// (well-formed UTF-8, no surrogates, no U+0000). ASCII, the common case for topics, takes a loop with no
// allocation beyond the string itself.
import { MqttError } from './errors.js';

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Bytes `s` takes in UTF-8. Throws for a lone surrogate or U+0000, which no MQTT string may contain ([MQTT-1.5.4-1],
 * [MQTT-1.5.4-2]): the peer's decoder would close the connection as on a Malformed Packet.
 */
export function utf8Length(s: string): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) throw nulChar();
      continue;
    }
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) throw loneSurrogate();
      bytes += 2; // two UTF-16 units (counted as 2) become 4 bytes
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/**
 * One pass over a topic name for the PUBLISH path: its UTF-8 length, or -1 if it holds `+`, `#` or U+0000.
 * Throws for a lone surrogate.
 */
export function topicNameBytes(s: string): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0x2b || c === 0x23 || c === 0) return -1;
    } else if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) throw loneSurrogate();
      bytes += 2;
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

function loneSurrogate(): MqttError {
  return new MqttError('MQTT_ERR_INVALID_UTF8', 'a string contains a lone UTF-16 surrogate', { reasonCode: 0x81 });
}

/** Writes `s` (whose UTF-8 length the caller computed) at `offset`; returns the offset after it. */
export function writeUtf8(buf: Uint8Array, offset: number, s: string, byteLength: number): number {
  if (byteLength === s.length) {
    // Equal lengths mean every code unit is ASCII, so Latin-1 bytes are the UTF-8 bytes.
    if (NodeBuffer !== undefined && buf instanceof NodeBuffer) {
      (buf as Latin1Sliceable).latin1Write!(s, offset, byteLength);
      return offset + byteLength;
    }
    for (let i = 0; i < byteLength; i++) buf[offset + i] = s.charCodeAt(i);
    return offset + byteLength;
  }
  encoder.encodeInto(s, buf.subarray(offset, offset + byteLength));
  return offset + byteLength;
}

/**
 * Decodes `len` bytes at `offset` as an MQTT UTF-8 string. Throws MQTT_ERR_INVALID_UTF8 (0x81) for ill-formed
 * UTF-8, encoded surrogates or U+0000.
 */
export function readUtf8(buf: Uint8Array, offset: number, len: number): string {
  // Measured on Node 20: the native decoder beats building strings byte by byte from about 8 bytes on.
  const end = offset + len;
  if (len < 8) {
    let s = '';
    for (let i = offset; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return readNonAscii(buf, offset, end);
      if (c === 0) throw nulChar();
      s += String.fromCharCode(c);
    }
    return s;
  }
  return readNonAscii(buf, offset, end);
}

/** Node's Buffer, seen without importing it: native Latin-1 slice and write, without a view object per call. */
interface Latin1Sliceable extends Uint8Array {
  latin1Slice?: (start: number, end: number) => string;
  latin1Write?: (s: string, offset: number, length: number) => number;
}

// Found through globalThis, so browsers (no Buffer) load this module and simply skip the fast paths.
const NodeBuffer = (globalThis as unknown as { Buffer?: new () => Latin1Sliceable }).Buffer;

// Anything that needs the full UTF-8 decode or a topic name error: U+0000, the wildcards, any byte from 0x80.
const NOT_PLAIN_TOPIC = /[\0#+\u0080-\u00ff]/;

/**
 * The PUBLISH topic fast path: when `buf` is a Node Buffer and the bytes are ASCII without U+0000, + or #, the
 * topic name as a string, already known valid. Otherwise undefined, and the caller takes readUtf8 and the topic
 * checks, which give every error exactly as before. Latin-1 equals UTF-8 on ASCII bytes.
 */
export function readPlainTopicName(buf: Uint8Array, offset: number, len: number): string | undefined {
  if (len === 0 || NodeBuffer === undefined || !(buf instanceof NodeBuffer)) return undefined;
  const s = (buf as Latin1Sliceable).latin1Slice!(offset, offset + len); // every Buffer has it
  return NOT_PLAIN_TOPIC.test(s) ? undefined : s;
}

function readNonAscii(buf: Uint8Array, offset: number, end: number): string {
  let s: string;
  try {
    s = fatalDecoder.decode(buf.subarray(offset, end));
  } catch (cause) {
    throw new MqttError('MQTT_ERR_INVALID_UTF8', 'a string is not well-formed UTF-8', { reasonCode: 0x81, cause });
  }
  if (s.indexOf('\u0000') !== -1) throw nulChar();
  return s;
}

function nulChar(): MqttError {
  return new MqttError('MQTT_ERR_INVALID_UTF8', 'a string contains U+0000', { reasonCode: 0x81 });
}
