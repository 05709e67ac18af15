// Where the client keeps what must survive a restart: outgoing QoS 1/2 messages (queued or in flight) and the ids
// of incoming QoS 2 messages already delivered. Implementations may be synchronous or return promises; the client
// writes a packet only after the store changes that step asked for have settled.
import type { StoredRecord } from '../../session/records.js';

export interface MessageStore {
  put(key: string, record: StoredRecord): void | Promise<void>;
  get(key: string): StoredRecord | undefined | Promise<StoredRecord | undefined>;
  delete(key: string): void | Promise<void>;
  /** Everything stored, in no particular order. */
  list(): StoredRecord[] | Promise<StoredRecord[]>;
  close?(): void | Promise<void>;
}
