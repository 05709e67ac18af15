// The broker's shared state and the operations handlers call: routing a message, opening and ending sessions,
// wills, and the per-tick write flush. Listeners and the public API live in broker.ts; packet handling in handlers/.
import { EventEmitter } from 'node:events';
import type { Will } from '@otalink/mqtt';
import type { Logger } from 'pino';
import type { Connection } from './connection.js';
import { DeadlineTicker, type Timed } from './keepalive.js';
import type { Delivery, Message } from './message.js';
import type { Authenticate, Authorize, BrokerLimits, ClientIdentity, EnhancedAuthenticator } from './options.js';
import { PublishTemplates } from './publish-encoding.js';
import { Router } from './router.js';
import { MemorySessionStore, newSessionState, Session, type SessionStore } from './session.js';
import type { BrokerStats } from './stats.js';

export interface ResolvedOptions {
  limits: BrokerLimits;
  allowAnonymous: boolean;
  authenticate: Authenticate | undefined;
  authorize: Authorize | undefined;
  enhancedAuth: Map<string, EnhancedAuthenticator>;
  logger: Logger;
}

/** Events for logs and the embedding application (the OTA backend). */
export interface BrokerEvents {
  clientConnected: [client: ClientIdentity & { sessionPresent: boolean }];
  clientDisconnected: [client: ClientIdentity & { reason: string }];
  /**
   * Every message accepted from a client (after ACL) or published through `Broker.publish`. A QoS 0, non-retained
   * payload is a view into the socket's read buffer: copy it to keep it beyond the listener call.
   */
  message: [message: Message];
}

/** Socket bytes beyond which a subscriber counts as stuck: QoS 0 is dropped, QoS 1/2 waits in its session. */
export const CONGESTION_BYTES = 1024 * 1024;

class PendingWill implements Timed {
  deadline: number;
  readonly will: Will;
  readonly identity: ClientIdentity;
  readonly #core: BrokerCore;
  constructor(core: BrokerCore, will: Will, identity: ClientIdentity, deadline: number) {
    this.#core = core;
    this.will = will;
    this.identity = identity;
    this.deadline = deadline;
  }
  expire(): void {
    this.#core.pendingWills.delete(this.identity.clientId);
    this.#core.publishWill(this.will, this.identity);
  }
}

class SessionExpiry implements Timed {
  deadline: number;
  readonly #core: BrokerCore;
  readonly #session: Session;
  constructor(core: BrokerCore, session: Session, deadline: number) {
    this.#core = core;
    this.#session = session;
    this.deadline = deadline;
  }
  expire(): void {
    if (this.#session.outlet === undefined) this.#core.endSession(this.#session);
  }
}

export class BrokerCore {
  readonly options: ResolvedOptions;
  readonly limits: BrokerLimits;
  readonly stats: BrokerStats;
  readonly logger: Logger;
  readonly router = new Router();
  readonly store: SessionStore;
  readonly sessions = new Map<string, Session>();
  /** Live connections by client id (after CONNACK). */
  readonly clients = new Map<string, Connection>();
  readonly connections = new Set<Connection>();
  readonly ticker: DeadlineTicker;
  readonly events = new EventEmitter<BrokerEvents>();
  readonly pendingWills = new Map<string, PendingWill>();
  readonly #expiries = new Map<Session, SessionExpiry>();
  #dirty: Connection[] = [];
  #flushScheduled = false;
  closing = false;

  constructor(options: ResolvedOptions, stats: BrokerStats, store: SessionStore = new MemorySessionStore()) {
    this.options = options;
    this.limits = options.limits;
    this.stats = stats;
    this.logger = options.logger;
    this.store = store;
    // Half a second keeps short test timeouts honest; scanning even 100 k deadlines twice a second is cheap.
    this.ticker = new DeadlineTicker(Math.min(500, Math.max(50, Math.floor(this.limits.connectTimeoutMs / 2))));
  }

  /** Brings back the sessions a durable store kept: offline, subscribed, their expiry counting from now. */
  restoreSessions(now: number): void {
    for (const state of [...this.store.all()]) {
      if (state.expiryInterval === 0 || this.sessions.has(state.clientId)) continue;
      const session = new Session(state, this.stats, this.limits, this.store);
      this.sessions.set(state.clientId, session);
      this.stats.sessionsCurrent++;
      this.stats.sessionsOffline++;
      this.stats.queuedCurrent += state.queue.length;
      for (const entry of state.subscriptions.values()) {
        this.router.subscribe(session, entry);
        this.stats.subscriptionsCurrent++;
      }
      const deadline = now + state.expiryInterval * 1000;
      session.expiresAt = deadline;
      const expiry = new SessionExpiry(this, session, deadline);
      this.#expiries.set(session, expiry);
      this.ticker.add(expiry);
    }
  }

  /** Writes are collected per socket and flushed once per event-loop turn. */
  scheduleFlush(connection: Connection): void {
    this.#dirty.push(connection);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushAll);
  }

  readonly #flushAll = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const connection of dirty) connection.flush();
  };

  /** Routes `message` to every matching session and stores it if retained. Returns the number of recipients. */
  publish(message: Message): number {
    const now = Date.now();
    if (message.retain) {
      this.router.retain(message);
      this.stats.retainedCurrent = this.router.retained.size;
    }
    const templates = new PublishTemplates(message, now);
    const recipients = this.router.route(message, (session, delivery) => session.offer(delivery, templates, now));
    if (this.events.listenerCount('message') > 0) this.events.emit('message', message);
    return recipients;
  }

  publishWill(will: Will, identity: ClientIdentity): void {
    if (this.options.authorize !== undefined && !this.options.authorize(identity, 'publish', will.topic)) {
      this.stats.droppedNotAuthorized++;
      return;
    }
    const { willDelayInterval: _delay, messageExpiryInterval, ...properties } = will.properties ?? {};
    const hasProperties = Object.keys(properties).length > 0;
    this.publish({
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: hasProperties ? properties : undefined,
      expiresAt: messageExpiryInterval === undefined ? 0 : Date.now() + messageExpiryInterval * 1000,
      origin: identity.clientId,
    });
  }

  /**
   * The session for a connecting client: a fresh one when `clean` or none exists. A delayed will still pending
   * for the client is dropped when the session continues and published when it ends (MQTT 5.0 3.1.3.2.2).
   */
  openSession(clientId: string, clean: boolean, expiryInterval: number): { session: Session; present: boolean } {
    const pending = this.pendingWills.get(clientId);
    if (pending !== undefined) {
      this.pendingWills.delete(clientId);
      this.ticker.delete(pending);
      if (clean) this.publishWill(pending.will, pending.identity);
    }
    let session = this.sessions.get(clientId);
    if (session !== undefined && clean) {
      this.endSession(session);
      session = undefined;
    }
    const present = session !== undefined;
    if (session === undefined) {
      const state = newSessionState(clientId, expiryInterval);
      session = new Session(state, this.stats, this.limits, this.store);
      this.sessions.set(clientId, session);
      if (expiryInterval > 0) this.store.set(state);
      this.stats.sessionsCurrent++;
    } else {
      this.stats.sessionsOffline--;
      session.setExpiryInterval(expiryInterval);
      const expiry = this.#expiries.get(session);
      if (expiry !== undefined) {
        this.ticker.delete(expiry);
        this.#expiries.delete(session);
      }
    }
    return { session, present };
  }

  /** Removes a session and its subscriptions. */
  endSession(session: Session): void {
    if (this.sessions.get(session.clientId) !== session) return;
    this.sessions.delete(session.clientId);
    this.store.delete(session.clientId);
    for (const filter of session.state.subscriptions.keys()) this.router.unsubscribe(session, filter);
    this.stats.subscriptionsCurrent -= session.state.subscriptions.size;
    session.state.subscriptions.clear();
    // Unacknowledged shared-subscription messages go to another member of their group.
    const orphans: Delivery[] = [];
    for (const entry of session.state.inflight.values()) {
      if (entry.state === 'publish' && entry.delivery.sharedFilter !== undefined) orphans.push(entry.delivery);
    }
    for (const delivery of session.state.queue) if (delivery.sharedFilter !== undefined) orphans.push(delivery);
    session.discard();
    if (orphans.length > 0) {
      const now = Date.now();
      for (const delivery of orphans) {
        this.router.reassignShared(session, delivery, (member, moved) => member.offer(moved, undefined, now));
      }
    }
    this.stats.sessionsCurrent--;
    if (session.outlet === undefined) this.stats.sessionsOffline--;
    const expiry = this.#expiries.get(session);
    if (expiry !== undefined) {
      this.ticker.delete(expiry);
      this.#expiries.delete(session);
    }
  }

  /**
   * A connected client's network connection is gone. `will` is what is left to publish (undefined after a normal
   * DISCONNECT). The will waits for its delay unless the session ends first.
   */
  detach(connection: Connection, session: Session, will: Will | undefined): void {
    session.outlet = undefined;
    const identity = connection.identity;
    if (this.clients.get(identity.clientId) === connection) this.clients.delete(identity.clientId);
    const expiryInterval = session.state.expiryInterval;
    const now = Date.now();
    if (expiryInterval === 0) {
      this.stats.sessionsOffline++; // endSession counts it back down
      this.endSession(session);
      if (will !== undefined) this.publishWill(will, identity);
      return;
    }
    this.stats.sessionsOffline++;
    const deadline = now + expiryInterval * 1000;
    session.expiresAt = deadline;
    const expiry = new SessionExpiry(this, session, deadline);
    this.#expiries.set(session, expiry);
    this.ticker.add(expiry);
    if (will === undefined) return;
    const delay = Math.min(will.properties?.willDelayInterval ?? 0, expiryInterval);
    if (delay === 0) {
      this.publishWill(will, identity);
      return;
    }
    const pending = new PendingWill(this, will, identity, now + delay * 1000);
    this.pendingWills.set(identity.clientId, pending);
    this.ticker.add(pending);
  }

  /** Publishes every pending will now (shutdown ends the sessions they wait on). */
  flushPendingWills(): void {
    for (const pending of [...this.pendingWills.values()]) {
      this.ticker.delete(pending);
      pending.expire();
    }
  }
}
