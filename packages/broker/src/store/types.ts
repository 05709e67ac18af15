// The broker's persistence seam: one store interface with granular, incremental operations. The core calls them as
// state changes (only for sessions that outlive their connection, only for QoS 1/2 and retained messages) and awaits
// `commit()` before acknowledging what must survive a crash. Two implementations pass one contract suite:
// MemoryStore (no disk) and LogStore (append-only log, group commit).
import type { QoS, Will } from '@otalink/mqtt/codec';
import type { Delivery, Message } from '../message.js';
import type { ClientIdentity } from '../options.js';
import type { InflightEntry, SubscriptionEntry } from '../session.js';

/** One delivery of a stored message to one session (queued or in flight). */
export interface StoredDelivery {
  messageId: number;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  sharedFilter: string | undefined;
}

export interface StoredInflight {
  /** 'publish': sent, waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP (message no longer kept). */
  state: 'publish' | 'pubrel';
  /** Undefined once in 'pubrel'. */
  delivery: StoredDelivery | undefined;
}

export interface StoredSession {
  clientId: string;
  expiryInterval: number;
  /** When the offline session ends (ms since the epoch); 0 = it was connected when last written. */
  expiresAt: number;
  /** The identity it belongs to (null: anonymous); undefined when written before owners were kept. */
  owner: string | null | undefined;
  subscriptions: Map<string, SubscriptionEntry>;
  /** Queue order is insertion order; keys are entry ids. A copy in the stored form, made when asked for. */
  readonly queue: Map<number, StoredDelivery>;
  /**
   * The same queue in the broker's form (message and entry id set), in order: the broker takes these objects as its
   * own queue entries instead of building a second set of them (the store never changes one).
   */
  readonly deliveries: ReadonlyMap<number, Delivery>;
  inflight: Map<number, StoredInflight>;
  /** QoS 2 packet ids acknowledged with PUBREC, waiting for PUBREL. */
  inboundQos2: Set<number>;
}

/** A will waiting for its Will Delay Interval. */
export interface StoredWill {
  clientId: string;
  will: Will;
  identity: ClientIdentity;
  deadline: number;
}

/** Everything a store holds, as `load()` returns it. Messages are shared by every entry that refers to them. */
export interface StoreContents {
  sessions: Map<string, StoredSession>;
  messages: Map<number, Message>;
  /** Topic → message id. */
  retained: Map<string, number>;
  wills: Map<string, StoredWill>;
}

/**
 * The broker's own copy of what each persistent session has queued and in flight. A store handed one (`attachLive`)
 * stops keeping a second copy of those entries and their messages: it reads them here when it compacts, at a moment
 * when everything issued is written, so they are exactly what its log holds.
 */
export interface StoreLiveView {
  /** The session's queued deliveries (oldest first, each with its `entryId`) and in-flight window, if it has one. */
  entries(clientId: string): { queue: Iterable<Delivery>; inflight: ReadonlyMap<number, InflightEntry> } | undefined;
}

export interface StoreSize {
  /** Bytes on disk (0 for memory). */
  bytes: number;
  segments: number;
  /** Messages referenced by a queue, an in-flight window or the retained set. */
  messages: number;
  /** Damaged stretches of the log skipped at load (BROKER_ERR_STORE_CORRUPT) and their bytes; absent: none. */
  corruptRegions?: number;
  corruptBytes?: number;
}

export interface BrokerStore {
  /** True when commits reach a disk: the broker then acknowledges only after them. */
  readonly durable: boolean;
  /** False while the store refuses new messages (disk full, write error); acks and deletes still go through. */
  readonly writable: boolean;
  /** Why the store refuses new messages, while it does. */
  readonly refusal: string | undefined;
  /**
   * True once nothing more can be made durable before a restart (a failed fdatasync): a commit that fails while it
   * is false is tried again when the disk takes writes (its operations stay ahead of everything issued since).
   */
  readonly broken: boolean;
  /** True when nothing is waiting to be written or synced (commit() would resolve at once). */
  readonly idle: boolean;
  /** Counts every operation issued; the core compares it around a publish to know whether it wrote anything. */
  readonly operations: number;
  /** Opens the store and returns what it holds. Called once, before any other operation. */
  load(): Promise<StoreContents>;
  /**
   * Called once the broker holds what load() returned: from now on the queues and in-flight windows of the
   * sessions live in the broker alone (see StoreLiveView). A store that is its own state (memory) ignores it.
   */
  attachLive(view: StoreLiveView): void;

  /** Creates or updates a session (expiry, and when it ends if offline). */
  putSession(clientId: string, expiryInterval: number, expiresAt: number, owner?: string | null): void;
  /** Removes a session with its subscriptions, queue, in-flight and inbound QoS 2 state. */
  deleteSession(clientId: string): void;
  addSubscription(clientId: string, entry: SubscriptionEntry): void;
  removeSubscription(clientId: string, filter: string): void;

  /** The message's store id, writing it once (its `storeId` is set); later calls return the same id. */
  putMessage(message: Message): number;
  /** A fresh id for a queue entry. */
  newEntryId(): number;
  /** Queues a message for an (offline or busy) session. */
  enqueue(clientId: string, entryId: number, delivery: StoredDelivery): void;
  /** Removes a queue entry (dropped by policy or expiry). */
  dequeue(clientId: string, entryId: number): void;
  /** Outbound in flight: packet id ↔ message. With `fromEntryId` the queue entry moves into the window. */
  setInflight(clientId: string, packetId: number, delivery: StoredDelivery, fromEntryId: number | undefined): void;
  /** PUBREC received: PUBREL pending, the message itself is no longer needed. */
  releaseInflight(clientId: string, packetId: number): void;
  /** PUBACK or PUBCOMP (or a failed PUBREC): the exchange is over. */
  completeInflight(clientId: string, packetId: number): void;
  /** Inbound QoS 2: PUBREC sent, PUBREL awaited. */
  addInboundQos2(clientId: string, packetId: number): void;
  removeInboundQos2(clientId: string, packetId: number): void;

  setRetained(message: Message): void;
  clearRetained(topic: string): void;
  putWill(will: StoredWill): void;
  deleteWill(clientId: string): void;

  /** Resolves when every operation issued so far is durable (per the sync policy); rejects if it cannot be. */
  commit(): Promise<void>;
  /**
   * Resolves once every operation issued so far is durable, however many failed writes that takes (the store writes
   * them again when the disk has room); rejects only when nothing more can be written before a restart (`broken`).
   * commit() instead fails as soon as a write fails.
   */
  whenWritten(): Promise<void>;
  /** Same as commit(); the name the broker uses at shutdown. */
  flush(): Promise<void>;
  size(): StoreSize;
  close(): Promise<void>;
}

export function emptyContents(): StoreContents {
  return { sessions: new Map(), messages: new Map(), retained: new Map(), wills: new Map() };
}
