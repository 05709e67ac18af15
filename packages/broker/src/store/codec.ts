// Store format 1 records: [u32 body length][u32 CRC-32 of the body][body], body = [u8 op][u32 JSON length][JSON]
// [payload]. The JSON carries the operation's fields (binary properties as {"$b": base64}); a message's payload
// follows raw. Format 1 segments are a sequence of these; format 2 (frames.ts) keeps one as each segment's header and
// this body form for its rare records.
import { crc32 } from 'node:zlib';
import type { Message } from '../message.js';
import type { StoreOp } from './ops.js';

export const RECORD_HEADER_BYTES = 8;
/** Larger than any record the broker writes (a packet is at most 256 MiB): a length above it is damage. */
export const MAX_RECORD_BYTES = 300 * 1024 * 1024;

const OP_CODES: ReadonlyArray<StoreOp['op']> = [
  'header',
  'snapshot-end',
  'session',
  'session-del',
  'sub',
  'unsub',
  'msg',
  'enqueue',
  'dequeue',
  'inflight',
  'inflight-rel',
  'inflight-pubrel',
  'inflight-del',
  'qos2',
  'qos2-del',
  'retain',
  'retain-del',
  'will',
  'will-del',
];
const CODE_OF = new Map(OP_CODES.map((name, code) => [name, code]));

function binaryReplacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array)
    return { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
  return value;
}

function binaryReviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const b = (value as { $b?: unknown }).$b;
    if (typeof b === 'string' && Object.keys(value).length === 1) return new Uint8Array(Buffer.from(b, 'base64'));
  }
  return value;
}

/** JSON of a value that may hold binary MQTT properties (as {"$b": base64}). */
export function stringifyJson(value: unknown): string {
  return JSON.stringify(value, binaryReplacer);
}

/** Parses what stringifyJson wrote; the reviver (several times slower) only when there is binary inside. */
export function parseJson(text: string): unknown {
  return JSON.parse(text, text.includes('"$b"') ? binaryReviver : undefined);
}

/** A record body in format 1's form: [u8 op][u32 JSON length][JSON][payload]. */
export function encodeBody(op: StoreOp): Buffer {
  let json: string;
  let payload: Uint8Array | undefined;
  if (op.op === 'msg') {
    const m = op.message;
    payload = m.payload;
    json = JSON.stringify(
      { id: op.id, t: m.topic, q: m.qos, r: m.retain, e: m.expiresAt, o: m.origin, p: m.properties },
      m.properties === undefined ? undefined : binaryReplacer,
    );
  } else if (op.op === 'retain') {
    json = JSON.stringify({ op: op.op, topic: op.topic, messageId: op.messageId });
  } else if (op.op === 'will') {
    json = stringifyJson(op);
  } else {
    json = JSON.stringify(op);
  }
  const jsonLength = Buffer.byteLength(json);
  const body = Buffer.allocUnsafe(5 + jsonLength + (payload?.length ?? 0));
  body[0] = CODE_OF.get(op.op) ?? 255;
  body.writeUInt32LE(jsonLength, 1);
  body.write(json, 5, jsonLength, 'utf8');
  if (payload !== undefined) body.set(payload, 5 + jsonLength);
  return body;
}

/** One format 1 record, [u32 body length][u32 CRC-32 of the body][body]: every segment's header is one. */
export function encodeRecord(op: StoreOp): Buffer {
  const body = encodeBody(op);
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + body.length);
  record.writeUInt32LE(body.length, 0);
  record.writeUInt32LE(crc32(body), 4);
  body.copy(record, RECORD_HEADER_BYTES);
  return record;
}

interface MessageFields {
  id: number;
  t: string;
  q: 0 | 1 | 2;
  r: boolean;
  e: number;
  o?: string;
  p?: Message['properties'];
}

/** Decodes a body whose CRC checked; throws on a body that does not make sense (a format error, not damage). */
export function decodeBody(body: Buffer): StoreOp {
  const name = OP_CODES[body[0] ?? 255];
  if (name === undefined) throw new Error(`unknown record type ${body[0]}`);
  const jsonLength = body.readUInt32LE(1);
  const json = body.toString('utf8', 5, 5 + jsonLength);
  if (name === 'msg') {
    // A reviver makes JSON.parse several times slower: only binary properties need one.
    const f = JSON.parse(json, json.includes('"$b"') ? binaryReviver : undefined) as MessageFields;
    // Copied out of the read buffer so a kept message does not pin a whole chunk of the log in memory.
    const payload = new Uint8Array(body.length - 5 - jsonLength);
    payload.set(body.subarray(5 + jsonLength));
    const message: Message = {
      topic: f.t,
      payload,
      qos: f.q,
      retain: f.r,
      properties: f.p,
      expiresAt: f.e,
      origin: f.o,
    };
    return { op: 'msg', id: f.id, message };
  }
  const op = JSON.parse(json, name === 'will' && json.includes('"$b"') ? binaryReviver : undefined) as StoreOp;
  if (op.op !== name) throw new Error(`record type ${name} holds ${String(op.op)}`);
  // JSON drops undefined fields; put them back so a replayed state equals the one written.
  if (op.op === 'sub') op.entry.subscriptionId ??= undefined;
  else if (op.op === 'enqueue' || op.op === 'inflight') {
    op.delivery.subscriptionIds ??= undefined;
    op.delivery.sharedFilter ??= undefined;
    if (op.op === 'inflight') op.fromEntryId ??= undefined;
  } else if (op.op === 'will') {
    op.will.identity.username ??= undefined;
    op.will.identity.remoteAddress ??= undefined;
  }
  return op;
}

export function checkRecord(buffer: Buffer, offset: number, available: number): 'ok' | 'short' | 'bad' {
  if (available < RECORD_HEADER_BYTES) return 'short';
  const bodyLength = buffer.readUInt32LE(offset);
  if (bodyLength < 5 || bodyLength > MAX_RECORD_BYTES) return 'bad';
  if (available < RECORD_HEADER_BYTES + bodyLength) return 'short';
  const body = buffer.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + bodyLength);
  return crc32(body) === buffer.readUInt32LE(offset + 4) ? 'ok' : 'bad';
}
