// Per-client session: subscriptions, the outbound in-flight window and queue, inbound QoS 2 state and packet ids.
// The state lives in one plain object (`SessionState`) behind `SessionStore`, so a durable store can replace the
// in-memory one without touching the handlers. The session never touches a socket: it hands deliveries to an
// `Outlet` (the connection) and knows only whether the outlet can take more.
import type { ProtocolVersion, QoS, RetainHandling } from '@otalink/mqtt';
import { type Delivery, isExpired } from './message.js';
import type { PublishTemplates } from './publish-encoding.js';
import type { BrokerStats } from './stats.js';

export interface SubscriptionEntry {
  /** As the client sent it, `$share/{group}/` included. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: RetainHandling;
  subscriptionId: number | undefined;
}

export interface InflightEntry {
  delivery: Delivery;
  /** 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
}

/** Everything a session must keep across connections; structured-clone serialisable (Maps, Sets, arrays). */
export interface SessionState {
  clientId: string;
  /** Seconds the session outlives its connection; 0 ends it with the connection. */
  expiryInterval: number;
  subscriptions: Map<string, SubscriptionEntry>;
  inflight: Map<number, InflightEntry>;
  queue: Delivery[];
  /** QoS 2 packet ids received and acknowledged with PUBREC, waiting for PUBREL. */
  inboundQos2: Set<number>;
  nextPacketId: number;
}

export function newSessionState(clientId: string, expiryInterval: number): SessionState {
  return {
    clientId,
    expiryInterval,
    subscriptions: new Map(),
    inflight: new Map(),
    queue: [],
    inboundQos2: new Set(),
    nextPacketId: 1,
  };
}

/** What changed in a persistent session, for a durable store to record. */
export type SessionChange = 'subscriptions' | 'inflight' | 'queue' | 'inbound-qos2' | 'expiry';

/**
 * The seam for persistence (issue 5). `set` registers a session that outlives its connection; `changed` (optional:
 * the memory store holds the live objects and needs no notice) is told after each mutation of one. QoS 0 traffic
 * and sessions with expiry 0 never reach a store.
 */
export interface SessionStore {
  get(clientId: string): SessionState | undefined;
  set(state: SessionState): void;
  delete(clientId: string): void;
  all(): Iterable<SessionState>;
  changed?(state: SessionState, change: SessionChange): void;
}

export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, SessionState>();
  get(clientId: string): SessionState | undefined {
    return this.#sessions.get(clientId);
  }
  set(state: SessionState): void {
    this.#sessions.set(state.clientId, state);
  }
  delete(clientId: string): void {
    this.#sessions.delete(clientId);
  }
  all(): Iterable<SessionState> {
    return this.#sessions.values();
  }
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
  queueDropPolicy: 'oldest' | 'newest';
}

export class Session {
  readonly state: SessionState;
  outlet: Outlet | undefined;
  /** When an offline session ends (ms since the epoch); 0 while connected. */
  expiresAt = 0;
  readonly #stats: BrokerStats;
  readonly #limits: QueueLimits;
  readonly #store: SessionStore | undefined;

  constructor(state: SessionState, stats: BrokerStats, limits: QueueLimits, store?: SessionStore) {
    this.state = state;
    this.#stats = stats;
    this.#limits = limits;
    this.#store = store;
  }

  get clientId(): string {
    return this.state.clientId;
  }

  /** Tells a durable store about a change; sessions that end with their connection are never stored. */
  #changed(change: SessionChange): void {
    if (this.state.expiryInterval > 0) this.#store?.changed?.(this.state, change);
  }

  /** Adds or replaces a subscription; returns whether it is new to the session. */
  subscribe(entry: SubscriptionEntry): boolean {
    const subscriptions = this.state.subscriptions;
    const isNew = !subscriptions.has(entry.filter);
    subscriptions.set(entry.filter, entry);
    this.#changed('subscriptions');
    return isNew;
  }

  unsubscribe(filter: string): boolean {
    const existed = this.state.subscriptions.delete(filter);
    if (existed) this.#changed('subscriptions');
    return existed;
  }

  /** Whether a QoS 2 packet id is received and not yet released (a resend must not be delivered again). */
  hasInboundQos2(packetId: number): boolean {
    return this.state.inboundQos2.has(packetId);
  }

  get inboundQos2Count(): number {
    return this.state.inboundQos2.size;
  }

  receivedQos2(packetId: number): void {
    this.state.inboundQos2.add(packetId);
    this.#changed('inbound-qos2');
  }

  /** PUBREL: returns whether the id was pending. */
  releaseQos2(packetId: number): boolean {
    const found = this.state.inboundQos2.delete(packetId);
    if (found) this.#changed('inbound-qos2');
    return found;
  }

  setExpiryInterval(seconds: number): void {
    this.state.expiryInterval = seconds;
    this.#changed('expiry');
  }

  /** Routes one delivery: straight out if the window allows, queued (QoS 1/2) or dropped (QoS 0) otherwise. */
  offer(delivery: Delivery, templates: PublishTemplates | undefined, now: number): void {
    const outlet = this.outlet;
    if (delivery.qos === 0) {
      if (outlet === undefined) return; // QoS 0 is not kept for offline sessions
      if (outlet.congested()) {
        this.#stats.droppedSlowSubscriber++;
        return;
      }
      outlet.sendPublish(delivery, templates, 0, false);
      return;
    }
    const state = this.state;
    if (outlet !== undefined && state.queue.length === 0 && state.inflight.size < outlet.sendWindow) {
      this.#send(outlet, delivery, templates);
      return;
    }
    this.#enqueue(delivery, now);
  }

  #enqueue(delivery: Delivery, now: number): void {
    const queue = this.state.queue;
    if (queue.length >= this.#limits.maxQueuedMessages) {
      // Expired messages go first: dropping them costs nobody anything.
      if (queue.length > 0 && isExpired(queue[0]!.message, now)) {
        queue.shift();
        this.#stats.droppedExpired++;
        this.#stats.queuedCurrent--;
      } else {
        this.#stats.droppedQueueFull++;
        if (this.#limits.queueDropPolicy === 'newest' || queue.length === 0) return;
        queue.shift();
        this.#stats.queuedCurrent--;
      }
    }
    queue.push(delivery);
    this.#stats.queuedCurrent++;
    this.#changed('queue');
  }

  #send(outlet: Outlet, delivery: Delivery, templates: PublishTemplates | undefined): void {
    const packetId = this.#nextPacketId();
    if (outlet.sendPublish(delivery, templates, packetId, false)) {
      this.state.inflight.set(packetId, { delivery, state: 'publish' });
      this.#changed('inflight');
    }
  }

  #nextPacketId(): number {
    const state = this.state;
    // The window is far below 65535, so a free id is always found within a few steps.
    for (;;) {
      const id = state.nextPacketId;
      state.nextPacketId = id === 0xffff ? 1 : id + 1;
      if (!state.inflight.has(id)) return id;
    }
  }

  /** Moves queued messages into the window while it has room. */
  pump(now: number): void {
    const outlet = this.outlet;
    if (outlet === undefined) return;
    const state = this.state;
    const queue = state.queue;
    while (queue.length > 0 && state.inflight.size < outlet.sendWindow) {
      const delivery = queue.shift()!;
      this.#stats.queuedCurrent--;
      this.#changed('queue');
      if (isExpired(delivery.message, now)) {
        this.#stats.droppedExpired++;
        continue;
      }
      this.#send(outlet, delivery, undefined);
    }
  }

  /** PUBACK, or PUBREC with a failure code: the exchange is over. Returns whether the id was in flight. */
  complete(packetId: number, now: number): boolean {
    if (!this.state.inflight.delete(packetId)) return false;
    this.#changed('inflight');
    this.pump(now);
    return true;
  }

  /** PUBREC with success: the message is delivered; PUBREL goes out and waits for PUBCOMP. */
  released(packetId: number): boolean {
    const entry = this.state.inflight.get(packetId);
    if (entry === undefined) return false;
    entry.state = 'pubrel';
    this.#changed('inflight');
    this.outlet?.sendPubrel(packetId);
    return true;
  }

  /** A (re)connected client: resend what was in flight (PUBLISH with DUP, or PUBREL), then drain the queue. */
  resume(outlet: Outlet, now: number): void {
    this.outlet = outlet;
    this.expiresAt = 0;
    for (const [packetId, entry] of this.state.inflight) {
      if (entry.state === 'pubrel') outlet.sendPubrel(packetId);
      else if (!outlet.sendPublish(entry.delivery, undefined, packetId, true)) this.state.inflight.delete(packetId);
    }
    this.pump(now);
  }

  /** Drops everything queued (session end), keeping the stats right. */
  discard(): void {
    this.#stats.queuedCurrent -= this.state.queue.length;
    this.state.queue.length = 0;
    this.state.inflight.clear();
  }
}
