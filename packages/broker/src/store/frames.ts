// Store format 2: after a segment's header record, the log is a sequence of frames, one per group commit (or per
// compaction slice): [u32 body length][u32 CRC-32 of the body][body], body = records [u32 length][u8 op][fields].
// One CRC per batch instead of one per record, and every record of a batch is written straight into one reusable
// buffer. The records written per message (`msg`, `enqueue`, `dequeue`, in-flight and inbound QoS 2 changes) are
// binary; the rare ones (sessions, subscriptions, retained, wills, snapshot markers) keep format 1's body
// ([u8 op][u32 JSON length][JSON]), so one decoder reads both kinds.
import { crc32 } from 'node:zlib';
import type { QoS } from '@otalink/mqtt/codec';
import type { Message } from '../message.js';
import { decodeBody, encodeBody, parseJson, RECORD_HEADER_BYTES, stringifyJson } from './codec.js';
import type { StoreOp } from './ops.js';
import type { StoredDelivery } from './types.js';

const MSG = 32;
const ENQUEUE = 33;
const DEQUEUE = 34;
const INFLIGHT = 35;
const INFLIGHT_REL = 36;
const INFLIGHT_DEL = 37;
const QOS2 = 38;
const QOS2_DEL = 39;

const RETAIN = 1;
const HAS_SUBSCRIPTION_IDS = 2;
const HAS_SHARED_FILTER = 4;
const HAS_ORIGIN = 8;
const HAS_PROPERTIES = 16;
const HAS_FROM_ENTRY = 32;
const TWO_32 = 4294967296;

/** Encodes records into frames in one growing buffer, reused from frame to frame. */
export class FrameEncoder {
  #buffer: Buffer;
  #frameStart = 0;
  #at = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buffer = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes of the frame being built, header included. */
  get frameBytes(): number {
    return this.#at - this.#frameStart;
  }

  /** Starts a frame at the beginning of the buffer (what a previous frame returned is overwritten). */
  begin(): void {
    this.#frameStart = 0;
    this.#at = RECORD_HEADER_BYTES;
  }

  /** Closes the frame: its length and CRC; the returned view is valid until the next begin(). */
  finish(): Buffer {
    const buffer = this.#buffer;
    const bodyLength = this.#at - RECORD_HEADER_BYTES;
    buffer.writeUInt32LE(bodyLength, 0);
    buffer.writeUInt32LE(crc32(buffer.subarray(RECORD_HEADER_BYTES, this.#at)), 4);
    return buffer.subarray(0, this.#at);
  }

  #reserve(bytes: number): void {
    const needed = this.#at + bytes;
    if (needed <= this.#buffer.length) return;
    let size = this.#buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.#buffer.copy(grown, 0, 0, this.#at);
    this.#buffer = grown;
  }

  add(op: StoreOp): void {
    switch (op.op) {
      case 'msg':
        this.#message(op.id, op.message);
        return;
      case 'enqueue':
        this.#reserve(40 + 3 * op.clientId.length + deliveryBound(op.delivery));
        this.#start(ENQUEUE, op.clientId);
        this.#id(op.entryId);
        this.#delivery(op.delivery, 0);
        this.#end();
        return;
      case 'dequeue':
        this.#reserve(24 + 3 * op.clientId.length);
        this.#start(DEQUEUE, op.clientId);
        this.#id(op.entryId);
        this.#end();
        return;
      case 'inflight': {
        this.#reserve(48 + 3 * op.clientId.length + deliveryBound(op.delivery));
        this.#start(INFLIGHT, op.clientId);
        this.#u16(op.packetId);
        this.#delivery(op.delivery, op.fromEntryId === undefined ? 0 : HAS_FROM_ENTRY);
        if (op.fromEntryId !== undefined) this.#id(op.fromEntryId);
        this.#end();
        return;
      }
      case 'inflight-rel':
      case 'inflight-del':
      case 'qos2':
      case 'qos2-del':
        this.#reserve(16 + 3 * op.clientId.length);
        this.#start(PACKET_OPS[op.op], op.clientId);
        this.#u16(op.packetId);
        this.#end();
        return;
      default: {
        // Rare records keep format 1's body: JSON, binary properties as {"$b": base64}.
        const body = encodeBody(op);
        this.#reserve(4 + body.length);
        u32(this.#buffer, this.#at, body.length);
        body.copy(this.#buffer, this.#at + 4);
        this.#at += 4 + body.length;
      }
    }
  }

  #recordStart = 0;

  /** Leaves room for the record's length, writes its op and client id. */
  #start(code: number, clientId: string): void {
    this.#recordStart = this.#at;
    this.#buffer[this.#at + 4] = code;
    this.#at += 5;
    this.#string(clientId);
  }

  #end(): void {
    u32(this.#buffer, this.#recordStart, this.#at - this.#recordStart - 4);
  }

  #message(id: number, message: Message): void {
    const properties = message.properties === undefined ? undefined : stringifyJson(message.properties);
    const origin = message.origin;
    this.#reserve(
      40 +
        3 * message.topic.length +
        (origin === undefined ? 0 : 3 * origin.length) +
        (properties === undefined ? 0 : 4 + Buffer.byteLength(properties)) +
        message.payload.length,
    );
    const buffer = this.#buffer;
    this.#recordStart = this.#at;
    buffer[this.#at + 4] = MSG;
    this.#at += 5;
    this.#id(id);
    let flags = message.qos << 6;
    if (message.retain) flags |= RETAIN;
    if (origin !== undefined) flags |= HAS_ORIGIN;
    if (properties !== undefined) flags |= HAS_PROPERTIES;
    buffer[this.#at++] = flags;
    buffer.writeDoubleLE(message.expiresAt, this.#at);
    this.#at += 8;
    this.#string(message.topic);
    if (origin !== undefined) this.#string(origin);
    if (properties !== undefined) {
      const length = buffer.write(properties, this.#at + 4, 'utf8');
      buffer.writeUInt32LE(length, this.#at);
      this.#at += 4 + length;
    }
    buffer.set(message.payload, this.#at);
    this.#at += message.payload.length;
    this.#end();
  }

  #delivery(delivery: StoredDelivery, extraFlags: number): void {
    const buffer = this.#buffer;
    this.#id(delivery.messageId);
    let flags = (delivery.qos << 6) | extraFlags;
    if (delivery.retain) flags |= RETAIN;
    const ids = delivery.subscriptionIds;
    const shared = delivery.sharedFilter;
    if (ids !== undefined) flags |= HAS_SUBSCRIPTION_IDS;
    if (shared !== undefined) flags |= HAS_SHARED_FILTER;
    buffer[this.#at++] = flags;
    if (ids !== undefined) {
      this.#u16(ids.length);
      for (const id of ids) {
        u32(buffer, this.#at, id);
        this.#at += 4;
      }
    }
    if (shared !== undefined) this.#string(shared);
  }

  #u16(value: number): void {
    this.#buffer[this.#at] = value & 0xff;
    this.#buffer[this.#at + 1] = value >>> 8;
    this.#at += 2;
  }

  /** A non-negative integer below 2^53, as two u32 (low, high). */
  #id(value: number): void {
    const low = value >>> 0;
    u32(this.#buffer, this.#at, low);
    u32(this.#buffer, this.#at + 4, (value - low) / TWO_32);
    this.#at += 8;
  }

  /** u16 byte length + UTF-8; short ASCII strings (client ids, topics) are copied without a call into C++. */
  #string(value: string): void {
    const buffer = this.#buffer;
    const at = this.#at + 2;
    const length = value.length;
    let written = -1;
    if (length <= 64) {
      written = length;
      for (let i = 0; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) {
          written = -1;
          break;
        }
        buffer[at + i] = code;
      }
    }
    if (written < 0) written = buffer.write(value, at, 'utf8');
    if (written > 0xffff) throw new RangeError(`string of ${written} bytes is too long for a store record`);
    buffer[this.#at] = written & 0xff;
    buffer[this.#at + 1] = written >>> 8;
    this.#at = at + written;
  }
}

/** Little-endian u32 without Buffer's range checks (the values are ours, in range by construction). */
function u32(buffer: Buffer, at: number, value: number): void {
  buffer[at] = value;
  buffer[at + 1] = value >>> 8;
  buffer[at + 2] = value >>> 16;
  buffer[at + 3] = value >>> 24;
}

const PACKET_OPS = { 'inflight-rel': INFLIGHT_REL, 'inflight-del': INFLIGHT_DEL, qos2: QOS2, 'qos2-del': QOS2_DEL };
const PACKET_NAMES = {
  [INFLIGHT_REL]: 'inflight-rel',
  [INFLIGHT_DEL]: 'inflight-del',
  [QOS2]: 'qos2',
  [QOS2_DEL]: 'qos2-del',
} as const;

function deliveryBound(delivery: StoredDelivery): number {
  return (
    16 +
    (delivery.subscriptionIds === undefined ? 0 : 2 + 4 * delivery.subscriptionIds.length) +
    (delivery.sharedFilter === undefined ? 0 : 2 + 3 * delivery.sharedFilter.length)
  );
}

/** Where decoded records go: the three that most of a log is made of without an operation object each. */
export interface RecordSink {
  op(op: StoreOp): void;
  /** A message, field by field: the state makes the object in the shape it keeps (its store fields in it). */
  message(
    id: number,
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    retain: boolean,
    properties: Message['properties'],
    expiresAt: number,
    origin: string | undefined,
  ): void;
  /** A queue entry, its delivery's fields one by one (no stored-form object: the state builds the broker's). */
  enqueue(
    clientId: string,
    entryId: number,
    messageId: number,
    qos: QoS,
    retain: boolean,
    subscriptionIds: number[] | undefined,
    sharedFilter: string | undefined,
  ): void;
  dequeue(clientId: string, entryId: number): void;
}

/** A sink that hands every record to `each` as an operation. */
function opSink(each: (op: StoreOp) => void): RecordSink {
  return {
    op: each,
    message: (id, topic, payload, qos, retain, properties, expiresAt, origin) =>
      each({ op: 'msg', id, message: { topic, payload, qos, retain, properties, expiresAt, origin } }),
    enqueue: (clientId, entryId, messageId, qos, retain, subscriptionIds, sharedFilter) =>
      each({ op: 'enqueue', clientId, entryId, delivery: { messageId, qos, retain, subscriptionIds, sharedFilter } }),
    dequeue: (clientId, entryId) => each({ op: 'dequeue', clientId, entryId }),
  };
}

/**
 * Reads the records of one frame body (whose CRC checked). Payloads are views: of the body itself when its caller
 * never reuses that memory (`owned`, the load's read chunks), else of one copy of the frame. Consecutive records of
 * one client reuse one string for its id.
 */
export class FrameDecoder {
  #buffer: Buffer = Buffer.alloc(0);
  #at = 0;
  #lastString = '';
  /** The UTF-8 of #lastString (a copy: the frame it came from may be overwritten by the next read). */
  readonly #lastBytes = Buffer.alloc(64);
  #lastLength = -1;

  /**
   * Hands every record of `body` to `to`; throws on a record that does not make sense (a format error). `owned`: the
   * memory under `body` is never written again, so payloads may be views of it (no copy).
   */
  decode(body: Buffer, to: RecordSink | ((op: StoreOp) => void), owned = false): void {
    const sink = typeof to === 'function' ? opSink(to) : to;
    this.#buffer = body;
    this.#owned = undefined;
    if (owned) this.#own(body);
    this.#at = 0;
    while (this.#at < body.length) {
      if (body.length - this.#at < 5) throw new Error('record header cut short');
      const length = body.readUInt32LE(this.#at);
      const start = this.#at + 4;
      const end = start + length;
      if (length < 1 || end > body.length) throw new Error(`record length ${length} beyond its frame`);
      const code = body[start]!;
      if (code >= MSG) this.#binary(code, start + 1, end, sink);
      else sink.op(decodeBody(body.subarray(start, end)));
      this.#at = end;
    }
  }

  #binary(code: number, from: number, end: number, sink: RecordSink): void {
    const buffer = this.#buffer;
    this.#at = from;
    let op: StoreOp;
    switch (code) {
      case MSG: {
        const id = this.#id();
        const flags = buffer[this.#at++]!;
        const expiresAt = buffer.readDoubleLE(this.#at);
        this.#at += 8;
        const topic = this.#string(false);
        const origin = flags & HAS_ORIGIN ? this.#string(false) : undefined;
        let properties: Message['properties'];
        if (flags & HAS_PROPERTIES) {
          const length = buffer.readUInt32LE(this.#at);
          properties = parseJson(buffer.toString('utf8', this.#at + 4, this.#at + 4 + length)) as Message['properties'];
          this.#at += 4 + length;
        }
        if (this.#at > end) throw new Error('message record cut short');
        const payload = this.#payload(this.#at, end);
        this.#at = end;
        this.#check(code, end);
        sink.message(id, topic, payload, qosOf(flags), (flags & RETAIN) !== 0, properties, expiresAt, origin);
        return;
      }
      case ENQUEUE: {
        const clientId = this.#string(true);
        const entryId = this.#id();
        const messageId = this.#id();
        const flags = buffer[this.#at++]!;
        const subscriptionIds = flags & HAS_SUBSCRIPTION_IDS ? this.#subscriptionIds() : undefined;
        const sharedFilter = flags & HAS_SHARED_FILTER ? this.#string(false) : undefined;
        this.#check(code, end);
        sink.enqueue(clientId, entryId, messageId, qosOf(flags), (flags & RETAIN) !== 0, subscriptionIds, sharedFilter);
        return;
      }
      case DEQUEUE: {
        const clientId = this.#string(true);
        const entryId = this.#id();
        this.#check(code, end);
        sink.dequeue(clientId, entryId);
        return;
      }
      case INFLIGHT: {
        const clientId = this.#string(true);
        const packetId = this.#u16();
        const delivery = this.#delivery();
        const fromEntryId = this.#deliveryFlags & HAS_FROM_ENTRY ? this.#id() : undefined;
        op = { op: 'inflight', clientId, packetId, delivery, fromEntryId };
        break;
      }
      case INFLIGHT_REL:
      case INFLIGHT_DEL:
      case QOS2:
      case QOS2_DEL: {
        const clientId = this.#string(true);
        op = { op: PACKET_NAMES[code], clientId, packetId: this.#u16() };
        break;
      }
      default:
        throw new Error(`unknown record type ${code}`);
    }
    this.#check(code, end);
    sink.op(op);
  }

  #check(code: number, end: number): void {
    if (this.#at !== end) throw new Error(`record type ${code} has ${end - this.#at} bytes left over`);
  }

  /** Memory payloads may be views of: the body itself when owned, else its copy made at the first payload. */
  #owned: Buffer | undefined;

  /**
   * A payload, as a view: no allocation of its own per message (which took most of a message's load time). A kept
   * message pins the memory it views (a read chunk at load, see LogStore) until it is forgotten.
   */
  #payload(start: number, end: number): Uint8Array {
    if (this.#owned === undefined) {
      const copy = Buffer.allocUnsafeSlow(this.#buffer.length);
      this.#buffer.copy(copy);
      this.#own(copy);
    }
    return new Uint8Array(this.#ownedMemory, this.#ownedOffset + start, end - start);
  }

  /** The ArrayBuffer and offset of #owned, read once per frame rather than once per payload. */
  #ownedMemory: ArrayBufferLike = new ArrayBuffer(0);
  #ownedOffset = 0;

  #own(memory: Buffer): void {
    this.#owned = memory;
    this.#ownedMemory = memory.buffer;
    this.#ownedOffset = memory.byteOffset;
  }

  /** The flags byte of the delivery read last (an in-flight record's carries HAS_FROM_ENTRY). */
  #deliveryFlags = 0;

  #delivery(): StoredDelivery {
    const buffer = this.#buffer;
    const messageId = this.#id();
    const flags = buffer[this.#at++]!;
    this.#deliveryFlags = flags;
    const subscriptionIds = flags & HAS_SUBSCRIPTION_IDS ? this.#subscriptionIds() : undefined;
    const sharedFilter = flags & HAS_SHARED_FILTER ? this.#string(false) : undefined;
    const delivery: StoredDelivery = {
      messageId,
      qos: qosOf(flags),
      retain: (flags & RETAIN) !== 0,
      subscriptionIds,
      sharedFilter,
    };
    return delivery;
  }

  #subscriptionIds(): number[] {
    const buffer = this.#buffer;
    const count = this.#u16();
    const ids = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      ids[i] = buffer.readUInt32LE(this.#at);
      this.#at += 4;
    }
    return ids;
  }

  #u16(): number {
    const value = this.#buffer[this.#at]! | (this.#buffer[this.#at + 1]! << 8);
    this.#at += 2;
    return value;
  }

  #id(): number {
    const value = this.#buffer.readUInt32LE(this.#at) + this.#buffer.readUInt32LE(this.#at + 4) * TWO_32;
    this.#at += 8;
    return value;
  }

  /**
   * Topics, publishers' client ids and shared filters read so far, by a hash of their bytes: a backlog mostly repeats
   * a few of each, so its messages share one string each instead of one per message (and a call into C++ each).
   * Only ASCII strings are kept (their bytes are their characters, which the comparison relies on).
   */
  readonly #strings = new Map<number, string>();

  #interned(start: number, length: number): string {
    const buffer = this.#buffer;
    const end = start + length;
    if (length > 64) return buffer.toString('utf8', start, end);
    let hash = length;
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ buffer[i]!, 16777619);
    const known = this.#strings.get(hash);
    if (known !== undefined && known.length === length) {
      let i = 0;
      while (i < length && known.charCodeAt(i) === buffer[start + i]) i++;
      if (i === length) return known;
    }
    const value = buffer.toString('utf8', start, end);
    // As many characters as bytes: ASCII (a byte that is not valid UTF-8 becomes U+FFFD, which never compares equal).
    if (value.length === length) {
      if (this.#strings.size >= INTERNED_MAX) this.#strings.clear();
      this.#strings.set(hash, value);
    }
    return value;
  }

  /** `same`: the string is likely the one read last (a client id in consecutive records): compare bytes first. */
  #string(same: boolean): string {
    const buffer = this.#buffer;
    const length = buffer[this.#at]! | (buffer[this.#at + 1]! << 8);
    const start = this.#at + 2;
    this.#at = start + length;
    if (same && length === this.#lastLength) {
      const last = this.#lastBytes;
      let equal = true;
      for (let i = 0; i < length; i++) {
        if (buffer[start + i] !== last[i]) {
          equal = false;
          break;
        }
      }
      if (equal) return this.#lastString;
    }
    if (!same) return this.#interned(start, length);
    const value = buffer.toString('utf8', start, start + length);
    if (length <= this.#lastBytes.length) {
      this.#lastString = value;
      buffer.copy(this.#lastBytes, 0, start, start + length);
      this.#lastLength = length;
    }
    return value;
  }
}

/** Strings kept by the decoder for reuse; past this many it starts over (a backlog repeats a few topics). */
const INTERNED_MAX = 4096;

function qosOf(flags: number): 0 | 1 | 2 {
  const qos = flags >>> 6;
  if (qos > 2) throw new Error(`QoS ${qos} in a store record`);
  return qos as 0 | 1 | 2;
}
