// MQTT 5.0 properties (section 2.2.2): identifier, data type, and the packets each may appear in.
import { MqttError, malformed, protocolError } from './errors.js';
import type { Properties, PropertyName } from './packets.js';
import { readUtf8, utf8Length, writeUtf8 } from './utf8.js';
import { readVarint, type VarintRead, varintLength, writeVarint } from './varint.js';

/** Where a property block sits: a packet type, or the will properties inside CONNECT. */
export type PropertyContext =
  | 'connect'
  | 'will'
  | 'connack'
  | 'publish'
  | 'puback'
  | 'pubrec'
  | 'pubrel'
  | 'pubcomp'
  | 'subscribe'
  | 'suback'
  | 'unsubscribe'
  | 'unsuback'
  | 'disconnect'
  | 'auth';

const CONTEXT_BIT: Record<PropertyContext, number> = {
  connect: 1 << 0,
  will: 1 << 1,
  connack: 1 << 2,
  publish: 1 << 3,
  puback: 1 << 4,
  pubrec: 1 << 5,
  pubrel: 1 << 6,
  pubcomp: 1 << 7,
  subscribe: 1 << 8,
  suback: 1 << 9,
  unsubscribe: 1 << 10,
  unsuback: 1 << 11,
  disconnect: 1 << 12,
  auth: 1 << 13,
};

type Kind = 'byte' | 'bool' | 'u16' | 'u32' | 'varint' | 'utf8' | 'binary' | 'pair';

export interface PropertyDef {
  id: number;
  name: PropertyName;
  kind: Kind;
  /** Bit set of PropertyContext where it may appear. */
  contexts: number;
  /** May appear more than once (User Property everywhere, Subscription Identifier in PUBLISH). */
  repeatable?: boolean;
  /** Zero is a Protocol Error (Receive Maximum, Maximum Packet Size, Topic Alias, Subscription Identifier). */
  nonZero?: boolean;
}

function ctx(...names: PropertyContext[]): number {
  let bits = 0;
  for (const n of names) bits |= CONTEXT_BIT[n];
  return bits;
}

const ACKS = ctx('connack', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'disconnect', 'auth');
const ALL = ctx(
  'connect',
  'will',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'disconnect',
  'auth',
);

export const PROPERTY_DEFS: readonly PropertyDef[] = [
  { id: 0x01, name: 'payloadFormatIndicator', kind: 'bool', contexts: ctx('publish', 'will') },
  { id: 0x02, name: 'messageExpiryInterval', kind: 'u32', contexts: ctx('publish', 'will') },
  { id: 0x03, name: 'contentType', kind: 'utf8', contexts: ctx('publish', 'will') },
  { id: 0x08, name: 'responseTopic', kind: 'utf8', contexts: ctx('publish', 'will') },
  { id: 0x09, name: 'correlationData', kind: 'binary', contexts: ctx('publish', 'will') },
  {
    id: 0x0b,
    name: 'subscriptionIdentifiers',
    kind: 'varint',
    contexts: ctx('publish', 'subscribe'),
    repeatable: true,
    nonZero: true,
  },
  { id: 0x11, name: 'sessionExpiryInterval', kind: 'u32', contexts: ctx('connect', 'connack', 'disconnect') },
  { id: 0x12, name: 'assignedClientIdentifier', kind: 'utf8', contexts: ctx('connack') },
  { id: 0x13, name: 'serverKeepAlive', kind: 'u16', contexts: ctx('connack') },
  { id: 0x15, name: 'authenticationMethod', kind: 'utf8', contexts: ctx('connect', 'connack', 'auth') },
  { id: 0x16, name: 'authenticationData', kind: 'binary', contexts: ctx('connect', 'connack', 'auth') },
  { id: 0x17, name: 'requestProblemInformation', kind: 'bool', contexts: ctx('connect') },
  { id: 0x18, name: 'willDelayInterval', kind: 'u32', contexts: ctx('will') },
  { id: 0x19, name: 'requestResponseInformation', kind: 'bool', contexts: ctx('connect') },
  { id: 0x1a, name: 'responseInformation', kind: 'utf8', contexts: ctx('connack') },
  { id: 0x1c, name: 'serverReference', kind: 'utf8', contexts: ctx('connack', 'disconnect') },
  { id: 0x1f, name: 'reasonString', kind: 'utf8', contexts: ACKS },
  { id: 0x21, name: 'receiveMaximum', kind: 'u16', contexts: ctx('connect', 'connack'), nonZero: true },
  { id: 0x22, name: 'topicAliasMaximum', kind: 'u16', contexts: ctx('connect', 'connack') },
  { id: 0x23, name: 'topicAlias', kind: 'u16', contexts: ctx('publish'), nonZero: true },
  { id: 0x24, name: 'maximumQoS', kind: 'bool', contexts: ctx('connack') },
  { id: 0x25, name: 'retainAvailable', kind: 'bool', contexts: ctx('connack') },
  { id: 0x26, name: 'userProperties', kind: 'pair', contexts: ALL, repeatable: true },
  { id: 0x27, name: 'maximumPacketSize', kind: 'u32', contexts: ctx('connect', 'connack'), nonZero: true },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', kind: 'bool', contexts: ctx('connack') },
  { id: 0x29, name: 'subscriptionIdentifierAvailable', kind: 'bool', contexts: ctx('connack') },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', kind: 'bool', contexts: ctx('connack') },
];

const BY_ID: (PropertyDef | undefined)[] = [];
for (const def of PROPERTY_DEFS) BY_ID[def.id] = def;

export function propertyById(id: number): PropertyDef | undefined {
  return BY_ID[id];
}

// ---- decoding ----

const vr: VarintRead = { value: 0, next: 0 };

/**
 * Reads a property block (length + properties) at `offset` within a packet ending at `end`.
 * Returns the properties (undefined when the block is empty) and stores the offset after the block in `out.next`.
 */
export function readProperties(
  buf: Uint8Array,
  offset: number,
  end: number,
  context: PropertyContext,
  out: VarintRead,
): Properties | undefined {
  readVarint(buf, offset, end, vr);
  if (vr.next === -1) throw truncated();
  const blockEnd = vr.next + vr.value;
  if (blockEnd > end) throw malformed('MQTT_ERR_LENGTH_MISMATCH', 'the property length runs past the packet');
  out.next = blockEnd;
  if (vr.value === 0) return undefined;
  const props: Properties = {};
  const bit = CONTEXT_BIT[context];
  let seenLo = 0;
  let seenHi = 0;
  let p = vr.next;
  while (p < blockEnd) {
    readVarint(buf, p, blockEnd, vr);
    if (vr.next === -1) throw truncated();
    const id = vr.value;
    p = vr.next;
    const def = BY_ID[id];
    if (def === undefined) {
      throw malformed('MQTT_ERR_UNKNOWN_PROPERTY', `unknown property identifier 0x${id.toString(16)}`);
    }
    if ((def.contexts & bit) === 0) {
      throw malformed('MQTT_ERR_PROPERTY_NOT_ALLOWED', `property ${def.name} is not allowed in ${context}`);
    }
    if (!def.repeatable) {
      const mask = 1 << (id & 31);
      if (id < 32) {
        if (seenLo & mask) throw duplicate(def);
        seenLo |= mask;
      } else {
        if (seenHi & mask) throw duplicate(def);
        seenHi |= mask;
      }
    }
    p = readValue(buf, p, blockEnd, def, props, context);
  }
  return props;
}

function duplicate(def: PropertyDef): MqttError {
  return protocolError('MQTT_ERR_DUPLICATE_PROPERTY', `property ${def.name} appears more than once`);
}

function truncated(): MqttError {
  return malformed('MQTT_ERR_LENGTH_MISMATCH', 'a property runs past the end of its block');
}

function need(p: number, n: number, end: number): void {
  if (p + n > end) throw truncated();
}

function readValue(
  buf: Uint8Array,
  p: number,
  end: number,
  def: PropertyDef,
  props: Properties,
  context: PropertyContext,
): number {
  const target = props as Record<string, unknown>;
  switch (def.kind) {
    case 'bool':
    case 'byte': {
      need(p, 1, end);
      const v = buf[p]!;
      if (def.kind === 'bool' && v > 1) {
        throw protocolError('MQTT_ERR_INVALID_PROPERTY_VALUE', `property ${def.name} must be 0 or 1, got ${v}`);
      }
      target[def.name] = v;
      return p + 1;
    }
    case 'u16': {
      need(p, 2, end);
      const v = (buf[p]! << 8) | buf[p + 1]!;
      if (v === 0 && def.nonZero) throw zeroValue(def);
      target[def.name] = v;
      return p + 2;
    }
    case 'u32': {
      need(p, 4, end);
      const v = buf[p]! * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!);
      if (v === 0 && def.nonZero) throw zeroValue(def);
      target[def.name] = v;
      return p + 4;
    }
    case 'varint': {
      readVarint(buf, p, end, vr);
      if (vr.next === -1) throw truncated();
      if (vr.value === 0 && def.nonZero) throw zeroValue(def);
      const list = (target[def.name] as number[] | undefined) ?? [];
      if (list.length > 0 && context === 'subscribe') throw duplicate(def);
      list.push(vr.value);
      target[def.name] = list;
      return vr.next;
    }
    case 'utf8': {
      need(p, 2, end);
      const len = (buf[p]! << 8) | buf[p + 1]!;
      need(p + 2, len, end);
      target[def.name] = readUtf8(buf, p + 2, len);
      return p + 2 + len;
    }
    case 'binary': {
      need(p, 2, end);
      const len = (buf[p]! << 8) | buf[p + 1]!;
      need(p + 2, len, end);
      target[def.name] = buf.subarray(p + 2, p + 2 + len);
      return p + 2 + len;
    }
    case 'pair': {
      need(p, 2, end);
      const klen = (buf[p]! << 8) | buf[p + 1]!;
      need(p + 2, klen, end);
      const key = readUtf8(buf, p + 2, klen);
      let q = p + 2 + klen;
      need(q, 2, end);
      const vlen = (buf[q]! << 8) | buf[q + 1]!;
      need(q + 2, vlen, end);
      const value = readUtf8(buf, q + 2, vlen);
      q += 2 + vlen;
      const list = (target[def.name] as Array<[string, string]> | undefined) ?? [];
      list.push([key, value]);
      target[def.name] = list;
      return q;
    }
  }
}

function zeroValue(def: PropertyDef): MqttError {
  const reasonCode = def.id === 0x23 ? 0x94 : 0x82;
  return new MqttError('MQTT_ERR_INVALID_PROPERTY_VALUE', `property ${def.name} must not be 0`, { reasonCode });
}

// ---- encoding ----

function invalid(message: string): MqttError {
  return new MqttError('MQTT_ERR_INVALID_PACKET', message);
}

function checkRange(def: PropertyDef, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max || (v === 0 && def.nonZero)) {
    throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `property ${def.name} out of range: ${String(v)}`);
  }
  return v;
}

function stringLength(def: PropertyDef, s: unknown): number {
  if (typeof s !== 'string') throw invalid(`property ${def.name} must be a string`);
  const n = utf8Length(s);
  if (n > 0xffff) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `property ${def.name} is longer than 65535 bytes`);
  return n;
}

function binaryLength(def: PropertyDef, b: unknown): number {
  if (!(b instanceof Uint8Array)) throw invalid(`property ${def.name} must be a Uint8Array`);
  if (b.length > 0xffff) {
    throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `property ${def.name} is longer than 65535 bytes`);
  }
  return b.length;
}

/** Byte length of the property content (excluding its own length prefix). Validates names, places and ranges. */
export function propertiesLength(props: Properties | undefined, context: PropertyContext): number {
  if (props === undefined) return 0;
  const bit = CONTEXT_BIT[context];
  let total = 0;
  const source = props as Record<string, unknown>;
  for (const name in source) {
    const v = source[name];
    if (v === undefined) continue;
    const def = BY_NAME.get(name);
    if (def === undefined) throw invalid(`unknown property "${name}"`);
    if ((def.contexts & bit) === 0) throw invalid(`property ${name} is not allowed in ${context}`);
    switch (def.kind) {
      case 'bool':
      case 'byte':
        checkRange(def, v, def.kind === 'bool' ? 1 : 0xff);
        total += 2;
        break;
      case 'u16':
        checkRange(def, v, 0xffff);
        total += 3;
        break;
      case 'u32':
        checkRange(def, v, 0xffffffff);
        total += 5;
        break;
      case 'varint': {
        if (!Array.isArray(v)) throw invalid(`property ${name} must be an array of numbers`);
        if (context === 'subscribe' && v.length > 1)
          throw invalid('SUBSCRIBE carries at most one subscription identifier');
        for (const id of v) total += 1 + varintLength(checkRange(def, id, 268_435_455));
        break;
      }
      case 'utf8':
        total += 3 + stringLength(def, v);
        break;
      case 'binary':
        total += 3 + binaryLength(def, v);
        break;
      case 'pair': {
        if (!Array.isArray(v)) throw invalid(`property ${name} must be an array of [name, value] pairs`);
        for (const pair of v as unknown[]) {
          if (!Array.isArray(pair) || pair.length !== 2)
            throw invalid(`property ${name} must hold [name, value] pairs`);
          total += 5 + stringLength(def, pair[0]) + stringLength(def, pair[1]);
        }
        break;
      }
    }
  }
  return total;
}

const BY_NAME = new Map<string, PropertyDef>(PROPERTY_DEFS.map((d) => [d.name, d]));

/** Writes the length prefix and the properties whose content length `length` came from `propertiesLength`. */
export function writeProperties(
  buf: Uint8Array,
  offset: number,
  props: Properties | undefined,
  length: number,
): number {
  offset = writeVarint(buf, offset, length);
  if (props === undefined || length === 0) return offset;
  const source = props as Record<string, unknown>;
  for (const name in source) {
    const v = source[name];
    if (v === undefined) continue;
    const def = BY_NAME.get(name)!;
    switch (def.kind) {
      case 'bool':
      case 'byte':
        buf[offset++] = def.id;
        buf[offset++] = v as number;
        break;
      case 'u16':
        buf[offset++] = def.id;
        buf[offset++] = (v as number) >>> 8;
        buf[offset++] = (v as number) & 0xff;
        break;
      case 'u32': {
        const n = v as number;
        buf[offset++] = def.id;
        buf[offset++] = n >>> 24;
        buf[offset++] = (n >>> 16) & 0xff;
        buf[offset++] = (n >>> 8) & 0xff;
        buf[offset++] = n & 0xff;
        break;
      }
      case 'varint':
        for (const id of v as number[]) {
          buf[offset++] = def.id;
          offset = writeVarint(buf, offset, id);
        }
        break;
      case 'utf8':
        buf[offset++] = def.id;
        offset = writeString(buf, offset, v as string);
        break;
      case 'binary': {
        const b = v as Uint8Array;
        buf[offset++] = def.id;
        buf[offset++] = b.length >>> 8;
        buf[offset++] = b.length & 0xff;
        buf.set(b, offset);
        offset += b.length;
        break;
      }
      case 'pair':
        for (const [key, value] of v as Array<[string, string]>) {
          buf[offset++] = def.id;
          offset = writeString(buf, offset, key);
          offset = writeString(buf, offset, value);
        }
        break;
    }
  }
  return offset;
}

/** Two-byte length + UTF-8 string. */
export function writeString(buf: Uint8Array, offset: number, s: string): number {
  const n = utf8Length(s);
  buf[offset] = n >>> 8;
  buf[offset + 1] = n & 0xff;
  return writeUtf8(buf, offset + 2, s, n);
}
