// Incremental MQTT decoder: bytes in any chunking, packets out. "Need more bytes" is a normal result
// (`next()` returns undefined); anything the specifications call malformed or a protocol error throws an
// MqttError carrying the reason code to send. The packet size limit is enforced from the fixed header, before
// the body is buffered. Decoded binary fields are views into the input: zero copy when a packet lies inside one
// chunk, one exactly-sized copy when it spans several.

import { parseSharedSubscription, topicNameProblem, validateTopicFilter } from '../topic/validate.js';
import { MqttError, malformed, protocolError } from './errors.js';
import { bufferView, viewsAsBuffer } from './packet-buffer.js';
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
  Will,
} from './packets.js';
import { type PropertyContext, readProperties } from './properties.js';
import { allowedReasonCodes, allowedSubackCodes311 } from './reason-codes.js';
import { readPlainTopicName, readUtf8 } from './utf8.js';
import { readVarint, VARINT_MAX, type VarintRead } from './varint.js';

/** The largest packet MQTT can express: 1 byte of type, 4 of length, 268 435 455 of body. */
export const MAX_PACKET_SIZE = 1 + 4 + VARINT_MAX;

export interface DecoderOptions {
  /** Known up front on a client; on a server, learned from CONNECT. */
  protocolVersion?: ProtocolVersion;
  /** Whole-packet limit in bytes (fixed header included), as MQTT 5's Maximum Packet Size. */
  maximumPacketSize?: number;
  /**
   * Which end decodes: 'server' accepts only packets a client may send (and CONNECT first), 'client' only what a
   * server may send. Omitted: any packet.
   */
  role?: 'server' | 'client';
}

const C = 1;
const S = 2;
// Which end may send each packet type (bit C: client, bit S: server), by type number; 0 marks a reserved type.
const DIRECTION: number[] = [0, C, S, C | S, C | S, C | S, C | S, C | S, C, S, C, S, C, S, C | S, C | S];
const TYPE_NAMES = [
  'reserved',
  'connect',
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
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
] as const;

const EMPTY = new Uint8Array(0);

/**
 * A packet spanning chunks up to this size is gathered in a buffer of its exact size, allocated from its fixed header;
 * a larger one in a buffer that doubles as its bytes arrive (a copy of what came so far each time, at most the
 * packet's size in all), so that a header claiming up to the maximum packet size costs only the bytes that follow.
 */
const ASM_EXACT = 64 * 1024;

// Out-parameters of readVarint and readProperties, shared by every decoder: decoding is synchronous and never
// nests across decoders, and two objects per decoder would be two more allocations per connection.
const VR: VarintRead = { value: 0, next: 0 };
const PR: VarintRead = { value: 0, next: 0 };

export class Decoder {
  protocolVersion: ProtocolVersion | undefined;
  maximumPacketSize: number;
  readonly role: 'server' | 'client' | undefined;

  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private end = 0;
  /** Bytes that arrived after an assembled packet completed, waiting until it is consumed. */
  private rest: Uint8Array | null = null;
  /**
   * A packet spanning chunks, gathered into a buffer that ends at its exact size (`asmTotal`). A large one starts
   * smaller and doubles as bytes arrive: the length a header claims reserves no memory until the bytes come.
   */
  private asm: Uint8Array | null = null;
  private asmFill = 0;
  private asmTotal = 0;
  /** The buffer whose payload views are made by bufferView, with its memory and offset in it (looked up once). */
  private viewSource: Uint8Array | null = null;
  private viewMemory: ArrayBuffer | null = null;
  private viewBase = 0;
  /** A server decoder has seen CONNECT: a second is a protocol error ([MQTT-3.1.0-2]). Set by decoding or restart. */
  private seenConnect = false;
  /** Read position inside a CONNECT being decoded (see connect). */
  private cp = 0;
  /** Where the packet `next` returned last lies, for `lastFrame`. */
  private frameBuf: Uint8Array = EMPTY;
  private frameStart = 0;
  private frameEnd = 0;

  constructor(options: DecoderOptions = {}) {
    this.protocolVersion = options.protocolVersion;
    this.maximumPacketSize = options.maximumPacketSize ?? MAX_PACKET_SIZE;
    this.role = options.role;
  }

  /** Whether this (server) decoder's stream has sent its CONNECT; read-only outside: `restart` sets it for a stream. */
  get connectSeen(): boolean {
    return this.seenConnect;
  }

  /**
   * The bytes of the packet `next` returned last, as a view into the received chunk (valid as long as the payload
   * view is): a broker forwards a PUBLISH that needs no change without encoding it again. Empty once `next` has
   * returned undefined (the decoder then holds no reference to the chunk).
   */
  lastFrame(): Uint8Array {
    const buf = this.frameBuf;
    // A read that carried one packet (each, at low rates) is that frame: no view to make.
    if (this.frameStart === 0 && this.frameEnd === buf.length) return buf;
    return buf.subarray(this.frameStart, this.frameEnd);
  }

  /**
   * Whether the packet `next` returned last is all of the memory beneath it (a read that carried that packet alone):
   * views into it then keep nothing else alive, so a payload kept for later need not be copied out.
   */
  frameOwnsMemory(): boolean {
    const buf = this.frameBuf;
    return (
      this.frameStart === 0 &&
      this.frameEnd === buf.length &&
      buf === this.viewSource &&
      this.viewBase === 0 &&
      this.viewMemory!.byteLength === buf.length
    );
  }

  /** Bytes received and not yet returned as packets. */
  get buffered(): number {
    return this.end - this.pos + (this.rest?.length ?? 0) + this.asmFill;
  }

  /**
   * Everything received is decoded: drop the references to the last chunk, so an idle connection does not keep it
   * (and its Buffer and ArrayBuffer objects) alive. Payload views already handed out keep their own reference.
   */
  private release(): void {
    if (this.buf !== EMPTY) this.dropChunk();
  }

  /** Drops every reference to the current chunk (restart also drops what waits beside it). */
  private dropChunk(): void {
    this.buf = EMPTY;
    this.pos = 0;
    this.end = 0;
    this.frameBuf = EMPTY;
    this.viewSource = null;
    this.viewMemory = null;
  }

  /**
   * Starts over on another stream, or on the same one after a pause: what was buffered is dropped, and the stream's
   * state is the one given. A server shares a few decoders among its connections this way (each takes one for a read
   * and gives it back once nothing is left buffered), so that an idle connection holds none.
   */
  restart(protocolVersion: ProtocolVersion | undefined, connectSeen: boolean, maximumPacketSize: number): void {
    this.dropChunk();
    this.rest = null;
    this.asm = null;
    this.asmFill = 0;
    this.frameStart = 0;
    this.frameEnd = 0;
    this.protocolVersion = protocolVersion;
    this.seenConnect = connectSeen;
    this.maximumPacketSize = maximumPacketSize;
  }

  /** Adds received bytes. The decoder keeps views into `chunk`: the caller must not overwrite it afterwards. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.asm !== null) {
      const n = Math.min(this.asmTotal - this.asmFill, chunk.length);
      if (this.asmFill + n > this.asm.length) {
        const grown = new Uint8Array(Math.min(this.asmTotal, Math.max(this.asm.length * 2, this.asmFill + n)));
        grown.set(this.asm.subarray(0, this.asmFill));
        this.asm = grown;
      }
      this.asm.set(n === chunk.length ? chunk : chunk.subarray(0, n), this.asmFill);
      this.asmFill += n;
      if (this.asmFill === this.asmTotal) {
        this.buf = this.asm;
        this.pos = 0;
        this.end = this.asmTotal;
        this.asm = null;
        this.asmFill = 0;
        if (n < chunk.length) this.rest = chunk.subarray(n);
      }
      return;
    }
    if (this.rest !== null) {
      this.rest = concat(this.rest, 0, this.rest.length, chunk);
    } else if (this.pos < this.end) {
      this.buf = concat(this.buf, this.pos, this.end, chunk);
      this.pos = 0;
      this.end = this.buf.length;
    } else {
      this.buf = chunk;
      this.pos = 0;
      this.end = chunk.length;
    }
  }

  /** The next complete packet, or undefined when more bytes are needed. Throws MqttError on bad input. */
  next(): Packet | undefined {
    for (;;) {
      if (this.asm !== null) return undefined;
      if (this.pos === this.end) {
        if (this.rest === null) {
          this.release();
          return undefined;
        }
        this.buf = this.rest;
        this.pos = 0;
        this.end = this.rest.length;
        this.rest = null;
      }
      const buf = this.buf;
      const start = this.pos;
      const b0 = buf[start]!;
      const type = b0 >> 4;
      // PUBLISH once the version is known passes every direction and first-packet check: only its flags remain.
      if (type === 3 && this.protocolVersion !== undefined) {
        if ((b0 & 0x06) === 0x06 || (b0 & 0x0e) === 0x08) this.checkFixedHeader(type, b0 & 0x0f);
      } else {
        this.checkFixedHeader(type, b0 & 0x0f);
      }
      let bodyStart: number;
      let remaining: number;
      // Remaining lengths under 16 384 (one or two bytes) are read inline; longer ones by readVarint.
      const b1 = start + 1 < this.end ? buf[start + 1]! : 0x80;
      if (b1 < 0x80) {
        bodyStart = start + 2;
        remaining = b1;
      } else if (start + 2 < this.end && buf[start + 2]! < 0x80 && buf[start + 2]! !== 0) {
        bodyStart = start + 3;
        remaining = (b1 & 0x7f) | (buf[start + 2]! << 7);
      } else {
        readVarint(buf, start + 1, this.end, VR);
        if (VR.next === -1) {
          if (this.rest !== null) {
            this.mergeRest();
            continue;
          }
          return undefined;
        }
        bodyStart = VR.next;
        remaining = VR.value;
      }
      const total = bodyStart - start + remaining;
      if (total > this.maximumPacketSize) {
        throw new MqttError(
          'MQTT_ERR_PACKET_TOO_LARGE',
          `a ${TYPE_NAMES[type]} packet of ${total} bytes exceeds the maximum packet size of ${this.maximumPacketSize}`,
          { reasonCode: 0x95 },
        );
      }
      const available = this.end - start;
      if (available < total) {
        if (this.rest !== null) {
          this.mergeRest();
          continue;
        }
        // Up to ASM_EXACT bytes, the exact size at once; beyond, room for twice what came, grown in push.
        const asm = new Uint8Array(total <= ASM_EXACT ? total : Math.min(total, Math.max(ASM_EXACT, 2 * available)));
        asm.set(buf.subarray(start, this.end));
        this.asm = asm;
        this.asmFill = available;
        this.asmTotal = total;
        this.buf = EMPTY;
        this.pos = this.end = 0;
        return undefined;
      }
      this.pos = start + total;
      this.frameBuf = buf;
      this.frameStart = start;
      this.frameEnd = start + total;
      return this.decodeBody(type, b0 & 0x0f, buf, bodyStart, start + total);
    }
  }

  private mergeRest(): void {
    this.buf = concat(this.buf, this.pos, this.end, this.rest!);
    this.pos = 0;
    this.end = this.buf.length;
    this.rest = null;
  }

  private checkFixedHeader(type: number, flags: number): void {
    const direction = type === 15 && this.protocolVersion === 4 ? 0 : DIRECTION[type]!;
    if (direction === 0) {
      throw malformed('MQTT_ERR_UNKNOWN_PACKET_TYPE', `packet type ${type} is reserved in this protocol version`);
    }
    if (type === 3) {
      if ((flags & 0x06) === 0x06) throw malformed('MQTT_ERR_INVALID_QOS', 'PUBLISH with QoS 3');
      if ((flags & 0x08) !== 0 && (flags & 0x06) === 0) {
        throw malformed('MQTT_ERR_RESERVED_FLAGS', 'PUBLISH with QoS 0 must have the DUP flag clear');
      }
    } else {
      const expected = type === 6 || type === 8 || type === 10 ? 2 : 0;
      if (flags !== expected) {
        throw malformed(
          'MQTT_ERR_RESERVED_FLAGS',
          `${TYPE_NAMES[type]} has fixed header flags 0b${flags.toString(2).padStart(4, '0')}, expected 0b${expected.toString(2).padStart(4, '0')}`,
        );
      }
    }
    if (this.role !== undefined && (direction & (this.role === 'server' ? C : S)) === 0) {
      throw protocolError(
        'MQTT_ERR_UNEXPECTED_PACKET',
        `a ${this.role === 'server' ? 'client' : 'server'} must not send ${TYPE_NAMES[type]}`,
      );
    }
    if (this.protocolVersion === undefined && type !== 1) {
      throw protocolError('MQTT_ERR_UNEXPECTED_PACKET', `the first packet must be CONNECT, got ${TYPE_NAMES[type]}`);
    }
  }

  private decodeBody(type: number, flags: number, buf: Uint8Array, p: number, end: number): Packet {
    switch (type) {
      case 3:
        return this.publish(flags, buf, p, end);
      case 4:
      case 5:
      case 6:
      case 7:
        return this.pubAck(TYPE_NAMES[type] as 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', buf, p, end);
      case 1:
        return this.connect(buf, p, end);
      case 2:
        return this.connack(buf, p, end);
      case 8:
        return this.subscribe(buf, p, end);
      case 9:
        return this.suback(buf, p, end);
      case 10:
        return this.unsubscribe(buf, p, end);
      case 11:
        return this.unsuback(buf, p, end);
      case 12:
      case 13:
        if (p !== end) throw lengthMismatch(TYPE_NAMES[type]);
        return type === 12 ? { type: 'pingreq' } : { type: 'pingresp' };
      case 14:
        return this.disconnect(buf, p, end);
      default:
        return this.auth(buf, p, end);
    }
  }

  private properties(buf: Uint8Array, p: number, end: number, context: PropertyContext): Properties | undefined {
    return readProperties(buf, p, end, context, PR);
  }

  private publish(flags: number, buf: Uint8Array, p: number, end: number): PublishPacket {
    const qos = ((flags >> 1) & 3) as QoS;
    if (p + 2 > end) throw lengthMismatch('publish');
    const topicLength = (buf[p]! << 8) | buf[p + 1]!;
    p += 2;
    if (p + topicLength > end) throw lengthMismatch('publish');
    const plainTopic = readPlainTopicName(buf, p, topicLength);
    const topic = plainTopic ?? readUtf8(buf, p, topicLength);
    p += topicLength;
    let packetId: number | undefined;
    if (qos > 0) {
      if (p + 2 > end) throw lengthMismatch('publish');
      packetId = (buf[p]! << 8) | buf[p + 1]!;
      if (packetId === 0)
        throw malformed('MQTT_ERR_MISSING_PACKET_ID', 'PUBLISH with QoS > 0 needs a non-zero packet id');
      p += 2;
    }
    let properties: Properties | undefined;
    if (this.protocolVersion === 5) {
      if (p < end && buf[p] === 0) {
        p++; // the common empty property block: no need for the property reader
      } else {
        properties = this.properties(buf, p, end, 'publish');
        p = PR.next;
        if (properties?.subscriptionIdentifiers !== undefined && this.role === 'server') {
          throw protocolError(
            'MQTT_ERR_PROTOCOL_ERROR',
            'a PUBLISH from a client must not carry a subscription identifier',
          );
        }
      }
    }
    if (topicLength === 0) {
      if (this.protocolVersion !== 5 || properties?.topicAlias === undefined) {
        throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', 'PUBLISH with an empty topic name and no topic alias', {
          reasonCode: this.protocolVersion === 5 ? 0x82 : 0x90,
        });
      }
    } else if (plainTopic === undefined) {
      const problem = topicNameProblem(topic);
      if (problem !== undefined) {
        throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `${problem}: "${topic}"`, { reasonCode: 0x90 });
      }
    }
    return {
      type: 'publish',
      topic,
      payload: this.view(buf, p, end),
      qos,
      retain: (flags & 1) === 1,
      dup: (flags & 8) === 8,
      packetId,
      properties,
    };
  }

  /** buf.subarray(start, end), for a Node Buffer without Buffer#subarray's native `.buffer` lookup per call. */
  private view(buf: Uint8Array, start: number, end: number): Uint8Array {
    if (buf !== this.viewSource) {
      if (!viewsAsBuffer(buf)) return buf.subarray(start, end);
      this.viewSource = buf;
      this.viewMemory = buf.buffer as ArrayBuffer;
      this.viewBase = buf.byteOffset;
    }
    return bufferView(this.viewMemory!, this.viewBase + start, end - start);
  }

  private pubAck(type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', buf: Uint8Array, p: number, end: number): Packet {
    const length = end - p;
    if (length < 2 || (this.protocolVersion === 4 && length !== 2)) throw lengthMismatch(type);
    const packetId = (buf[p]! << 8) | buf[p + 1]!;
    if (packetId === 0) throw malformed('MQTT_ERR_MISSING_PACKET_ID', `${type} with packet id 0`);
    if (this.protocolVersion === 4) return { type, packetId };
    let reasonCode = 0;
    let properties: Properties | undefined;
    if (length >= 3) {
      reasonCode = checkReason(type, buf[p + 2]!);
      if (length >= 4) {
        properties = this.properties(buf, p + 3, end, type);
        if (PR.next !== end) throw lengthMismatch(type);
      }
    }
    return { type, packetId, reasonCode, properties };
  }

  private connect(buf: Uint8Array, p: number, end: number): ConnectPacket {
    if (this.seenConnect) throw protocolError('MQTT_ERR_UNEXPECTED_PACKET', 'a client must send CONNECT only once');
    // Fields are read at this.cp (no closures here: under tsx every closure made per CONNECT costs a defineProperty).
    this.cp = p;
    const protocolName = this.connectString(buf, end);
    p = this.cp;
    if (p + 1 > end) throw lengthMismatch('connect');
    const level = buf[p++]!;
    if (protocolName !== 'MQTT' && protocolName !== 'MQIsdp') {
      throw new MqttError('MQTT_ERR_INVALID_PROTOCOL_NAME', `unknown protocol name "${protocolName}"`, {
        reasonCode: 0x84,
      });
    }
    if ((level !== 4 && level !== 5) || protocolName !== 'MQTT') {
      throw new UnsupportedProtocolError(level);
    }
    if (p + 3 > end) throw lengthMismatch('connect');
    const flags = buf[p]!;
    const keepalive = (buf[p + 1]! << 8) | buf[p + 2]!;
    p += 3;
    if (flags & 0x01) throw malformed('MQTT_ERR_RESERVED_FLAGS', 'CONNECT flags bit 0 is reserved and must be 0');
    const willFlag = (flags & 0x04) !== 0;
    const willQos = (flags >> 3) & 3;
    const willRetain = (flags & 0x20) !== 0;
    const passwordFlag = (flags & 0x40) !== 0;
    const usernameFlag = (flags & 0x80) !== 0;
    if (willQos === 3) throw malformed('MQTT_ERR_INVALID_QOS', 'CONNECT with will QoS 3');
    if (!willFlag && (willQos !== 0 || willRetain)) {
      throw malformed('MQTT_ERR_RESERVED_FLAGS', 'CONNECT without a will must have will QoS 0 and will retain 0');
    }
    if (level === 4 && passwordFlag && !usernameFlag) {
      throw malformed('MQTT_ERR_MALFORMED_PACKET', 'MQTT 3.1.1 CONNECT with a password but no user name');
    }
    let properties: Properties | undefined;
    if (level === 5) {
      properties = this.properties(buf, p, end, 'connect');
      p = PR.next;
      if (properties?.authenticationData !== undefined && properties.authenticationMethod === undefined) {
        throw protocolError('MQTT_ERR_PROTOCOL_ERROR', 'authentication data without an authentication method');
      }
    }
    const packet: ConnectPacket = {
      type: 'connect',
      protocolVersion: level,
      protocolName,
      clientId: this.connectString(buf, end, p),
      clean: (flags & 0x02) !== 0,
      keepalive,
    };
    p = this.cp;
    if (properties !== undefined) packet.properties = properties;
    if (willFlag) {
      let willProperties: Properties | undefined;
      if (level === 5) {
        willProperties = this.properties(buf, p, end, 'will');
        p = PR.next;
      }
      const topic = this.connectString(buf, end, p);
      const problem = topic.length === 0 ? 'a will topic must not be empty' : topicNameProblem(topic);
      if (problem !== undefined) {
        throw new MqttError('MQTT_ERR_INVALID_TOPIC_NAME', `${problem}: "${topic}"`, { reasonCode: 0x90 });
      }
      const will: Will = { topic, payload: this.connectBinary(buf, end), qos: willQos as QoS, retain: willRetain };
      p = this.cp;
      if (willProperties !== undefined) will.properties = willProperties;
      packet.will = will;
    }
    if (usernameFlag) {
      packet.username = this.connectString(buf, end, p);
      p = this.cp;
    }
    if (passwordFlag) {
      packet.password = this.connectBinary(buf, end, p);
      p = this.cp;
    }
    if (p !== end) throw lengthMismatch('connect');
    if (this.role === 'server' || this.protocolVersion === undefined) this.protocolVersion = level;
    if (this.role === 'server') this.seenConnect = true;
    return packet;
  }
  /** A length-prefixed UTF-8 string of CONNECT at `at` (default: this.cp); this.cp moves past it. */
  private connectString(buf: Uint8Array, end: number, at = this.cp): string {
    if (at + 2 > end) throw lengthMismatch('connect');
    const len = (buf[at]! << 8) | buf[at + 1]!;
    if (at + 2 + len > end) throw lengthMismatch('connect');
    this.cp = at + 2 + len;
    return readUtf8(buf, at + 2, len);
  }

  /** Length-prefixed binary data of CONNECT at `at` (default: this.cp); this.cp moves past it. */
  private connectBinary(buf: Uint8Array, end: number, at = this.cp): Uint8Array {
    if (at + 2 > end) throw lengthMismatch('connect');
    const len = (buf[at]! << 8) | buf[at + 1]!;
    if (at + 2 + len > end) throw lengthMismatch('connect');
    this.cp = at + 2 + len;
    return buf.subarray(at + 2, at + 2 + len);
  }

  private connack(buf: Uint8Array, p: number, end: number): ConnackPacket {
    if (end - p < 2 || (this.protocolVersion === 4 && end - p !== 2)) throw lengthMismatch('connack');
    const ackFlags = buf[p]!;
    if (ackFlags & 0xfe) throw malformed('MQTT_ERR_RESERVED_FLAGS', 'CONNACK acknowledge flags bits 1-7 must be 0');
    const code = buf[p + 1]!;
    const sessionPresent = ackFlags === 1;
    if (this.protocolVersion === 4) {
      if (code > 5) throw invalidReason('connack', code);
    } else {
      checkReason('connack', code);
    }
    if (sessionPresent && code !== 0) {
      throw protocolError('MQTT_ERR_PROTOCOL_ERROR', 'CONNACK refusing the connection must not set session present');
    }
    const packet: ConnackPacket = { type: 'connack', sessionPresent, reasonCode: code };
    if (this.protocolVersion === 5) {
      const properties = this.properties(buf, p + 2, end, 'connack');
      if (PR.next !== end) throw lengthMismatch('connack');
      if (properties !== undefined) packet.properties = properties;
    }
    return packet;
  }

  private packetIdAt(buf: Uint8Array, p: number, end: number, type: string): number {
    if (p + 2 > end) throw lengthMismatch(type);
    const id = (buf[p]! << 8) | buf[p + 1]!;
    if (id === 0) throw malformed('MQTT_ERR_MISSING_PACKET_ID', `${type} with packet id 0`);
    return id;
  }

  private subscribe(buf: Uint8Array, p: number, end: number): SubscribePacket {
    const packetId = this.packetIdAt(buf, p, end, 'subscribe');
    p += 2;
    const v5 = this.protocolVersion === 5;
    let properties: Properties | undefined;
    if (v5) {
      properties = this.properties(buf, p, end, 'subscribe');
      p = PR.next;
    }
    const subscriptions: Subscription[] = [];
    while (p < end) {
      if (p + 2 > end) throw lengthMismatch('subscribe');
      const len = (buf[p]! << 8) | buf[p + 1]!;
      if (p + 2 + len + 1 > end) throw lengthMismatch('subscribe');
      const topicFilter = readUtf8(buf, p + 2, len);
      p += 2 + len;
      const options = buf[p++]!;
      const qos = options & 3;
      if (qos === 3) {
        // 3.1.1 [MQTT-3-8.3-4] calls it malformed; 5.0 3.8.3.1 a Protocol Error.
        const message = `SUBSCRIBE to "${topicFilter}" with QoS 3`;
        throw v5 ? protocolError('MQTT_ERR_INVALID_QOS', message) : malformed('MQTT_ERR_INVALID_QOS', message);
      }
      if (options & (v5 ? 0xc0 : 0xfc)) {
        throw malformed('MQTT_ERR_RESERVED_FLAGS', `SUBSCRIBE options for "${topicFilter}" set reserved bits`);
      }
      validateTopicFilter(topicFilter);
      const subscription: Subscription = { topicFilter, qos: qos as QoS };
      if (v5) {
        const retainHandling = (options >> 4) & 3;
        if (retainHandling === 3) throw protocolError('MQTT_ERR_PROTOCOL_ERROR', 'SUBSCRIBE with retain handling 3');
        subscription.noLocal = (options & 4) !== 0;
        subscription.retainAsPublished = (options & 8) !== 0;
        subscription.retainHandling = retainHandling as 0 | 1 | 2;
        if (subscription.noLocal && parseSharedSubscription(topicFilter) !== undefined) {
          throw protocolError(
            'MQTT_ERR_PROTOCOL_ERROR',
            `no local must not be set on shared subscription "${topicFilter}"`,
          );
        }
      }
      subscriptions.push(subscription);
    }
    if (subscriptions.length === 0) {
      throw protocolError('MQTT_ERR_EMPTY_PAYLOAD_LIST', 'SUBSCRIBE must carry at least one topic filter');
    }
    const packet: SubscribePacket = { type: 'subscribe', packetId, subscriptions };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }

  private suback(buf: Uint8Array, p: number, end: number): SubackPacket {
    const packetId = this.packetIdAt(buf, p, end, 'suback');
    p += 2;
    let properties: Properties | undefined;
    if (this.protocolVersion === 5) {
      properties = this.properties(buf, p, end, 'suback');
      p = PR.next;
    }
    if (p === end) throw protocolError('MQTT_ERR_EMPTY_PAYLOAD_LIST', 'SUBACK must carry at least one reason code');
    const reasonCodes: number[] = [];
    for (; p < end; p++) {
      const code = buf[p]!;
      if (this.protocolVersion === 5) checkReason('suback', code);
      else if (!allowedSubackCodes311.has(code)) throw invalidReason('suback', code);
      reasonCodes.push(code);
    }
    const packet: SubackPacket = { type: 'suback', packetId, reasonCodes };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }

  private unsubscribe(buf: Uint8Array, p: number, end: number): UnsubscribePacket {
    const packetId = this.packetIdAt(buf, p, end, 'unsubscribe');
    p += 2;
    let properties: Properties | undefined;
    if (this.protocolVersion === 5) {
      properties = this.properties(buf, p, end, 'unsubscribe');
      p = PR.next;
    }
    const topicFilters: string[] = [];
    while (p < end) {
      if (p + 2 > end) throw lengthMismatch('unsubscribe');
      const len = (buf[p]! << 8) | buf[p + 1]!;
      if (p + 2 + len > end) throw lengthMismatch('unsubscribe');
      const filter = readUtf8(buf, p + 2, len);
      validateTopicFilter(filter);
      topicFilters.push(filter);
      p += 2 + len;
    }
    if (topicFilters.length === 0) {
      throw protocolError('MQTT_ERR_EMPTY_PAYLOAD_LIST', 'UNSUBSCRIBE must carry at least one topic filter');
    }
    const packet: UnsubscribePacket = { type: 'unsubscribe', packetId, topicFilters };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }

  private unsuback(buf: Uint8Array, p: number, end: number): UnsubackPacket {
    const packetId = this.packetIdAt(buf, p, end, 'unsuback');
    if (this.protocolVersion === 4) {
      if (end - p !== 2) throw lengthMismatch('unsuback');
      return { type: 'unsuback', packetId };
    }
    const properties = this.properties(buf, p + 2, end, 'unsuback');
    p = PR.next;
    if (p === end) throw protocolError('MQTT_ERR_EMPTY_PAYLOAD_LIST', 'UNSUBACK must carry at least one reason code');
    const reasonCodes: number[] = [];
    for (; p < end; p++) reasonCodes.push(checkReason('unsuback', buf[p]!));
    const packet: UnsubackPacket = { type: 'unsuback', packetId, reasonCodes };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }

  private disconnect(buf: Uint8Array, p: number, end: number): DisconnectPacket {
    if (this.protocolVersion === 4) {
      if (p !== end) throw lengthMismatch('disconnect');
      return { type: 'disconnect' };
    }
    return this.reasonAndProperties('disconnect', buf, p, end) as DisconnectPacket;
  }

  private auth(buf: Uint8Array, p: number, end: number): AuthPacket {
    return this.reasonAndProperties('auth', buf, p, end) as AuthPacket;
  }

  private reasonAndProperties(
    type: 'disconnect' | 'auth',
    buf: Uint8Array,
    p: number,
    end: number,
  ): DisconnectPacket | AuthPacket {
    if (p === end) return { type, reasonCode: 0 };
    const reasonCode = checkReason(type, buf[p]!);
    // 5.0 3.15.2.2.2: an AUTH that is not the bare success form must name its authentication method.
    if (p + 1 === end) {
      if (type === 'auth') throw missingAuthMethod();
      return { type, reasonCode };
    }
    const properties = this.properties(buf, p + 1, end, type);
    if (PR.next !== end) throw lengthMismatch(type);
    if (type === 'auth' && properties?.authenticationMethod === undefined) throw missingAuthMethod();
    if (this.role === 'client' && properties?.sessionExpiryInterval !== undefined) {
      // [MQTT-3.14.2-2]: only the Client may set the Session Expiry Interval in DISCONNECT.
      throw protocolError(
        'MQTT_ERR_PROTOCOL_ERROR',
        'a DISCONNECT from the server must not carry a session expiry interval',
      );
    }
    return properties === undefined ? { type, reasonCode } : { type, reasonCode, properties };
  }
}

/** Thrown for a CONNECT whose protocol level this implementation does not speak; the level is kept for the reply. */
export class UnsupportedProtocolError extends MqttError {
  readonly protocolLevel: number;
  constructor(level: number) {
    super(
      'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION',
      `unsupported protocol level ${level} (supported: 4 = 3.1.1, 5 = 5.0)`,
      {
        reasonCode: 0x84,
      },
    );
    this.protocolLevel = level;
  }
}

function checkReason(type: keyof typeof allowedReasonCodes, code: number): number {
  if (!allowedReasonCodes[type].has(code)) throw invalidReason(type, code);
  return code;
}

function invalidReason(type: string, code: number): MqttError {
  return protocolError('MQTT_ERR_INVALID_REASON_CODE', `reason code 0x${code.toString(16)} is not valid in ${type}`);
}

function missingAuthMethod(): MqttError {
  return protocolError('MQTT_ERR_PROTOCOL_ERROR', 'AUTH without an authentication method');
}

function lengthMismatch(type: string): MqttError {
  return malformed('MQTT_ERR_LENGTH_MISMATCH', `the ${type} content does not match its remaining length`);
}

function concat(a: Uint8Array, from: number, to: number, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(to - from + b.length);
  out.set(a.subarray(from, to));
  out.set(b, to - from);
  return out;
}

/** Decodes exactly one packet from `bytes`; throws if they hold less or more than one packet. */
export function decodePacket(bytes: Uint8Array, options: DecoderOptions = {}): Packet {
  const decoder = new Decoder(options);
  decoder.push(bytes);
  const packet = decoder.next();
  if (packet === undefined) throw malformed('MQTT_ERR_LENGTH_MISMATCH', 'the bytes end inside a packet');
  if (decoder.buffered !== 0) throw malformed('MQTT_ERR_LENGTH_MISMATCH', 'bytes remain after the packet');
  return packet;
}
