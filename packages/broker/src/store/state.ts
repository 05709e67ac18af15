// The state a store holds, kept by applying operations. Messages are reference counted (queue entries, in-flight
// publishes, retained topics) and forgotten when nothing refers to them any more. Operations on things that are
// not there are ignored: replaying a log after a torn batch, or a delete racing a session end, must not fail.
// Once the broker holds the queues and in-flight windows itself (`dropEntries`), the state keeps only sessions,
// subscriptions, inbound QoS 2 ids, retained messages and wills: the per-message records, most of what is written,
// are then no work here at all, and a compaction reads those entries from the broker's view instead.
import type { QoS } from '@otalink/mqtt/codec';
import type { Delivery, Message } from '../message.js';
import type { InflightEntry, SubscriptionEntry } from '../session.js';
import type { StoreOp } from './ops.js';
import type { StoreContents, StoredDelivery, StoredInflight, StoredSession, StoreLiveView } from './types.js';

/**
 * A session as the state keeps it. Its queue is held in the broker's form (`deliveries`: the message itself, the entry
 * id), so that a loaded queue is handed to the broker as it is: one object per queued message, not a stored form
 * and then a broker form built from it. `queue`, the stored form, is built when someone asks (tests, tools).
 */
class StateSession implements StoredSession {
  readonly subscriptions = new Map<string, SubscriptionEntry>();
  /** Queue order is insertion order; keys are entry ids. The broker may take these objects as its own. */
  readonly deliveries = new Map<number, Delivery>();
  readonly inflight = new Map<number, StoredInflight>();
  readonly inboundQos2 = new Set<number>();
  /** The highest entry id ever queued here (an id above it needs no lookup to know it is new). */
  lastEntryId = 0;

  constructor(
    readonly clientId: string,
    public expiryInterval: number,
    public expiresAt: number,
    public owner: string | null | undefined,
  ) {}

  get queue(): Map<number, StoredDelivery> {
    const queue = new Map<number, StoredDelivery>();
    for (const [entryId, delivery] of this.deliveries)
      queue.set(entryId, storedForm(delivery, delivery.message.storeId!));
    return queue;
  }
}

export class StoreState {
  readonly sessions = new Map<string, StateSession>();
  messages = new Map<number, Message>();
  readonly retained = new Map<string, number>();
  readonly wills: StoreContents['wills'] = new Map();
  /** Highest message or entry id seen: new ids continue after it. */
  maxId = 0;
  /** Payload and topic bytes of live messages plus a per-entry estimate: decides when compaction pays. */
  liveBytes = 0;
  /** False once queue and in-flight entries (and the messages only they hold) are the broker's alone. */
  #entries = true;

  get tracksEntries(): boolean {
    return this.#entries;
  }

  /**
   * Hands the queues and in-flight windows over to the broker (which now holds what load() returned): they and the
   * messages only they refer to are forgotten here, and their operations ignored from now on. Retained messages stay.
   */
  dropEntries(): void {
    if (!this.#entries) return;
    this.#entries = false;
    // A new map of the few retained messages rather than 100 k deletes from the old one.
    const all = this.messages;
    this.messages = new Map();
    this.#lastMessage = undefined;
    this.#lastSession = undefined;
    this.liveBytes -= this.#messagesBytes;
    this.#messagesBytes = 0;
    this.payloadBytes = 0;
    for (const id of this.retained.values()) {
      const message = all.get(id)!;
      if (!this.messages.has(id)) this.#admit(id, message);
      this.#ref(message);
    }
    for (const session of this.sessions.values()) {
      this.liveBytes -= (session.deliveries.size + session.inflight.size) * 48;
      session.deliveries.clear();
      session.inflight.clear();
    }
  }

  #scans = 0;

  /**
   * What the broker's queues and in-flight windows of the stored sessions hold (a state without entries): bytes,
   * estimated as for `liveBytes`, and messages, each counted once. Retained messages are counted here already.
   */
  scanEntries(view: StoreLiveView): { bytes: number; messages: number } {
    const scan = ++this.#scans;
    let bytes = 0;
    let messages = 0;
    const count = (message: Message): void => {
      bytes += 48;
      if (message.storeScan === scan || message.storeId === undefined) return;
      message.storeScan = scan;
      if ((message.storeRefs ?? 0) > 0 && this.messages.has(message.storeId)) return;
      bytes += messageBytes(message);
      messages++;
    };
    for (const clientId of this.sessions.keys()) {
      const entries = view.entries(clientId);
      if (entries === undefined) continue;
      for (const delivery of entries.queue) if (delivery.entryId !== undefined) count(delivery.message);
      for (const entry of entries.inflight.values()) {
        if (entry.state === 'publish') count(entry.delivery.message);
        else bytes += 48;
      }
    }
    return { bytes, messages };
  }

  contents(): StoreContents {
    const sessions: Map<string, StoredSession> = this.sessions;
    return { sessions, messages: this.messages, retained: this.retained, wills: this.wills };
  }

  /** Messages held with no reference yet (normally only until the next record of their batch refers to them). */
  #unreferenced = 0;

  /** The last message loaded and the last session an entry went to (see enqueue); cleared when they go. */
  #lastMessage: Message | undefined;
  #lastSession: StateSession | undefined;

  /** messageBytes of every message in `messages` (dropEntries takes them off liveBytes without a walk). */
  #messagesBytes = 0;
  /** Payload bytes of the messages in `messages`. */
  payloadBytes = 0;

  #admit(id: number, message: Message): void {
    message.storeId = id;
    message.storeRefs = 0;
    this.messages.set(id, message);
    this.#counted(message, 1);
    this.#unreferenced++;
  }

  #counted(message: Message, sign: 1 | -1): void {
    const bytes = sign * messageBytes(message);
    this.liveBytes += bytes;
    this.#messagesBytes += bytes;
    this.payloadBytes += sign * message.payload.length;
  }

  // The reference count lives on the message (one Map lookup per reference instead of two Maps).
  #ref(message: Message): void {
    const count = message.storeRefs ?? 0;
    if (count === 0) this.#unreferenced--;
    message.storeRefs = count + 1;
  }

  #unref(messageId: number): void {
    const message = this.messages.get(messageId);
    if (message === undefined) return;
    const count = (message.storeRefs ?? 0) - 1;
    message.storeRefs = count;
    if (count > 0) return;
    this.#retired?.set(messageId, message);
    this.messages.delete(messageId);
    this.#counted(message, -1);
    if (message === this.#lastMessage) this.#lastMessage = undefined;
  }

  /** Messages written but never referenced (a batch torn between the two records) are dropped after a replay. */
  dropUnreferenced(): number {
    if (this.#unreferenced === 0) return 0;
    this.#unreferenced = 0;
    let dropped = 0;
    for (const [id, message] of this.messages) {
      if ((message.storeRefs ?? 0) > 0) continue;
      this.messages.delete(id);
      this.#counted(message, -1);
      dropped++;
      if (message === this.#lastMessage) this.#lastMessage = undefined;
    }
    return dropped;
  }

  apply(op: StoreOp): void {
    if (!this.#entries && ENTRY_OPS.has(op.op)) return;
    switch (op.op) {
      case 'session': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined) {
          this.sessions.set(op.clientId, new StateSession(op.clientId, op.expiryInterval, op.expiresAt, op.owner));
          this.liveBytes += 64 + op.clientId.length;
        } else {
          session.expiryInterval = op.expiryInterval;
          session.expiresAt = op.expiresAt;
          if (op.owner !== undefined) session.owner = op.owner;
        }
        return;
      }
      case 'session-del': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined) return;
        this.sessions.delete(op.clientId);
        if (session === this.#lastSession) this.#lastSession = undefined;
        for (const delivery of session.deliveries.values()) this.#unref(delivery.message.storeId!);
        for (const entry of session.inflight.values()) if (entry.delivery) this.#unref(entry.delivery.messageId);
        this.liveBytes -=
          64 +
          op.clientId.length +
          session.subscriptions.size * 64 +
          (session.deliveries.size + session.inflight.size) * 48;
        return;
      }
      case 'sub': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined) return;
        if (!session.subscriptions.has(op.entry.filter)) this.liveBytes += 64;
        session.subscriptions.set(op.entry.filter, op.entry);
        return;
      }
      case 'unsub': {
        const session = this.sessions.get(op.clientId);
        if (session?.subscriptions.delete(op.filter)) this.liveBytes -= 64;
        return;
      }
      case 'msg':
        this.message(op.id, op.message);
        return;
      case 'enqueue': {
        const { messageId, qos, retain, subscriptionIds, sharedFilter } = op.delivery;
        this.enqueue(op.clientId, op.entryId, messageId, qos, retain, subscriptionIds, sharedFilter);
        return;
      }
      case 'dequeue':
        this.dequeue(op.clientId, op.entryId);
        return;
      case 'inflight': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined) return;
        const message = this.messages.get(op.delivery.messageId);
        if (message !== undefined) {
          this.#dropInflight(session, op.packetId);
          session.inflight.set(op.packetId, { state: 'publish', delivery: op.delivery });
          // Referenced before the queue entry lets go of it, or a message held by that entry alone is forgotten.
          this.#ref(message);
          this.liveBytes += 48;
        }
        if (op.fromEntryId !== undefined) this.dequeue(op.clientId, op.fromEntryId);
        return;
      }
      case 'inflight-rel': {
        const entry = this.sessions.get(op.clientId)?.inflight.get(op.packetId);
        if (entry === undefined || entry.delivery === undefined) return;
        this.#unref(entry.delivery.messageId);
        entry.delivery = undefined;
        entry.state = 'pubrel';
        return;
      }
      case 'inflight-pubrel': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined) return;
        this.#dropInflight(session, op.packetId);
        session.inflight.set(op.packetId, { state: 'pubrel', delivery: undefined });
        this.liveBytes += 48;
        return;
      }
      case 'inflight-del': {
        const session = this.sessions.get(op.clientId);
        if (session !== undefined) this.#dropInflight(session, op.packetId);
        return;
      }
      case 'qos2': {
        const session = this.sessions.get(op.clientId);
        if (session === undefined || session.inboundQos2.has(op.packetId)) return;
        session.inboundQos2.add(op.packetId);
        this.liveBytes += 16;
        return;
      }
      case 'qos2-del': {
        if (this.sessions.get(op.clientId)?.inboundQos2.delete(op.packetId)) this.liveBytes -= 16;
        return;
      }
      case 'retain': {
        let message = this.messages.get(op.messageId);
        if (message === undefined && !this.#entries && op.message !== undefined) {
          // No `msg` record is applied here any more: the retained message comes with its operation.
          message = op.message;
          this.#admit(op.messageId, message);
        }
        if (message === undefined) return;
        const previous = this.retained.get(op.topic);
        this.retained.set(op.topic, op.messageId);
        this.#ref(message);
        if (previous !== undefined) this.#unref(previous);
        return;
      }
      case 'retain-del': {
        const previous = this.retained.get(op.topic);
        if (previous === undefined) return;
        this.retained.delete(op.topic);
        this.#unref(previous);
        return;
      }
      case 'will':
        if (!this.wills.has(op.will.clientId)) this.liveBytes += 128 + op.will.will.payload.length;
        this.wills.set(op.will.clientId, op.will);
        return;
      case 'will-del': {
        const will = this.wills.get(op.clientId);
        if (will === undefined) return;
        this.wills.delete(op.clientId);
        this.liveBytes -= 128 + will.will.payload.length;
        return;
      }
      case 'header':
      case 'snapshot-end':
        return;
    }
  }

  // The three records most of a log is made of, also taken straight from the decoder (RecordSink): no operation
  // object each when a log is replayed.
  message(id: number, message: Message): void {
    if (!this.#entries || !this.#newMessage(id)) return;
    this.#admit(id, message);
  }

  /** Whether a message record with `id` adds a message: an id above every id seen does, without a lookup. */
  #newMessage(id: number): boolean {
    if (id > this.maxId) {
      this.maxId = id;
      return true;
    }
    return !this.messages.has(id);
  }

  /**
   * A message record read from the log: the object is made here with its store fields in it from the start, so that
   * #admit adds no property (no second allocation and shape change per loaded message).
   */
  loadMessage(
    id: number,
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    retain: boolean,
    properties: Message['properties'],
    expiresAt: number,
    origin: string | undefined,
  ): void {
    if (!this.#entries || !this.#newMessage(id)) return;
    const message: Message = { topic, payload, qos, retain, properties, expiresAt, origin, storeId: id, storeRefs: 0 };
    this.#admit(id, message);
    this.#lastMessage = message;
  }

  // The delivery's fields come one by one: a replayed log makes no stored-form object per entry, only the broker's.
  enqueue(
    clientId: string,
    entryId: number,
    messageId: number,
    qos: QoS,
    retain: boolean,
    subscriptionIds: number[] | undefined,
    sharedFilter: string | undefined,
  ): void {
    if (!this.#entries) return;
    if (entryId > this.maxId) this.maxId = entryId;
    // A log mostly holds runs of one client's entries, each right after its message's record: the two lookups are
    // answered from the previous record when they can be.
    let session = this.#lastSession;
    if (session === undefined || session.clientId !== clientId) {
      session = this.sessions.get(clientId);
      if (session === undefined) return;
      this.#lastSession = session;
    }
    // Entry ids above the session's highest cannot be in its queue yet.
    if (entryId > session.lastEntryId) session.lastEntryId = entryId;
    else if (session.deliveries.has(entryId)) return;
    const last = this.#lastMessage;
    const message = last !== undefined && last.storeId === messageId ? last : this.messages.get(messageId);
    if (message === undefined) return;
    session.deliveries.set(entryId, { message, qos, retain, subscriptionIds, sharedFilter, entryId });
    this.#ref(message);
    this.liveBytes += 48;
  }

  dequeue(clientId: string, entryId: number): void {
    if (!this.#entries) return;
    const session = this.sessions.get(clientId);
    const delivery = session?.deliveries.get(entryId);
    if (session === undefined || delivery === undefined) return;
    session.deliveries.delete(entryId);
    this.#unref(delivery.message.storeId!);
    this.liveBytes -= 48;
  }

  #dropInflight(session: StateSession, packetId: number): void {
    const entry = session.inflight.get(packetId);
    if (entry === undefined) return;
    session.inflight.delete(packetId);
    if (entry.delivery !== undefined) this.#unref(entry.delivery.messageId);
    this.liveBytes -= 48;
  }

  /** Messages forgotten while a frozen copy may still need them (see freeze). */
  #retired: Map<number, Message> | undefined;

  /**
   * The operations that rebuild this state as of now from nothing (the body of a compaction snapshot), to be
   * encoded later while the live state moves on. The copy is of keys and values only (deliveries, subscription
   * entries and messages never change once applied): no Map is rebuilt and no message copied. Messages are looked up
   * live when encoded (ids are never reused); one forgotten meanwhile is kept aside until `release()`.
   */
  freeze(view?: StoreLiveView): FrozenState {
    const retired = new Map<number, Message>();
    this.#retired = retired;
    const live = this.messages;
    const retained = Array.from(this.retained);
    const fromBroker = !this.#entries;
    if (fromBroker && view === undefined) throw new Error('a state without entries needs the broker view to freeze');
    const sessions = Array.from(this.sessions.values(), (session): FrozenSession => {
      const frozen: FrozenSession = {
        clientId: session.clientId,
        expiryInterval: session.expiryInterval,
        expiresAt: session.expiresAt,
        owner: session.owner,
        subscriptions: Array.from(session.subscriptions.values()),
        queueIds: [],
        queue: [],
        // Entries change state in place (PUBREC): copied.
        inflight: Array.from(session.inflight, ([packetId, entry]) => ({ packetId, delivery: entry.delivery })),
        inboundQos2: Array.from(session.inboundQos2),
      };
      if (fromBroker) {
        const entries = view!.entries(session.clientId);
        if (entries !== undefined) brokerEntries(frozen, entries.queue, entries.inflight);
      } else {
        frozenQueue(frozen, session.deliveries.values());
      }
      return frozen;
    });
    const wills = Array.from(this.wills.values());
    function* ops(): Generator<StoreOp> {
      const written = new Set<number>();
      const message = (id: number, held: Message | undefined): StoreOp | undefined => {
        if (written.has(id)) return undefined;
        const stored = held ?? live.get(id) ?? retired.get(id);
        if (stored === undefined) return undefined;
        written.add(id);
        return { op: 'msg', id, message: stored };
      };
      for (const [topic, id] of retained) {
        const put = message(id, undefined);
        if (put !== undefined) yield put;
        yield { op: 'retain', topic, messageId: id };
      }
      for (const session of sessions) {
        const clientId = session.clientId;
        const { expiryInterval, expiresAt, owner } = session;
        yield { op: 'session', clientId, expiryInterval, expiresAt, owner };
        for (const entry of session.subscriptions) yield { op: 'sub', clientId, entry };
        const held = session.queueMessages;
        for (let index = 0; index < session.queue.length; index++) {
          const delivery = session.queue[index]!;
          const put = message(delivery.messageId, held?.[index]);
          if (put !== undefined) yield put;
          yield { op: 'enqueue', clientId, entryId: session.queueIds[index]!, delivery };
        }
        for (const { packetId, delivery, message: inflightMessage } of session.inflight) {
          if (delivery === undefined) continue;
          const put = message(delivery.messageId, inflightMessage);
          if (put !== undefined) yield put;
          yield { op: 'inflight', clientId, packetId, delivery, fromEntryId: undefined };
        }
        for (const { packetId, delivery } of session.inflight) {
          if (delivery === undefined) yield { op: 'inflight-pubrel', clientId, packetId };
        }
        for (const packetId of session.inboundQos2) yield { op: 'qos2', clientId, packetId };
      }
      for (const will of wills) yield { op: 'will', will };
    }
    return {
      ops,
      release: () => {
        if (this.#retired === retired) this.#retired = undefined;
      },
    };
  }
}

interface FrozenSession {
  clientId: string;
  expiryInterval: number;
  expiresAt: number;
  owner: string | null | undefined;
  subscriptions: SubscriptionEntry[];
  queueIds: number[];
  queue: StoredDelivery[];
  /** The messages of `queue`, by index, when they came from the broker (the state keeps none). */
  queueMessages?: Message[];
  inflight: Array<{ packetId: number; delivery: StoredDelivery | undefined; message?: Message }>;
  inboundQos2: number[];
}

/**
 * The broker's queue and in-flight window of a session in the store's form, copied now (ids included: a later
 * change must not reach a snapshot of this moment). Entries the store was never told of (no entry or message id)
 * are left out.
 */
function brokerEntries(
  frozen: FrozenSession,
  queue: Iterable<Delivery>,
  inflight: ReadonlyMap<number, InflightEntry>,
): void {
  frozenQueue(frozen, queue);
  frozen.inflight = [];
  for (const [packetId, entry] of inflight) {
    if (entry.state === 'pubrel') {
      frozen.inflight.push({ packetId, delivery: undefined });
      continue;
    }
    const messageId = entry.delivery.message.storeId;
    if (messageId === undefined) continue;
    frozen.inflight.push({
      packetId,
      delivery: storedForm(entry.delivery, messageId),
      message: entry.delivery.message,
    });
  }
}

/** A queue in the broker's form, copied into the snapshot's (entries the store was never told of are left out). */
function frozenQueue(frozen: FrozenSession, queue: Iterable<Delivery>): void {
  const queueIds: number[] = [];
  const deliveries: StoredDelivery[] = [];
  const messages: Message[] = [];
  for (const delivery of queue) {
    const messageId = delivery.message.storeId;
    if (delivery.entryId === undefined || messageId === undefined) continue;
    queueIds.push(delivery.entryId);
    deliveries.push(storedForm(delivery, messageId));
    messages.push(delivery.message);
  }
  frozen.queueIds = queueIds;
  frozen.queue = deliveries;
  frozen.queueMessages = messages;
}

function storedForm(delivery: Delivery, messageId: number): StoredDelivery {
  return {
    messageId,
    qos: delivery.qos,
    retain: delivery.retain,
    subscriptionIds: delivery.subscriptionIds,
    sharedFilter: delivery.sharedFilter,
  };
}

/** Operations that only touch queue and in-flight entries and their messages. */
const ENTRY_OPS: ReadonlySet<StoreOp['op']> = new Set<StoreOp['op']>([
  'msg',
  'enqueue',
  'dequeue',
  'inflight',
  'inflight-rel',
  'inflight-pubrel',
  'inflight-del',
]);

export interface FrozenState {
  ops(): Generator<StoreOp>;
  /** The snapshot is written (or abandoned): stop keeping forgotten messages for it. */
  release(): void;
}

export function messageBytes(message: Message): number {
  return 64 + message.topic.length + message.payload.length;
}
