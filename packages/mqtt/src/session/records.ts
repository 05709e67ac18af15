// What the session asks a durable store to keep: outgoing QoS 1/2 messages (queued or in flight, with their
// packet id once sent) and the ids of incoming QoS 2 messages delivered but not yet released. The session hands
// out fresh objects on every change, so a store may keep the references it is given.
import { isPacketId, type PublishProperties } from '../codec/packets.js';

export interface OutgoingRecord {
  kind: 'outgoing';
  /** Client-local order of acceptance; survives restarts so replay keeps the order. */
  seq: number;
  topic: string;
  payload: Uint8Array;
  qos: 1 | 2;
  retain: boolean;
  properties?: PublishProperties;
  /** 'queued': accepted, not yet sent; 'publish': sent, awaiting PUBACK/PUBREC; 'pubrel': PUBREL sent. */
  state: 'queued' | 'publish' | 'pubrel';
  packetId?: number;
  /**
   * When its Message Expiry Interval runs out (epoch ms, the system clock when it was accepted plus the interval):
   * kept so that a message that waited through a restart is sent with what is left of it, or not at all.
   */
  expiresAt?: number;
}

export interface IncomingRecord {
  kind: 'incoming';
  packetId: number;
}

export type StoredRecord = OutgoingRecord | IncomingRecord;

export function recordKey(record: StoredRecord): string {
  return record.kind === 'outgoing' ? outgoingKey(record.seq) : incomingKey(record.packetId);
}

export function outgoingKey(seq: number): string {
  return `out:${seq}`;
}

export function incomingKey(packetId: number): string {
  return `in:${packetId}`;
}

/**
 * Whether a value read back from a store is a record this code wrote: a damaged or foreign entry must be skipped,
 * not handed to the session (which would fail on it at every start).
 */
export function isStoredRecord(value: unknown): value is StoredRecord {
  if (value === null || typeof value !== 'object') return false;
  const r = value as Partial<Record<keyof OutgoingRecord, unknown>> & { packetId?: unknown };
  if (r.kind === 'incoming') return isPacketId(r.packetId);
  return (
    r.kind === 'outgoing' &&
    Number.isSafeInteger(r.seq) &&
    typeof r.topic === 'string' &&
    r.payload instanceof Uint8Array &&
    (r.qos === 1 || r.qos === 2) &&
    typeof r.retain === 'boolean' &&
    isOutgoingState(r.state) &&
    (r.packetId === undefined || isPacketId(r.packetId)) &&
    (r.expiresAt === undefined || typeof r.expiresAt === 'number') &&
    (r.properties === undefined || (r.properties !== null && typeof r.properties === 'object'))
  );
}

/** One of an outgoing record's states (a file store's 'set' line carries one too). */
export function isOutgoingState(value: unknown): value is OutgoingRecord['state'] {
  return value === 'queued' || value === 'publish' || value === 'pubrel';
}
