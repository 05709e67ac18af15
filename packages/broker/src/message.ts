// The broker's internal message: one immutable object shared by every session it is routed to, so a fan-out to
// many subscribers holds one payload and one property set.
import type { PublishProperties, QoS } from '@otalink/mqtt/codec';

export interface Message {
  topic: string;
  /** Owned by the broker (copied off the socket chunk when kept beyond the current read). */
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** Application properties as published, without topic alias, subscription identifiers and message expiry. */
  properties: PublishProperties | undefined;
  /** Absolute expiry in ms since the epoch; 0 = never. The remaining interval is sent on each delivery. */
  expiresAt: number;
  /** Client id of the publisher (for No Local); undefined for broker-originated messages. */
  origin: string | undefined;
  /** Id in the broker's store once a persistent session or the retained set holds it (written once). */
  storeId?: number;
  /** The store's count of queue entries, in-flight publishes and retained topics holding it (store-internal). */
  storeRefs?: number;
  /** The store's last size scan of the broker's queues that counted it (store-internal: counts it once). */
  storeScan?: number;
}

/** What a subscriber receives: the shared message plus its own delivery form. */
export interface Delivery {
  message: Message;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  /** Set when it came through a shared subscription (`$share/...` filter): another member may take it over. */
  sharedFilter?: string;
  /** Id of its queue entry in the store, for a persistent session. */
  entryId?: number;
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== 0 && message.expiresAt <= now;
}

/** Seconds left before `message` expires, at least 1 while it has not (an interval of 0 would mean expired). */
export function remainingExpirySeconds(message: Message, now: number): number | undefined {
  if (message.expiresAt === 0) return undefined;
  return Math.max(1, Math.ceil((message.expiresAt - now) / 1000));
}
