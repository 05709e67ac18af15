// Variable Byte Integer (MQTT 5.0 section 1.5.5): 1 to 4 bytes, 7 bits each, minimal encoding.
import { malformed } from './errors.js';

export const VARINT_MAX = 268_435_455;

export function varintLength(value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
}

export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value > 0) byte |= 0x80;
    buf[offset++] = byte;
  } while (value > 0);
  return offset;
}

/** Result of reading a varint: value and the offset after it. -1 as `next` means more bytes are needed. */
export interface VarintRead {
  value: number;
  next: number;
}

/**
 * Reads a varint at `offset` not past `end`. Returns next = -1 when the bytes end inside it.
 * Throws MQTT_ERR_VARINT_TOO_LONG for a fifth byte and MQTT_ERR_VARINT_NOT_MINIMAL for a padded encoding.
 */
export function readVarint(buf: Uint8Array, offset: number, end: number, out: VarintRead): VarintRead {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (offset + i >= end) {
      out.next = -1;
      return out;
    }
    const byte = buf[offset + i]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0)
        throw malformed('MQTT_ERR_VARINT_NOT_MINIMAL', 'a variable byte integer is not minimally encoded');
      out.value = value;
      out.next = offset + i + 1;
      return out;
    }
    multiplier *= 128;
  }
  // Four bytes, each with the continuation bit: whatever follows, it is too long.
  throw malformed('MQTT_ERR_VARINT_TOO_LONG', 'a variable byte integer is longer than 4 bytes');
}
