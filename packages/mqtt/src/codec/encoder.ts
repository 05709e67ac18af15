// MQTT encoder: exact length first, then one write into a preallocated buffer. `encodeInto` writes into the
// caller's buffer (a socket's coalescing buffer); `encode` allocates exactly. The PUBLISH path builds no
// intermediate arrays. Packets are checked as they are measured, so nothing is written for an invalid packet.

import { topicNameProblem, validateTopicFilter } from '../topic/validate.js';
import { MqttError } from './errors.js';
import { allocatePacket } from './packet-buffer.js';
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  SubackPacket,
  SubscribePacket,
  UnsubackPacket,
  UnsubscribePacket,
} from './packets.js';
import { isPacketId } from './packets.js';
import { type PropertyContext, propertiesLength, writeProperties, writeString } from './properties.js';
import { allowedReasonCodes, allowedSubackCodes311 } from './reason-codes.js';
import { topicNameBytes, utf8Length, writeUtf8 } from './utf8.js';
import { VARINT_MAX, varintLength, writeVarint } from './varint.js';

// Results of the last measure(): read by the write step that immediately follows (single-threaded, no re-entry).
let remaining = 0;
let topicBytes = 0;
let propsBytes = 0;
let willPropsBytes = 0;

function invalid(message: string): MqttError {
  return new MqttError('MQTT_ERR_INVALID_PACKET', message);
}

function stringBytes(s: string, what: string): number {
  if (typeof s !== 'string') throw invalid(`${what} must be a string`);
  const n = utf8Length(s);
  if (n > 0xffff) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `${what} is longer than 65535 bytes`);
  return n;
}

function binaryBytes(b: Uint8Array, what: string): number {
  if (!(b instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`);
  if (b.length > 0xffff) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `${what} is longer than 65535 bytes`);
  return b.length;
}

function checkPacketId(id: number | undefined, type: string): void {
  if (!isPacketId(id)) {
    throw invalid(`${type} needs a packet id from 1 to 65535, got ${String(id)}`);
  }
}

function checkU8(value: number | undefined, what: string): number {
  const v = value ?? 0;
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `${what}: ${v}`);
  return v;
}

/** A reason code the peer's decoder accepts: the 5.0 table of the packet, or the 3.1.1 return codes. */
function checkReason(type: keyof typeof allowedReasonCodes, value: number | undefined, v5: boolean): number {
  const v = checkU8(value, `${type} reason code`);
  const allowed = v5
    ? allowedReasonCodes[type].has(v)
    : type === 'connack'
      ? v <= 5
      : type !== 'suback' || allowedSubackCodes311.has(v);
  if (!allowed) throw invalid(`reason code 0x${v.toString(16)} is not valid in ${type.toUpperCase()}`);
  return v;
}

/** Length of a property block including its length prefix (0 bytes of content still take 1). */
function propsBlock(props: Properties | undefined, context: PropertyContext): number {
  propsBytes = propertiesLength(props, context);
  return varintLength(propsBytes) + propsBytes;
}

/** Measures `packet`, validating it; sets `remaining` and the part lengths. Returns the total length. */
function measure(packet: Packet, version: ProtocolVersion): number {
  const v5 = version === 5;
  let n: number;
  switch (packet.type) {
    case 'publish':
      return measurePublish(packet, v5);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      checkPacketId(packet.packetId, packet.type);
      n = 2;
      if (v5) {
        checkReason(packet.type, packet.reasonCode, true);
        propsBytes = propertiesLength(packet.properties, packet.type);
        if (propsBytes > 0) n += 1 + varintLength(propsBytes) + propsBytes;
        else if ((packet.reasonCode ?? 0) !== 0) n += 1;
      }
      break;
    case 'connect':
      n = measureConnect(packet, v5);
      break;
    case 'connack':
      n = 2;
      // [MQTT-3.2.2-4] (3.1.1) and 3.2.2.1.1 (5.0): a refusal never has a session.
      if (checkReason('connack', packet.reasonCode, v5) !== 0 && packet.sessionPresent) {
        throw invalid('CONNACK refusing the connection must not set session present');
      }
      if (v5) n += propsBlock(packet.properties, 'connack');
      break;
    case 'subscribe':
      n = measureSubscribe(packet, v5);
      break;
    case 'suback':
    case 'unsuback':
      n = measureAckList(packet, v5);
      break;
    case 'unsubscribe':
      n = measureUnsubscribe(packet, v5);
      break;
    case 'pingreq':
    case 'pingresp':
      n = 0;
      break;
    case 'disconnect':
    case 'auth':
      if (!v5) {
        if (packet.type === 'auth') throw invalid('AUTH exists only in MQTT 5.0');
        n = 0;
        break;
      }
      checkReason(packet.type, packet.reasonCode, true);
      propsBytes = propertiesLength(packet.properties, packet.type);
      // 5.0 3.15.2.2.2: only the bare success AUTH may omit the authentication method.
      if (packet.type === 'auth' && packet.properties?.authenticationMethod === undefined) {
        if (propsBytes > 0 || (packet.reasonCode ?? 0) !== 0) throw invalid('AUTH needs an authentication method');
      }
      n = propsBytes > 0 ? 1 + varintLength(propsBytes) + propsBytes : (packet.reasonCode ?? 0) !== 0 ? 1 : 0;
      break;
    default:
      throw invalid(`unknown packet type "${(packet as { type: unknown }).type}"`);
  }
  if (n > VARINT_MAX)
    throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `a ${packet.type} packet of ${n} bytes is too large`);
  remaining = n;
  return 1 + varintLength(n) + n;
}

// U+0000, the wildcards and every non-ASCII code unit (surrogates included).
const NOT_PLAIN_TOPIC = /[\0#+\u0080-\uffff]/;
/**
 * The last topic the scan found plain: a PUBLISH is measured more than once on its way out (checked when queued,
 * then encoded), and a device publishes to a few topics over and over. Strings are immutable, so equal is plain.
 */
let lastPlainTopic = '';

function measurePublish(packet: PublishPacket, v5: boolean): number {
  const { topic, qos, payload } = packet;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw invalid(`PUBLISH with QoS ${String(qos)}`);
  if (qos > 0) checkPacketId(packet.packetId, 'PUBLISH with QoS > 0');
  else if (packet.dup) throw invalid('PUBLISH with QoS 0 must not set DUP');
  if (!(payload instanceof Uint8Array)) throw invalid('PUBLISH payload must be a Uint8Array');
  if (typeof topic !== 'string') throw invalid('topic name must be a string');
  // One native regex scan clears the usual all-ASCII topic; anything else takes the per-character measure.
  if (topic === lastPlainTopic) topicBytes = topic.length;
  else if (NOT_PLAIN_TOPIC.test(topic)) topicBytes = topicNameBytes(topic);
  else {
    topicBytes = topic.length;
    lastPlainTopic = topic;
  }
  if (topicBytes < 0) {
    const problem = topicNameProblem(topic) ?? 'invalid topic name';
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `${problem}: "${topic}"`, { reasonCode: 0x90 });
  }
  if (topicBytes > 0xffff) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', 'topic name is longer than 65535 bytes');
  if (topicBytes === 0 && (!v5 || packet.properties?.topicAlias === undefined)) {
    throw invalid('PUBLISH needs a topic name or a topic alias');
  }
  let n = 2 + topicBytes + (qos > 0 ? 2 : 0) + payload.length;
  if (v5) {
    checkResponseTopic(packet.properties?.responseTopic);
    propsBytes = packet.properties === undefined ? 0 : propertiesLength(packet.properties, 'publish');
    n += varintLength(propsBytes) + propsBytes;
  }
  if (n > VARINT_MAX) throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `a PUBLISH packet of ${n} bytes is too large`);
  remaining = n;
  return 1 + varintLength(n) + n;
}

/**
 * [MQTT-3.3.2-14]: a Response Topic is a topic name. One with a wildcard makes the server close the connection
 * (ours and Mosquitto's, 0x82), and a stored message carrying it would do so again at every reconnect.
 */
export function checkResponseTopic(topic: string | undefined): void {
  if (topic === undefined) return;
  const problem = typeof topic === 'string' ? topicNameProblem(topic) : 'must be a string';
  if (problem !== undefined) {
    throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `response topic: ${problem}: "${String(topic)}"`, {
      reasonCode: 0x82,
    });
  }
}

function writePublish(packet: PublishPacket, v5: boolean, buf: Uint8Array, o: number): number {
  buf[o++] = 0x30 | (packet.dup ? 8 : 0) | (packet.qos << 1) | (packet.retain ? 1 : 0);
  o = writeVarint(buf, o, remaining);
  buf[o++] = topicBytes >>> 8;
  buf[o++] = topicBytes & 0xff;
  o = writeUtf8(buf, o, packet.topic, topicBytes);
  if (packet.qos > 0) {
    buf[o++] = packet.packetId! >>> 8;
    buf[o++] = packet.packetId! & 0xff;
  }
  if (v5) {
    if (propsBytes === 0) buf[o++] = 0;
    else o = writeProperties(buf, o, packet.properties, propsBytes);
  }
  const payload = packet.payload;
  const n = payload.length;
  // TypedArray.set has a fixed cost that dominates for small payloads; a loop is cheaper below ~64 bytes.
  if (n < 64) for (let i = 0; i < n; i++) buf[o + i] = payload[i]!;
  else buf.set(payload, o);
  return o + n;
}

function measureConnect(packet: ConnectPacket, v5: boolean): number {
  if (!Number.isInteger(packet.keepalive) || packet.keepalive < 0 || packet.keepalive > 0xffff) {
    throw new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `keepalive must be 0..65535 seconds, got ${packet.keepalive}`);
  }
  let n = 12 + stringBytes(packet.clientId, 'client id'); // name(6) + level + flags + keepalive(2) + id length(2)
  if (v5) n += propsBlock(packet.properties, 'connect');
  // 5.0 3.1.2.11.10: the receiver treats data without a method as a Protocol Error.
  if (
    v5 &&
    packet.properties?.authenticationData !== undefined &&
    packet.properties.authenticationMethod === undefined
  ) {
    throw invalid('authentication data needs an authentication method');
  }
  const will = packet.will;
  if (will !== undefined) {
    if (will.qos !== 0 && will.qos !== 1 && will.qos !== 2) throw invalid(`will QoS ${String(will.qos)}`);
    const tb = stringBytes(will.topic, 'will topic');
    const problem = tb === 0 ? 'a will topic must not be empty' : topicNameProblem(will.topic);
    if (problem !== undefined) throw invalid(problem);
    n += 2 + tb + 2 + binaryBytes(will.payload, 'will payload');
    if (v5) {
      checkResponseTopic(will.properties?.responseTopic);
      willPropsBytes = propertiesLength(will.properties, 'will');
      n += varintLength(willPropsBytes) + willPropsBytes;
    }
  }
  if (packet.username !== undefined) n += 2 + stringBytes(packet.username, 'user name');
  if (packet.password !== undefined) {
    if (!v5 && packet.username === undefined) throw invalid('MQTT 3.1.1 allows a password only with a user name');
    n += 2 + binaryBytes(packet.password, 'password');
  }
  return n;
}

function measureSubscribe(packet: SubscribePacket, v5: boolean): number {
  checkPacketId(packet.packetId, 'SUBSCRIBE');
  if (!Array.isArray(packet.subscriptions) || packet.subscriptions.length === 0) {
    throw invalid('SUBSCRIBE needs at least one subscription');
  }
  let n = 2;
  if (v5) n += propsBlock(packet.properties, 'subscribe');
  for (const s of packet.subscriptions) {
    validateTopicFilter(s.topicFilter);
    if (s.qos !== 0 && s.qos !== 1 && s.qos !== 2) throw invalid(`subscription QoS ${String(s.qos)}`);
    const rh = s.retainHandling ?? 0;
    if (rh !== 0 && rh !== 1 && rh !== 2) throw invalid(`retain handling ${String(rh)}`);
    // 5.0 [MQTT-3.8.3-4]: the receiver treats this as a Protocol Error.
    if (v5 && s.noLocal && s.topicFilter.startsWith('$share/')) {
      throw invalid(`no local must not be set on shared subscription "${s.topicFilter}"`);
    }
    n += 3 + stringBytes(s.topicFilter, 'topic filter');
  }
  return n;
}

function measureUnsubscribe(packet: UnsubscribePacket, v5: boolean): number {
  checkPacketId(packet.packetId, 'UNSUBSCRIBE');
  if (!Array.isArray(packet.topicFilters) || packet.topicFilters.length === 0) {
    throw invalid('UNSUBSCRIBE needs at least one topic filter');
  }
  let n = 2;
  if (v5) n += propsBlock(packet.properties, 'unsubscribe');
  for (const f of packet.topicFilters) {
    validateTopicFilter(f);
    n += 2 + stringBytes(f, 'topic filter');
  }
  return n;
}

function measureAckList(packet: SubackPacket | UnsubackPacket, v5: boolean): number {
  checkPacketId(packet.packetId, packet.type.toUpperCase());
  let n = 2;
  if (packet.type === 'unsuback' && !v5) return n;
  if (v5) n += propsBlock(packet.properties, packet.type);
  const codes = packet.reasonCodes ?? [];
  if (codes.length === 0) throw invalid(`${packet.type.toUpperCase()} needs at least one reason code`);
  for (const c of codes) checkReason(packet.type, c, v5);
  return n + codes.length;
}

// ---- writing ----

function writeU16(buf: Uint8Array, o: number, v: number): number {
  buf[o] = v >>> 8;
  buf[o + 1] = v & 0xff;
  return o + 2;
}

function writeBinary(buf: Uint8Array, o: number, b: Uint8Array): number {
  o = writeU16(buf, o, b.length);
  buf.set(b, o);
  return o + b.length;
}

const TYPE_BYTE: Record<Packet['type'], number> = {
  connect: 0x10,
  connack: 0x20,
  publish: 0x30,
  puback: 0x40,
  pubrec: 0x50,
  pubrel: 0x62,
  pubcomp: 0x70,
  subscribe: 0x82,
  suback: 0x90,
  unsubscribe: 0xa2,
  unsuback: 0xb0,
  pingreq: 0xc0,
  pingresp: 0xd0,
  disconnect: 0xe0,
  auth: 0xf0,
};

function write(packet: Packet, v5: boolean, buf: Uint8Array, o: number): number {
  switch (packet.type) {
    case 'publish':
      return writePublish(packet, v5, buf, o);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      buf[o++] = TYPE_BYTE[packet.type];
      o = writeVarint(buf, o, remaining);
      o = writeU16(buf, o, packet.packetId);
      if (remaining > 2) buf[o++] = packet.reasonCode ?? 0;
      if (remaining > 3) o = writeProperties(buf, o, packet.properties, propsBytes);
      return o;
    case 'connect':
      return writeConnect(packet, v5, buf, o);
    case 'connack':
      return writeConnack(packet, v5, buf, o);
    case 'subscribe': {
      buf[o++] = 0x82;
      o = writeVarint(buf, o, remaining);
      o = writeU16(buf, o, packet.packetId);
      if (v5) o = writeProperties(buf, o, packet.properties, propsBytes);
      for (const s of packet.subscriptions) {
        o = writeString(buf, o, s.topicFilter);
        let options = s.qos;
        if (v5) {
          if (s.noLocal) options |= 4;
          if (s.retainAsPublished) options |= 8;
          options |= (s.retainHandling ?? 0) << 4;
        }
        buf[o++] = options;
      }
      return o;
    }
    case 'suback':
    case 'unsuback': {
      buf[o++] = TYPE_BYTE[packet.type];
      o = writeVarint(buf, o, remaining);
      o = writeU16(buf, o, packet.packetId);
      if (packet.type === 'unsuback' && !v5) return o;
      if (v5) o = writeProperties(buf, o, packet.properties, propsBytes);
      for (const c of packet.reasonCodes ?? []) buf[o++] = c;
      return o;
    }
    case 'unsubscribe': {
      buf[o++] = 0xa2;
      o = writeVarint(buf, o, remaining);
      o = writeU16(buf, o, packet.packetId);
      if (v5) o = writeProperties(buf, o, packet.properties, propsBytes);
      for (const f of packet.topicFilters) o = writeString(buf, o, f);
      return o;
    }
    case 'pingreq':
    case 'pingresp':
      buf[o++] = TYPE_BYTE[packet.type];
      buf[o++] = 0;
      return o;
    case 'disconnect':
    case 'auth':
      buf[o++] = TYPE_BYTE[packet.type];
      o = writeVarint(buf, o, remaining);
      if (remaining > 0) buf[o++] = packet.reasonCode ?? 0;
      if (remaining > 1) o = writeProperties(buf, o, packet.properties, propsBytes);
      return o;
  }
}

function writeConnect(packet: ConnectPacket, v5: boolean, buf: Uint8Array, o: number): number {
  buf[o++] = 0x10;
  o = writeVarint(buf, o, remaining);
  o = writeString(buf, o, 'MQTT');
  buf[o++] = v5 ? 5 : 4;
  const will = packet.will;
  let flags = packet.clean ? 0x02 : 0;
  if (will !== undefined) flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0);
  if (packet.password !== undefined) flags |= 0x40;
  if (packet.username !== undefined) flags |= 0x80;
  buf[o++] = flags;
  o = writeU16(buf, o, packet.keepalive);
  if (v5) o = writeProperties(buf, o, packet.properties, propsBytes);
  o = writeString(buf, o, packet.clientId);
  if (will !== undefined) {
    if (v5) o = writeProperties(buf, o, will.properties, willPropsBytes);
    o = writeString(buf, o, will.topic);
    o = writeBinary(buf, o, will.payload);
  }
  if (packet.username !== undefined) o = writeString(buf, o, packet.username);
  if (packet.password !== undefined) o = writeBinary(buf, o, packet.password);
  return o;
}

function writeConnack(packet: ConnackPacket, v5: boolean, buf: Uint8Array, o: number): number {
  buf[o++] = 0x20;
  o = writeVarint(buf, o, remaining);
  buf[o++] = packet.sessionPresent ? 1 : 0;
  buf[o++] = packet.reasonCode;
  if (v5) o = writeProperties(buf, o, packet.properties, propsBytes);
  return o;
}

/** Exact encoded size of `packet` in bytes; throws MqttError if the packet is invalid. */
export function encodedLength(packet: Packet, version: ProtocolVersion): number {
  return measure(packet, version);
}

/** Encodes into `buf` at `offset`; returns the offset after the packet. Throws (writing nothing) if it does not fit. */
export function encodeInto(packet: Packet, version: ProtocolVersion, buf: Uint8Array, offset: number): number {
  if (packet.type === 'publish') {
    const size = measurePublish(packet, version === 5);
    if (offset + size > buf.length) throw tooSmall(size, offset);
    return writePublish(packet, version === 5, buf, offset);
  }
  const total = measure(packet, version);
  if (offset + total > buf.length) {
    throw tooSmall(total, offset);
  }
  return write(packet, version === 5, buf, offset);
}

function tooSmall(size: number, offset: number): MqttError {
  return new MqttError('MQTT_ERR_VALUE_OUT_OF_RANGE', `buffer too small: need ${size} bytes at offset ${offset}`);
}

/** Encodes `packet` into a new buffer of exactly its size. */
export function encode(packet: Packet, version: ProtocolVersion): Uint8Array {
  if (packet.type === 'publish') {
    const out = allocatePacket(measurePublish(packet, version === 5));
    writePublish(packet, version === 5, out, 0);
    return out;
  }
  const buf = allocatePacket(measure(packet, version));
  write(packet, version === 5, buf, 0);
  return buf;
}
