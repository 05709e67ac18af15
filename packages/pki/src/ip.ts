// IP addresses as the 4 or 16 network-order bytes a subjectAltName iPAddress holds.
import { isIPv4, isIPv6 } from 'node:net';
import { PkiError } from './errors.js';

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

export function ipAddressBytes(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(ipv4Bytes(text));
  if (!isIPv6(text) || text.includes('%')) {
    throw new PkiError('PKI_ERR_INVALID_IP', `not an IPv4 or IPv6 address: ${JSON.stringify(text)}`);
  }
  // An embedded IPv4 tail (::ffff:1.2.3.4) stands for the last two 16-bit groups.
  let address = text;
  const lastColon = address.lastIndexOf(':');
  const tail = address.slice(lastColon + 1);
  if (isIPv4(tail)) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Bytes(tail);
    address = `${address.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = Number.parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}
