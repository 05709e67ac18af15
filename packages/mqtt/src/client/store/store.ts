// Where the client keeps what must survive a restart: outgoing QoS 1/2 messages (queued or in flight) and the ids
// of incoming QoS 2 messages already delivered. Implementations may be synchronous or return promises; the client
// writes a packet only after the strict store changes that step asked for have settled. Changes must become durable
// in the order they were made (a relaxed one no later than any change after it that is durable): the client's
// restart relies on it, e.g. an acknowledged message's lost deletion must not outlive the record of a newer message
// that took the same packet id.
import type { StoredRecord } from '../../session/records.js';

export interface MessageStore {
  /**
   * `relaxed`: the change need not be durable when this settles (a file store need not fsync for it): lost in a
   * crash, it only makes a message go again as its QoS allows. The client asks for this for a QoS 1 message's
   * packet id and for deleting an outgoing message; never for a queued message or a QoS 2 record.
   */
  put(key: string, record: StoredRecord, relaxed?: boolean): void | Promise<void>;
  get(key: string): StoredRecord | undefined | Promise<StoredRecord | undefined>;
  /** `relaxed`: as for put; never asked for an incoming QoS 2 id. */
  delete(key: string, relaxed?: boolean): void | Promise<void>;
  /** Everything stored, in no particular order. */
  list(): StoredRecord[] | Promise<StoredRecord[]>;
  close?(): void | Promise<void>;
}
