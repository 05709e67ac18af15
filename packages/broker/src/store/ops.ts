// Store operations as data: the MemoryStore applies them to its state at once, the LogStore encodes them as log
// records and applies them after they are written. Replaying the log applies them again in the same order.
import type { Message } from '../message.js';
import type { SubscriptionEntry } from '../session.js';
import type { StoredDelivery, StoredWill } from './types.js';

export type StoreOp =
  /**
   * `owner`: the identity the session belongs to (null: anonymous); absent in records written before it was kept
   * (undefined is left out of a record's JSON).
   */
  | { op: 'session'; clientId: string; expiryInterval: number; expiresAt: number; owner?: string | null }
  | { op: 'session-del'; clientId: string }
  | { op: 'sub'; clientId: string; entry: SubscriptionEntry }
  | { op: 'unsub'; clientId: string; filter: string }
  | { op: 'msg'; id: number; message: Message }
  | { op: 'enqueue'; clientId: string; entryId: number; delivery: StoredDelivery }
  | { op: 'dequeue'; clientId: string; entryId: number }
  | { op: 'inflight'; clientId: string; packetId: number; delivery: StoredDelivery; fromEntryId: number | undefined }
  | { op: 'inflight-rel'; clientId: string; packetId: number }
  /** Snapshot form of an entry already released: PUBREL pending, no message. */
  | { op: 'inflight-pubrel'; clientId: string; packetId: number }
  | { op: 'inflight-del'; clientId: string; packetId: number }
  | { op: 'qos2'; clientId: string; packetId: number }
  | { op: 'qos2-del'; clientId: string; packetId: number }
  /** `message` is the issuer's object (not written: the record holds the id), for a state that keeps no messages. */
  | { op: 'retain'; topic: string; messageId: number; message?: Message }
  | { op: 'retain-del'; topic: string }
  | { op: 'will'; will: StoredWill }
  | { op: 'will-del'; clientId: string }
  /** Log only: first record of a segment. `snapshot` segments start with the whole state, up to `snapshot-end`. */
  | { op: 'header'; format: number; segment: number; snapshot: boolean }
  | { op: 'snapshot-end' };
