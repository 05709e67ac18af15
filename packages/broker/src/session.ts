// Per-client session: subscriptions, the outbound in-flight window and queue, inbound QoS 2 state and packet ids.
// Its state is what `SessionState` names (the session holds it in its own fields); a session that outlives its
// connection tells the broker's store (store/) about each change as it happens, so the store can bring it back after
// a restart. Sessions that end with their connection never reach the store. The session never touches a socket: it
// hands deliveries to an `Outlet` (the connection) and knows only whether the outlet can take more.
import type { ProtocolVersion, QoS, RetainHandling } from '@otalink/mqtt/codec';
import { Fifo } from '@otalink/mqtt/fifo';
import { type InflightEntry, InflightWindow } from './inflight-window.js';
import { type Delivery, isExpired } from './message.js';
import type { PublishTemplates } from './publish-encoding.js';
import type { BrokerStats } from './stats.js';
import type { BrokerStore, StoredDelivery } from './store/types.js';
import { type SubscriptionSet, Subscriptions } from './subscriptions.js';

export interface SubscriptionEntry {
  /** As the client sent it, `$share/{group}/` included. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: RetainHandling;
  subscriptionId: number | undefined;
}

export type { InflightEntry } from './inflight-window.js';

/** Everything a session must keep across connections: the fields of Session that say so (documented there). */
export type SessionState = Pick<
  Session,
  'clientId' | 'owner' | 'expiryInterval' | 'subscriptions' | 'inflight' | 'queue' | 'inboundQos2' | 'nextPacketId'
>;

/** A shared empty collection that refuses writes: replaced by a real one (`inflightOf`, `inboundQos2Of`) on first use. */
class NoEntries extends InflightWindow {
  override publish(): void {
    throw new Error('write to the shared empty session window: use inflightOf()');
  }
  override set(): this {
    throw new Error('write to the shared empty session window: use inflightOf()');
  }
}
/**
 * A session's queue, counting the payload bytes it holds (for maxQueuedBytes) wherever a delivery comes or goes:
 * routing, the drop policy, the pump, a restore from the store, a session's end.
 */
export class DeliveryQueue extends Fifo<Delivery> {
  bytes = 0;

  override push(delivery: Delivery): void {
    super.push(delivery);
    this.bytes += delivery.message.payload.length;
  }

  override unshiftAll(deliveries: readonly Delivery[]): void {
    super.unshiftAll(deliveries);
    for (const delivery of deliveries) this.bytes += delivery.message.payload.length;
  }

  override shift(): Delivery | undefined {
    const delivery = super.shift();
    if (delivery !== undefined) this.bytes -= delivery.message.payload.length;
    return delivery;
  }

  override pop(): Delivery | undefined {
    const delivery = super.pop();
    // Fifo.pop clears an emptied queue (and so the count) itself.
    if (delivery !== undefined && this.length > 0) this.bytes -= delivery.message.payload.length;
    return delivery;
  }

  override removeWhere(remove: (delivery: Delivery) => boolean): Delivery[] {
    const removed = super.removeWhere(remove);
    for (const delivery of removed) this.bytes -= delivery.message.payload.length;
    return removed;
  }

  override clear(): void {
    super.clear();
    this.bytes = 0;
  }
}

class NoDeliveries extends DeliveryQueue {
  override push(): void {
    throw new Error('write to the shared empty session queue: use queueOf()');
  }
  override unshiftAll(): void {
    throw new Error('write to the shared empty session queue: use queueOf()');
  }
}
class NoIds extends Set<number> {
  override add(): this {
    throw new Error('write to the shared empty session set: use inboundQos2Of()');
  }
}
// Most sessions never have a QoS 1/2 message in flight or queued, or an inbound QoS 2 exchange: a Map, a Set and a
// queue with its array per idle connection (~0.6 KB of heap) would be spent on nothing.
const NO_INFLIGHT: InflightWindow = new NoEntries();
const NO_INBOUND_QOS2: Set<number> = new NoIds();
const NO_QUEUE: DeliveryQueue = new NoDeliveries();

export function newSessionState(clientId: string, expiryInterval: number, owner?: string | null): SessionState {
  return {
    clientId,
    owner,
    expiryInterval,
    subscriptions: new Subscriptions(),
    inflight: NO_INFLIGHT,
    queue: NO_QUEUE,
    inboundQos2: NO_INBOUND_QOS2,
    nextPacketId: 1,
  };
}

/** The session's in-flight window, made writable (allocated) on first use. */
export function inflightOf(state: SessionState): InflightWindow {
  if (state.inflight === NO_INFLIGHT) state.inflight = new InflightWindow();
  return state.inflight;
}

/** The session's queue, made writable (allocated) on first use. */
export function queueOf(state: SessionState): DeliveryQueue {
  if (state.queue === NO_QUEUE) state.queue = new DeliveryQueue();
  return state.queue;
}

/** The session's inbound QoS 2 ids, made writable (allocated) on first use. */
export function inboundQos2Of(state: SessionState): Set<number> {
  if (state.inboundQos2 === NO_INBOUND_QOS2) state.inboundQos2 = new Set();
  return state.inboundQos2;
}

/** What a session sends through: implemented by the connection. */
export interface Outlet {
  readonly protocolVersion: ProtocolVersion;
  /** QoS 1/2 messages the client accepts in flight (its Receive Maximum, capped by ours). */
  readonly sendWindow: number;
  /** True while the socket has more buffered than the per-subscriber bound. */
  congested(): boolean;
  /** Writes one PUBLISH; returns false if it was not sent (larger than the client's Maximum Packet Size). */
  sendPublish(delivery: Delivery, templates: PublishTemplates | undefined, packetId: number, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
}

export interface QueueLimits {
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  queueDropPolicy: 'oldest' | 'newest';
}

/** The store's form of a delivery (the message itself is written once, by id). */
export function storedDelivery(store: BrokerStore, delivery: Delivery): StoredDelivery {
  return {
    messageId: store.putMessage(delivery.message),
    qos: delivery.qos,
    retain: delivery.retain,
    subscriptionIds: delivery.subscriptionIds,
    sharedFilter: delivery.sharedFilter,
  };
}

/** The parts of a session few sessions ever use. */
class RareState {
  /**
   * Deliveries of inbound QoS 2 messages whose store records are written but whose commit has not resolved: they
   * join the session (offerHeld) once it has, or go (dropHeld) if it failed. The store's snapshot reads them where
   * its log has them (liveEntries): in the queue, or in flight under a packet id taken for them (`packetId`).
   */
  held: HeldDelivery[] | undefined = undefined;
  /** Packet ids taken by held deliveries: they count against the send window and are not given out again. */
  reserved: Map<number, Delivery> | undefined = undefined;
  /**
   * Inbound QoS 2 ids whose commit ended in a failed fdatasync: on disk or not, the restart will tell. Kept (a resend
   * is not delivered again in this run) and never acknowledged before that restart.
   */
  unsure: Set<number> | undefined = undefined;
  /**
   * Packet ids of PUBLISHes an earlier connection left unacknowledged and this one has not sent again yet: the
   * client's Receive Maximum counts only what was sent on this connection, so they go out as acknowledgements free it.
   */
  unsent: number[] | undefined = undefined;
}

/** A held delivery (Session.hold), with the packet id taken for it if it goes out as soon as its commit resolves. */
interface HeldDelivery {
  delivery: Delivery;
  packetId: number | undefined;
}

/** What a session reports to and writes through: the broker core's, shared by every session. */
export interface SessionEnv {
  readonly stats: BrokerStats;
  readonly limits: QueueLimits;
  readonly store: BrokerStore;
}

/**
 * A session is its own SessionState: the state given to the constructor is copied into it (then unused), so an idle
 * session is one object, and everything shared comes through one reference (`#env`). Its helpers are TypeScript
 * `private`, not `#` methods, which would give every instance a slot for its class brand.
 */
export class Session {
  // The SessionState fields.
  clientId: string;
  /**
   * The identity it belongs to (user name or certificate identity; null: anonymous). Undefined for a session a store
   * written before owners were kept restored: the first identity to resume it becomes its owner.
   */
  owner: string | null | undefined;
  /** Seconds the session outlives its connection; 0 ends it with the connection. */
  expiryInterval: number;
  /** Its subscriptions, as `subscriptions` reads them (see subscriptions.ts). */
  subscribed: SubscriptionSet;
  inflight: InflightWindow;
  queue: DeliveryQueue;
  /** QoS 2 packet ids received and acknowledged with PUBREC, waiting for PUBREL. */
  inboundQos2: Set<number>;
  nextPacketId: number;
  outlet: Outlet | undefined;
  /** When an offline session ends (ms since the epoch); 0 while connected. */
  expiresAt = 0;
  readonly #env: SessionEnv;
  /** What few sessions use (held inbound QoS 2 deliveries, unsure ids): made on first use, one slot for all. */
  #rare: RareState | undefined;

  constructor(state: SessionState, env: SessionEnv) {
    this.clientId = state.clientId;
    this.owner = state.owner;
    this.expiryInterval = state.expiryInterval;
    this.subscribed = state.subscriptions.held;
    this.inflight = state.inflight;
    this.queue = state.queue;
    this.inboundQos2 = state.inboundQos2;
    this.nextPacketId = state.nextPacketId;
    this.outlet = undefined;
    this.#env = env;
    this.#rare = undefined;
  }

  private get held(): HeldDelivery[] | undefined {
    return this.#rare?.held;
  }
  private set held(held: HeldDelivery[] | undefined) {
    if (held !== undefined || this.#rare !== undefined) this.rare().held = held;
  }

  private get reserved(): Map<number, Delivery> | undefined {
    return this.#rare?.reserved;
  }
  private set reserved(reserved: Map<number, Delivery> | undefined) {
    if (reserved !== undefined || this.#rare !== undefined) this.rare().reserved = reserved;
  }

  private rare(): RareState {
    this.#rare ??= new RareState();
    return this.#rare;
  }

  /** Its subscriptions, read like a Map: a new view of the `subscribed` field each time (see subscriptions.ts). */
  get subscriptions(): Subscriptions {
    return new Subscriptions(this);
  }

  /** The session's state: the session itself. */
  get state(): SessionState {
    return this;
  }

  /** Whether the session outlives its connection, and so lives in the store. */
  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  /** Adds or replaces a subscription; returns whether it is new to the session. */
  subscribe(entry: SubscriptionEntry): boolean {
    const subscriptions = this.subscriptions;
    const isNew = !subscriptions.has(entry.filter);
    subscriptions.add(entry);
    if (this.persistent) this.#env.store.addSubscription(this.clientId, entry);
    return isNew;
  }

  unsubscribe(filter: string): boolean {
    const existed = this.subscriptions.delete(filter);
    if (existed && this.persistent) this.#env.store.removeSubscription(this.clientId, filter);
    return existed;
  }

  /** Whether a QoS 2 packet id is received and not yet released (a resend must not be delivered again). */
  hasInboundQos2(packetId: number): boolean {
    return this.inboundQos2.has(packetId);
  }

  get inboundQos2Count(): number {
    return this.inboundQos2.size;
  }

  /** An inbound QoS 2 id whose commit ended in a failed fdatasync (RareState.unsure). */
  unsureQos2(packetId: number): void {
    const rare = this.rare();
    rare.unsure ??= new Set();
    rare.unsure.add(packetId);
  }

  isUnsureQos2(packetId: number): boolean {
    return this.#rare?.unsure?.has(packetId) === true;
  }

  receivedQos2(packetId: number): void {
    inboundQos2Of(this).add(packetId);
    if (this.persistent) this.#env.store.addInboundQos2(this.clientId, packetId);
  }

  /** PUBREL: returns whether the id was pending. */
  releaseQos2(packetId: number): boolean {
    const found = this.inboundQos2.delete(packetId);
    this.#rare?.unsure?.delete(packetId);
    if (found && this.persistent) this.#env.store.removeInboundQos2(this.clientId, packetId);
    return found;
  }

  /** Another identity re-authenticated on its connection (5.0 AUTH): the session is that identity's now. */
  changeOwner(owner: string | null): void {
    this.owner = owner;
    if (this.persistent) this.#env.store.putSession(this.clientId, this.expiryInterval, 0, owner);
  }

  /**
   * A new expiry (CONNECT of a resumed session, DISCONNECT). A session that stops outliving its connection leaves
   * the store; one that starts to (a resumed session, which is always persistent) is written whole.
   */
  setExpiryInterval(seconds: number): void {
    const was = this.persistent;
    this.expiryInterval = seconds;
    if (seconds === 0) {
      if (was) this.#env.store.deleteSession(this.clientId);
      return;
    }
    this.#env.store.putSession(this.clientId, seconds, 0, this.owner);
    if (!was) this.writeAll();
  }

  /** Writes the whole session to the store (it became persistent while holding state). */
  private writeAll(): void {
    const store = this.#env.store;
    const clientId = this.clientId;
    for (const entry of this.subscriptions.values()) store.addSubscription(clientId, entry);
    for (const delivery of this.queue) {
      delivery.entryId = store.newEntryId();
      store.enqueue(clientId, delivery.entryId, storedDelivery(store, delivery));
    }
    for (const [packetId, entry] of this.inflight) {
      if (entry.state === 'publish')
        store.setInflight(clientId, packetId, storedDelivery(store, entry.delivery), undefined);
    }
    for (const packetId of this.inboundQos2) store.addInboundQos2(clientId, packetId);
  }

  /**
   * An inbound QoS 2 delivery waiting for its commit. A persistent session's record is written now, in the same
   * batch as the publisher's packet id, so that once that batch is durable the message's routing is too: in flight
   * under a packet id taken now when it could be sent now (the PUBLISH then leaves as soon as the commit resolves,
   * without waiting for another one for its in-flight record), else a queue entry.
   */
  hold(delivery: Delivery): void {
    const record: HeldDelivery = { delivery, packetId: undefined };
    const held = this.held;
    this.held = held === undefined ? [record] : [...held, record];
    if (delivery.qos === 0 || !this.persistent) return;
    const store = this.#env.store;
    const outlet = this.outlet;
    // Behind a held delivery that waits in the queue it must wait too (the queue keeps one publisher's order).
    const queuedBefore = held?.some((earlier) => earlier.packetId === undefined && earlier.delivery.qos > 0) === true;
    if (outlet !== undefined && this.queue.length === 0 && !queuedBefore && this.windowUsed < outlet.sendWindow) {
      record.packetId = this.takePacketId();
      this.reserved ??= new Map();
      this.reserved.set(record.packetId, delivery);
      store.setInflight(this.clientId, record.packetId, storedDelivery(store, delivery), undefined);
      return;
    }
    delivery.entryId = store.newEntryId();
    store.enqueue(this.clientId, delivery.entryId, storedDelivery(store, delivery));
  }

  /** The commit holding a held delivery resolved: it goes out under its packet id, or is offered as any other. */
  offerHeld(delivery: Delivery, templates: PublishTemplates | undefined, now: number): void {
    const record = this.unhold(delivery);
    if (record === undefined) return;
    const packetId = record.packetId;
    if (packetId === undefined) {
      this.offer(delivery, templates, now);
      return;
    }
    this.reserved!.delete(packetId);
    // In flight whether or not the client is still connected (a reconnect resends it with DUP, as any other).
    inflightOf(this).set(packetId, { delivery, state: 'publish' });
    const outlet = this.outlet;
    if (outlet !== undefined && !outlet.sendPublish(delivery, templates, packetId, false)) {
      this.inflight.delete(packetId);
      if (this.persistent) this.#env.store.completeInflight(this.clientId, packetId);
    }
  }

  /** The commit holding a held delivery failed: the session never sees it. */
  dropHeld(delivery: Delivery, now: number): void {
    const record = this.unhold(delivery);
    // Its batch did not make it to the log; the record only keeps the log in step for a later snapshot.
    if (record !== undefined && this.undoHeld(record)) this.pump(now);
  }

  /**
   * Undoes the records of a held delivery that will not join the session: its queue entry, or the in-flight entry
   * under the packet id reserved for it. Returns whether that freed a slot of the window.
   */
  private undoHeld(record: HeldDelivery): boolean {
    if (record.packetId === undefined) {
      this.dropped(record.delivery);
      return false;
    }
    this.reserved!.delete(record.packetId);
    if (this.persistent) this.#env.store.completeInflight(this.clientId, record.packetId);
    return true;
  }

  private unhold(delivery: Delivery): HeldDelivery | undefined {
    const held = this.held;
    if (held === undefined) return undefined;
    const index = held.findIndex((record) => record.delivery === delivery);
    if (index < 0) return undefined;
    const record = held[index]!;
    this.held = held.length === 1 ? undefined : held.filter((_, i) => i !== index);
    return record;
  }

  /**
   * In-flight messages sent on this connection and packet ids taken by held deliveries: what counts against the
   * client's window.
   */
  private get windowUsed(): number {
    const rare = this.#rare;
    if (rare === undefined) return this.inflight.size;
    return this.inflight.size + (rare.reserved?.size ?? 0) - (rare.unsent?.length ?? 0);
  }

  /** What the store's log holds for this session: queue and in-flight window, held deliveries included. */
  liveEntries(): { queue: Iterable<Delivery>; inflight: ReadonlyMap<number, InflightEntry> } {
    const held = this.held;
    if (held === undefined) return this;
    const queued = held.filter((record) => record.packetId === undefined).map((record) => record.delivery);
    let inflight: ReadonlyMap<number, InflightEntry> = this.inflight;
    if (this.reserved !== undefined && this.reserved.size > 0) {
      const all = new Map(this.inflight);
      for (const [packetId, delivery] of this.reserved) all.set(packetId, { state: 'publish', delivery });
      inflight = all;
    }
    return { queue: queued.length === 0 ? this.queue : [...this.queue, ...queued], inflight };
  }

  /** Routes one delivery: straight out if the window allows, queued (QoS 1/2) or dropped (QoS 0) otherwise. */
  offer(delivery: Delivery, templates: PublishTemplates | undefined, now: number): void {
    const outlet = this.outlet;
    if (delivery.qos === 0) {
      if (outlet === undefined) return; // QoS 0 is not kept for offline sessions
      if (outlet.congested()) {
        this.#env.stats.droppedSlowSubscriber++;
        return;
      }
      outlet.sendPublish(delivery, templates, 0, false);
      return;
    }
    if (outlet !== undefined && this.queue.length === 0 && this.windowUsed < outlet.sendWindow) {
      this.send(outlet, delivery, templates);
      return;
    }
    this.enqueue(delivery, now);
  }

  private enqueue(delivery: Delivery, now: number): void {
    const queue = this.queue;
    const limits = this.#env.limits;
    const stats = this.#env.stats;
    const size = delivery.message.payload.length;
    const byteLimit = limits.maxQueuedBytes;
    if (byteLimit > 0 && size > byteLimit) {
      // Room for it would never be made, whatever went: it goes, and the queue stays.
      stats.droppedQueueFull++;
      this.dropped(delivery);
      return;
    }
    while (queue.length >= limits.maxQueuedMessages || (byteLimit > 0 && queue.bytes + size > byteLimit)) {
      // Expired messages go first: dropping them costs nobody anything.
      if (queue.length > 0 && isExpired(queue.peek()!.message, now)) {
        this.dropped(queue.shift()!);
        stats.droppedExpired++;
        stats.queuedCurrent--;
        continue;
      }
      stats.droppedQueueFull++;
      if (limits.queueDropPolicy === 'newest' || queue.length === 0) {
        this.dropped(delivery);
        return;
      }
      this.dropped(queue.shift()!);
      stats.queuedCurrent--;
    }
    queueOf(this).push(delivery);
    this.#env.stats.queuedCurrent++;
    // A held delivery's entry is written already (hold).
    if (this.persistent && delivery.entryId === undefined) {
      const store = this.#env.store;
      delivery.entryId = store.newEntryId();
      store.enqueue(this.clientId, delivery.entryId, storedDelivery(store, delivery));
    }
  }

  private dropped(delivery: Delivery): void {
    if (delivery.entryId !== undefined && this.persistent) this.#env.store.dequeue(this.clientId, delivery.entryId);
  }

  private send(outlet: Outlet, delivery: Delivery, templates: PublishTemplates | undefined): void {
    const packetId = this.takePacketId();
    if (outlet.sendPublish(delivery, templates, packetId, false)) {
      inflightOf(this).publish(packetId, delivery);
      if (this.persistent) {
        const store = this.#env.store;
        store.setInflight(this.clientId, packetId, storedDelivery(store, delivery), delivery.entryId);
      }
    } else {
      this.dropped(delivery);
    }
  }

  private takePacketId(): number {
    // The window is far below 65535, so a free id is always found within a few steps. One whose slot in the window's
    // table is taken (by an id still in flight from much earlier) is passed over, so that the table need not grow;
    // after a run of those any free id does, and the table makes room.
    for (let passed = 0; ; ) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 0xffff ? 1 : id + 1;
      if (this.inflight.has(id) || this.reserved?.has(id) === true) continue;
      if (this.inflight.fits(id) || ++passed > 16) return id;
    }
  }

  /** Moves queued messages into the window while it has room. */
  pump(now: number): void {
    const outlet = this.outlet;
    if (outlet === undefined) return;
    // What an earlier connection left unacknowledged goes before anything new.
    if (this.#rare?.unsent !== undefined && !this.resendSome(outlet)) return;
    const queue = this.queue;
    while (queue.length > 0 && this.windowUsed < outlet.sendWindow) {
      const delivery = queue.shift()!;
      this.#env.stats.queuedCurrent--;
      if (isExpired(delivery.message, now)) {
        this.dropped(delivery);
        this.#env.stats.droppedExpired++;
        continue;
      }
      this.send(outlet, delivery, undefined);
    }
  }

  /**
   * The acknowledgement the message in flight under `packetId` waits for: PUBACK (a QoS 1 PUBLISH), PUBREC (a QoS 2
   * PUBLISH) or PUBCOMP (its PUBREL is out); undefined when nothing is in flight under it.
   */
  awaits(packetId: number): 'puback' | 'pubrec' | 'pubcomp' | undefined {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return undefined;
    if (entry.state === 'pubrel') return 'pubcomp';
    return entry.delivery.qos === 2 ? 'pubrec' : 'puback';
  }

  /** PUBACK, or PUBREC with a failure code: the exchange is over. Returns whether the id was in flight. */
  complete(packetId: number, now: number): boolean {
    if (!this.inflight.delete(packetId)) return false;
    if (this.persistent) this.#env.store.completeInflight(this.clientId, packetId);
    this.pump(now);
    return true;
  }

  /** PUBREC with success: the message is delivered; PUBREL goes out and waits for PUBCOMP. */
  released(packetId: number): boolean {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return false;
    if (entry.state === 'publish' && this.persistent) this.#env.store.releaseInflight(this.clientId, packetId);
    this.inflight.pubrel(packetId);
    this.outlet?.sendPubrel(packetId);
    // A PUBREC for a message not yet sent again on this connection: it no longer waits for its resend.
    if (this.#rare?.unsent !== undefined && this.outlet !== undefined) this.resendSome(this.outlet);
    return true;
  }

  /** A (re)connected client: resend what was in flight (PUBLISH with DUP, or PUBREL), then drain the queue. */
  resume(outlet: Outlet, now: number): void {
    this.outlet = outlet;
    this.expiresAt = 0;
    // No iterator for an empty window (a new session's always is).
    if (this.inflight.size > 0) this.resend(outlet);
    this.pump(now);
  }

  /** Sends PUBREL again for every released message and lines up the unacknowledged PUBLISHes (pump sends them). */
  private resend(outlet: Outlet): void {
    const unsent: number[] = [];
    for (const [packetId, entry] of this.inflight) {
      if (entry.state === 'pubrel') outlet.sendPubrel(packetId);
      else unsent.push(packetId);
    }
    if (this.#rare !== undefined) this.#rare.unsent = undefined;
    if (unsent.length > 0) this.rare().unsent = unsent;
  }

  /**
   * Sends the lined-up PUBLISHes again, with DUP, as far as the client's Receive Maximum allows: [MQTT-3.3.4-9] holds
   * for resends too, and a client may come back with a smaller one. Returns whether all have gone.
   */
  private resendSome(outlet: Outlet): boolean {
    const rare = this.#rare!;
    // Those the client acknowledged meanwhile (PUBACK, or PUBREC for QoS 2) are no longer owed.
    const unsent = rare.unsent!.filter((packetId) => this.inflight.get(packetId)?.state === 'publish');
    rare.unsent = unsent;
    while (unsent.length > 0 && this.windowUsed < outlet.sendWindow) {
      const packetId = unsent.shift()!;
      const entry = this.inflight.get(packetId);
      if (entry?.state !== 'publish') continue;
      if (!outlet.sendPublish(entry.delivery, undefined, packetId, true)) {
        this.inflight.delete(packetId);
        if (this.persistent) this.#env.store.completeInflight(this.clientId, packetId);
      }
    }
    if (unsent.length > 0) return false;
    rare.unsent = undefined;
    return true;
  }

  /**
   * Drops the messages `refused` picks (their subscription was revoked): queued ones, keeping the order of the rest,
   * held ones (their commit has not resolved: they would join the session, and go to whoever holds it, once it
   * has), and with `inflightToo` (a session about to be resumed, before its resend) unacknowledged PUBLISHes as well.
   */
  dropRefused(refused: (delivery: Delivery) => boolean, inflightToo: boolean): number {
    const fromQueue = this.queue.removeWhere(refused);
    for (const delivery of fromQueue) this.dropped(delivery);
    this.#env.stats.queuedCurrent -= fromQueue.length;
    let dropped = fromQueue.length;
    const held = this.held;
    let freed = false;
    if (held !== undefined) {
      const kept: HeldDelivery[] = [];
      for (const record of held) {
        if (!refused(record.delivery)) {
          kept.push(record);
          continue;
        }
        dropped++;
        // Its records were written with the publisher's batch: undone in the same log, which keeps the order.
        if (this.undoHeld(record)) freed = true;
      }
      this.held = kept.length === 0 ? undefined : kept;
    }
    if (inflightToo && this.inflight.size > 0) {
      const ids: number[] = [];
      for (const [packetId, entry] of this.inflight) {
        if (entry.state === 'publish' && refused(entry.delivery)) ids.push(packetId);
      }
      for (const packetId of ids) {
        this.inflight.delete(packetId);
        if (this.persistent) this.#env.store.completeInflight(this.clientId, packetId);
      }
      dropped += ids.length;
    }
    this.#env.stats.droppedNotAuthorized += dropped;
    // A slot of the window a held delivery had reserved is free: what waits in the queue may take it (as dropHeld).
    if (freed && this.outlet !== undefined) this.pump(Date.now());
    return dropped;
  }

  /** Drops everything queued (session end), keeping the stats right. The store forgets the session as a whole. */
  discard(): void {
    if (this.queue.length > 0) {
      this.#env.stats.queuedCurrent -= this.queue.length;
      this.queue.clear();
    }
    if (this.inflight.size > 0) this.inflight.clear();
    if (this.#rare !== undefined) this.#rare.unsent = undefined;
    this.held = undefined;
    this.reserved = undefined;
  }
}
