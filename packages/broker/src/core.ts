// The broker's shared state and the operations handlers call: routing a message, opening and ending sessions,
// wills, and the per-tick write flush. Listeners and the public API live in broker.ts; packet handling in handlers/.
import { EventEmitter } from 'node:events';
import { isPacketId, type ProtocolVersion, type Will } from '@otalink/mqtt/codec';
import type { Logger } from 'pino';
import type { Connection } from './connection.js';
import { LinkedList } from './connection-list.js';
import { DeadlineTicker, type Timed } from './keepalive.js';
import { type Delivery, isExpired, type Message } from './message.js';
import type { Authenticate, Authorize, BrokerLimits, ClientIdentity, EnhancedAuthenticator } from './options.js';
import { PublishTemplates } from './publish-encoding.js';
import { Router } from './router.js';
import {
  type InflightEntry,
  inboundQos2Of,
  inflightOf,
  newSessionState,
  queueOf,
  Session,
  type SubscriptionEntry,
} from './session.js';
import type { BrokerStats } from './stats.js';
import { MemoryStore } from './store/memory.js';
import type { BrokerStore, StoreContents } from './store/types.js';
import { reservedForBroker } from './sys.js';

/** Retained messages the store keeps: $SYS values are made again by the running broker, not worth a disk write. */
const storesRetained = (topic: string): boolean => !topic.startsWith('$SYS/');

export interface ResolvedOptions {
  limits: BrokerLimits;
  allowAnonymous: boolean;
  clientIdFromUsername: boolean;
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

/**
 * Output one event-loop turn may queue before connections stop reading until it is flushed. Large enough to keep
 * writes batched (8 KiB per subscriber of a 1 000-way fan-out), small enough that an overloaded broker pushes back
 * on publishers through TCP instead of routing whole socket backlogs into memory in one turn.
 */
export const TURN_OUTPUT_BYTES = 8 * 1024 * 1024;

/**
 * Packets one event-loop turn may handle before connections stop reading until its output is flushed. Messages that
 * wait in sessions (a subscriber's window is full) are not output, so without this one turn could read every
 * publisher's whole socket backlog: 1 000 QoS 1 pairs offered ~1.6x what the broker delivers read ~200 000 messages
 * in one 1.7 s turn, with nothing written meanwhile (no delivery, no PINGRESP; the generator saw whole seconds with
 * nothing delivered) and every scavenge copying the backlog. With this bound the longest turn there was 0.5-0.9 s,
 * and point-to-point QoS 0 kept its peak (426 and 690 k/s against 411 and 432 k/s unbounded, alternated); 16 384
 * shortened turns further but cost that row up to 40 % in two of three runs.
 */
export const TURN_PACKETS = 65_536;
/**
 * A read that starts within this many ms of the previous read's end is taken for another read of the same event-loop
 * turn (libuv hands the ready sockets of one poll to JS a few µs apart); one later than that starts a new turn. This
 * spares a lone read the setImmediate that otherwise marks the turn's end: at low load every message is a turn of its
 * own, and the immediate cost an object, its processing and an extra epoll_wait per read. Taking one kind of read for
 * the other only changes how writes are grouped: output never waits without a turn end scheduled.
 */
const TURN_GAP_MS = 0.05;

/**
 * A connected subscriber whose queue (behind its full in-flight window) reaches this length holds back the
 * publishers feeding it: they stop being read until it drains to half, so a publisher faster than its subscriber
 * waits in TCP (kernel buffers, then the publisher itself) rather than filling the broker's memory and queues.
 */
export const PUSHBACK_QUEUE = 100;
/**
 * A subscriber whose socket has this much output not yet taken by the kernel (our pending bytes and the stream's
 * buffer) holds back a publisher whose message it was the only recipient of, until the output drains to
 * OUTPUT_LOW_WATER. Without it, 1 000 QoS 0 publishers feeding one subscriber fill a whole event-loop turn with
 * reading and routing while the subscriber's output, capped at CONGESTION_BYTES, is written once per turn: the longer
 * the turn, the more is dropped, and delivery collapses under overload. A message with several recipients never
 * waits for one of them (a broadcast is not stalled by its slowest vehicle): beyond CONGESTION_BYTES it is dropped
 * for that one instead. Half of CONGESTION_BYTES leaves room for one more message from each held publisher; lower
 * marks (256/128 KiB) held and released publishers every turn at 400 k msgs/s and cost ~10 % more CPU per message.
 */
export const OUTPUT_HIGH_WATER = 512 * 1024;
export const OUTPUT_LOW_WATER = 256 * 1024;
/**
 * A connection whose own socket output (what the kernel has not taken) exceeds this after a flush stops being read
 * until it drains to OUTPUT_RESUME_BYTES. Without it a client that never reads made the broker hold output for it
 * without bound: a publisher flooding QoS 1 held its PUBACKs (20 MB after 4 s), a QoS 1 subscriber acknowledging
 * packet ids blindly had a 256 KiB retained message resent per SUBSCRIBE (260 MB held from 0.8 MB read in 3 s).
 * Well above CONGESTION_BYTES, where QoS 0 to a subscriber is dropped, so a slow subscriber is rarely paused.
 */
export const OUTPUT_PAUSE_BYTES = 4 * CONGESTION_BYTES;
export const OUTPUT_RESUME_BYTES = CONGESTION_BYTES;
const OUTPUT_CHECK_MS = 10;
/**
 * A backlogged subscriber that acknowledges nothing (QoS 1/2), or whose output does not drain to OUTPUT_LOW_WATER
 * (QoS 0), for this long counts as stuck and holds nobody back.
 */
const STUCK_MS = 1000;
/** The longest one hold lasts: a publisher reads again after it whatever the subscriber does. */
const MAX_HOLD_MS = 200;
const HOLD_CHECK_MS = 5;

interface Hold {
  connection: Connection;
  session: Session;
  /** Waits for the subscriber's socket output (OUTPUT_LOW_WATER), not for its session queue (PUSHBACK_QUEUE). */
  onOutput: boolean;
  until: number;
}

/** An inbound QoS 2 message routed by planPublish, waiting for its commit. */
export interface HeldPublish {
  message: Message;
  deliveries: Array<[Session, Delivery]>;
}

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
    this.#core.store.deleteWill(this.identity.clientId);
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
  readonly store: BrokerStore;
  readonly sessions = new Map<string, Session>();
  readonly connections = new LinkedList<Connection>();
  readonly ticker: DeadlineTicker;
  readonly events = new EventEmitter<BrokerEvents>();
  readonly pendingWills = new Map<string, PendingWill>();
  readonly #expiries = new Map<Session, SessionExpiry>();
  /**
   * Connections with output queued this turn: the first #dirtyCount slots. Emptied by overwriting, never by
   * `length = 0`, which makes V8 free the array's backing store (and the next turn's first push allocate a new one:
   * ~150 B per turn, one turn per message at low load).
   */
  #dirty: Array<Connection | undefined> = [];
  #dirtyCount = 0;
  /** The other of two arrays that take turns as #dirty; undefined while a flush runs (it fills as #dirty then). */
  #dirtySpare: Array<Connection | undefined> | undefined = [];
  #flushScheduled = false;
  /** Socket reads handled since the last turn's flush (see afterRead). */
  #readsThisTurn = 0;
  /** Reads being handled (beforeRead to afterRead; one can nest in another in tests): their output waits for it. */
  #readDepth = 0;
  /** turnClock() when the last read ended with no turn end scheduled (see beforeRead). */
  #lastReadEnd = 0;
  /**
   * The clock (ms) beforeRead tells a new turn's read by. Unit tests that drive reads from one synchronous block put a
   * clock of their own here, so that what counts as one turn does not depend on how fast the machine runs them.
   */
  turnClock: () => number = () => performance.now();
  /** Bytes queued for sockets since the last flush (see TURN_OUTPUT_BYTES). */
  turnBytes = 0;
  /** Packets handled since the last flush (see TURN_PACKETS). */
  turnPackets = 0;
  /** Connections that stopped reading until the flush. */
  #yielded: Connection[] = [];
  /** Publishers held until a subscriber's queue drains (see PUSHBACK_QUEUE). */
  #held: Hold[] = [];
  #holdTimer: NodeJS.Timeout | undefined;
  /** Connections not read until their own output drains (Connection.outputWritten). */
  readonly #outputFull = new Set<Connection>();
  #outputTimer: NodeJS.Timeout | undefined;
  closing = false;
  /** Bumped by every updateAuth: a credential check that began before it is done again. */
  authGeneration = 0;

  constructor(options: ResolvedOptions, stats: BrokerStats, store: BrokerStore = new MemoryStore()) {
    this.options = options;
    this.limits = options.limits;
    this.stats = stats;
    this.logger = options.logger;
    this.store = store;
    // Half a second keeps short test timeouts honest; scanning even 100 k deadlines twice a second is cheap.
    this.ticker = new DeadlineTicker(Math.min(500, Math.max(50, Math.floor(this.limits.connectTimeoutMs / 2))));
    // An expired retained message goes from the store when a SUBSCRIBE finds it, not only at the next start-up.
    this.router.retained.onExpired = (message) => {
      this.stats.retainedCurrent = this.router.retained.size;
      if (storesRetained(message.topic)) this.store.clearRetained(message.topic);
    };
  }

  /**
   * Brings back what the store kept: retained messages, offline sessions (subscribed, with their queue, in-flight
   * window and inbound QoS 2 ids) and delayed wills. A session keeps the deadline it had when it went offline (one
   * that was connected at a crash counts from now); sessions and queued messages that expired meanwhile are dropped.
   */
  restore(contents: StoreContents, now: number): void {
    const store = this.store;
    const messages = contents.messages;
    for (const [topic, id] of [...contents.retained]) {
      const message = messages.get(id);
      if (message === undefined) continue;
      if (isExpired(message, now)) store.clearRetained(topic);
      else this.router.retain(message);
    }
    this.stats.retainedCurrent = this.router.retained.size;
    for (const stored of [...contents.sessions.values()]) {
      const clientId = stored.clientId;
      if (this.sessions.has(clientId)) continue;
      const deadline = stored.expiresAt !== 0 ? stored.expiresAt : now + stored.expiryInterval * 1000;
      if (stored.expiryInterval === 0 || deadline <= now) {
        store.deleteSession(clientId);
        continue;
      }
      const state = newSessionState(clientId, stored.expiryInterval, stored.owner);
      for (const entry of stored.subscriptions.values()) {
        state.subscriptions.add({ ...entry, subscriptionId: entry.subscriptionId ?? undefined });
      }
      // The store's queue entries are already in the broker's form and never changed by it: taken as they are.
      // forEach: no [key, value] array per entry; a Map's iteration tolerates the current entry's removal
      // (MemoryStore's dequeue).
      stored.deliveries.forEach((delivery, entryId) => {
        if (isExpired(delivery.message, now)) {
          store.dequeue(clientId, entryId);
          this.stats.droppedExpired++;
          return;
        }
        queueOf(state).push(delivery);
      });
      let lastPacketId = 0;
      for (const [packetId, inflight] of [...stored.inflight]) {
        let entry: InflightEntry | undefined;
        if (inflight.state === 'pubrel') entry = { state: 'pubrel', delivery: undefined };
        else if (inflight.delivery !== undefined) {
          const message = messages.get(inflight.delivery.messageId);
          if (message !== undefined) {
            const { qos, retain, subscriptionIds, sharedFilter } = inflight.delivery;
            const delivery: Delivery = { message, qos, retain, subscriptionIds: subscriptionIds ?? undefined };
            if (sharedFilter !== undefined && sharedFilter !== null) delivery.sharedFilter = sharedFilter;
            entry = { state: 'publish', delivery };
          }
        }
        // An id outside 1-65535 (a damaged store) could share a slot of the window with a valid one: forgotten, as a
        // message whose record is gone.
        if (entry === undefined || !isPacketId(packetId)) {
          store.completeInflight(clientId, packetId);
          continue;
        }
        inflightOf(state).set(packetId, entry);
        lastPacketId = Math.max(lastPacketId, packetId);
      }
      state.nextPacketId = lastPacketId >= 0xffff ? 1 : lastPacketId + 1;
      for (const packetId of stored.inboundQos2) inboundQos2Of(state).add(packetId);
      const session = new Session(state, this);
      this.sessions.set(clientId, session);
      this.stats.sessionsCurrent++;
      this.stats.sessionsOffline++;
      this.stats.queuedCurrent += state.queue.length;
      for (const entry of state.subscriptions.values()) {
        this.router.subscribe(session, entry);
        this.stats.subscriptionsCurrent++;
      }
      // A session that was connected at the crash gets its deadline written, so another crash does not renew it.
      if (stored.expiresAt === 0) store.putSession(clientId, stored.expiryInterval, deadline, stored.owner);
      this.#startExpiry(session, deadline);
    }
    for (const stored of [...contents.wills.values()]) {
      const session = this.sessions.get(stored.clientId);
      let deadline = stored.deadline;
      if (deadline === 0) {
        // Armed: the client was connected when the broker stopped, so its connection ended without DISCONNECT. The
        // will follows the usual rules from now: its delay (capped by the session's expiry), or at once.
        const delay = Math.min(stored.will.properties?.willDelayInterval ?? 0, session?.state.expiryInterval ?? 0);
        deadline = now + delay * 1000;
        if (session !== undefined && delay > 0) store.putWill({ ...stored, deadline });
      }
      const pending = new PendingWill(this, stored.will, stored.identity, deadline);
      if (session === undefined || deadline <= now) {
        pending.expire();
        continue;
      }
      this.pendingWills.set(stored.clientId, pending);
      this.ticker.add(pending);
    }
  }

  #startExpiry(session: Session, deadline: number): void {
    session.expiresAt = deadline;
    const expiry = new SessionExpiry(this, session, deadline);
    this.#expiries.set(session, expiry);
    this.ticker.add(expiry);
  }

  /**
   * The live connection (after CONNACK) of a client: its session's outlet. No map of its own, which would be an
   * entry per connection and three updates per connect.
   */
  client(clientId: string): Connection | undefined {
    return this.sessions.get(clientId)?.outlet as Connection | undefined;
  }

  /** Ids of the connected clients. */
  clientIds(): string[] {
    const ids: string[] = [];
    for (const session of this.sessions.values()) if (session.outlet !== undefined) ids.push(session.clientId);
    return ids;
  }

  refreshStoreStats(): void {
    const size = this.store.size();
    this.stats.storeBytes = size.bytes;
    this.stats.storeMessages = size.messages;
    this.stats.storeCorruptBytes = size.corruptBytes ?? 0;
    this.stats.storeWritable = this.store.writable ? 1 : 0;
  }

  /** Writes are collected per socket and flushed once per event-loop turn (and after a turn's first read). */
  scheduleFlush(connection: Connection): void {
    this.#dirty[this.#dirtyCount++] = connection;
    if (this.#readDepth === 0) this.#scheduleTurnEnd();
  }

  /** `connection` stopped reading because this turn queued enough output: it reads again after the flush. */
  resumeAfterFlush(connection: Connection): void {
    this.#yielded.push(connection);
    if (this.#readDepth === 0) this.#scheduleTurnEnd();
  }

  #scheduleTurnEnd(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushAll);
  }

  /**
   * A socket read starts. After a read that wrote its output at once and scheduled no turn end, this one begins a new
   * turn unless it follows within TURN_GAP_MS (another socket's read of the same poll).
   */
  beforeRead(): void {
    if (
      this.#readDepth++ === 0 &&
      this.#readsThisTurn > 0 &&
      !this.#flushScheduled &&
      this.turnClock() - this.#lastReadEnd > TURN_GAP_MS
    ) {
      this.#readsThisTurn = 0;
    }
  }

  /**
   * A socket read has been handled. The first read of an event-loop turn writes what it queued at once: at low load
   * every message is its own turn, and waiting for setImmediate before the write only adds latency (the delivery and
   * PUBACK of a lone QoS 1 publish). Later reads of a busy turn still queue behind it and go out with the turn's
   * flush, so under load each socket still gets one coalesced write per turn (plus at most this early one). Output
   * that must wait for the durable store's commit keeps to the turn's flush: one commit covers the whole turn.
   */
  afterRead(): void {
    if (--this.#readDepth > 0) return;
    const first = this.#readsThisTurn++ === 0;
    if (first && this.#outputQueued() && !this.#outputWaitsForStore()) this.#flushOutput();
    // What is still queued (a later read's, or output waiting for the store) goes out at the turn's end.
    if (this.#outputQueued()) this.#scheduleTurnEnd();
    else if (!this.#flushScheduled) this.#lastReadEnd = this.turnClock();
  }

  #outputQueued(): boolean {
    return this.#dirtyCount > 0 || this.#yielded.length > 0;
  }

  /** `connection` published into `session`'s backlog: it stops reading until that drains (or MAX_HOLD_MS). */
  holdUntilDrained(connection: Connection, session: Session, onOutput: boolean): void {
    connection.held = true;
    this.#held.push({ connection, session, onOutput, until: Date.now() + MAX_HOLD_MS });
    if (this.#holdTimer !== undefined) return;
    this.#holdTimer = setInterval(this.#releaseHeld, HOLD_CHECK_MS);
    this.#holdTimer.unref();
  }

  /** `connection` stopped reading because its own output is over OUTPUT_PAUSE_BYTES: checked until it drains. */
  resumeWhenWritten(connection: Connection): void {
    this.#outputFull.add(connection);
    if (this.#outputTimer !== undefined) return;
    this.#outputTimer = setInterval(this.#checkWritten, OUTPUT_CHECK_MS);
    this.#outputTimer.unref();
  }

  readonly #checkWritten = (): void => {
    for (const connection of this.#outputFull) {
      if (connection.outputWritten()) this.#outputFull.delete(connection);
    }
    if (this.#outputFull.size === 0 && this.#outputTimer !== undefined) {
      clearInterval(this.#outputTimer);
      this.#outputTimer = undefined;
    }
  };

  readonly #releaseHeld = (): void => {
    const held = this.#held;
    this.#held = [];
    const now = Date.now();
    for (const hold of held) {
      const session = hold.session;
      const outlet = session.outlet as Connection | undefined;
      const drained = hold.onOutput
        ? outlet === undefined || outlet.outputDrained()
        : outlet === undefined || session.state.queue.length <= PUSHBACK_QUEUE / 2;
      if (drained || now >= hold.until) {
        hold.connection.held = false;
        hold.connection.resumeReading();
      } else {
        this.#held.push(hold);
      }
    }
    if (this.#held.length === 0 && this.#holdTimer !== undefined) {
      clearInterval(this.#holdTimer);
      this.#holdTimer = undefined;
    }
  };

  /** Whether a message from `from` just queued in `session` should hold `from` back (see PUSHBACK_QUEUE). */
  #backlogged(from: Connection, session: Session, now: number): boolean {
    if (session.state.queue.length < PUSHBACK_QUEUE) return false;
    const outlet = session.outlet as Connection | undefined;
    // A held subscriber is not read, so its acknowledgements cannot drain its queue until its own hold ends: holding
    // `from` for it only chains the waits, and two clients publishing to each other (the OTA backend and a client
    // playing a fleet) would hold each other until MAX_HOLD_MS and STUCK_MS broke the tie, ~100 messages a second.
    if (outlet === undefined || outlet === from || outlet.held) return false;
    // Stuck: backlogged and silent for STUCK_MS. It holds nobody back; its queue drops by policy instead.
    if (outlet.backlogSince <= outlet.ackedAt) outlet.backlogSince = now;
    return now - outlet.backlogSince < STUCK_MS;
  }

  /** Whether `session`, the only recipient of a message from `from`, has enough output waiting to hold `from` back. */
  #outputBacklogged(from: Connection, session: Session, now: number): boolean {
    const outlet = session.outlet as Connection | undefined;
    if (outlet === undefined || outlet === from) return false;
    return outlet.outputBacklogged(now, STUCK_MS);
  }

  readonly #flushAll = (): void => {
    this.#flushScheduled = false;
    this.#readsThisTurn = 0;
    this.#flushOutput();
  };

  #flushOutput(): void {
    this.#flushDirty();
    this.turnBytes = 0;
    this.turnPackets = 0;
    if (this.#held.length > 0) this.#releaseHeld();
    if (this.#yielded.length === 0) return;
    const yielded = this.#yielded;
    this.#yielded = [];
    // Their next packets queue output for the next turn's flush.
    for (const connection of yielded) connection.resumeReading();
  }

  #flushDirty(): void {
    const count = this.#dirtyCount;
    if (count === 0) return;
    const dirty = this.#dirty;
    // A flush inside a flush (not expected, but cheap to survive) gets a new array: the spare is in use.
    this.#dirty = this.#dirtySpare ?? [];
    this.#dirtySpare = undefined;
    this.#dirtyCount = 0;
    try {
      this.#flushConnections(dirty, count);
    } finally {
      for (let i = 0; i < count; i++) dirty[i] = undefined;
      this.#dirtySpare = dirty;
    }
  }

  /**
   * The store has writes pending or syncing, so gated output must wait for their commit. A broken store is idle (its
   * writes fail at once) but writes nothing: output that needs the log must not pass it either.
   */
  #outputWaitsForStore(): boolean {
    const store = this.store;
    return store.durable && (!store.idle || store.broken);
  }

  #flushConnections(dirty: ReadonlyArray<Connection | undefined>, count: number): void {
    const store = this.store;
    if (this.#outputWaitsForStore()) {
      // Output waits for the log: a subscriber must not see a message (or a PUBREL) that a crash could take back,
      // or a publisher's resend after restart would be delivered a second time. Connections with nothing queued but
      // acknowledgements of what is already durable are written at once. A failed commit is reported by the acks
      // waiting on it; its records are written again once the disk has room (the store keeps them ahead of
      // everything later), and output that needs them (outputNeedsLog) waits for that (#stallForLog).
      const taken: Array<[Connection, Uint8Array, boolean]> = [];
      for (let i = 0; i < count; i++) {
        const connection = dirty[i]!;
        if (!connection.outputGated) {
          connection.flush();
          continue;
        }
        const needsLog = connection.outputNeedsLog;
        const bytes = connection.takePending();
        if (bytes !== undefined) taken.push([connection, bytes, needsLog]);
      }
      store.commit().then(
        () => {
          for (const [connection, bytes] of taken) connection.writeTaken(bytes);
        },
        () => this.#stallForLog(taken),
      );
      return;
    }
    for (let i = 0; i < count; i++) dirty[i]!.flush();
  }

  /** Connections whose output waits for records a failed write holds back (Connection.stall). */
  #stalled: Set<Connection> | undefined;
  /** The store broke (a failed fdatasync) and that was logged once; a restart is what helps. */
  #reportedBroken = false;

  /**
   * A commit that output waited for failed. Runs that need its records wait until the store has written them (it
   * retries them first, in order): a QoS 2 delivery or PUBREL that a crash could take back would be a second
   * delivery after the restart. The others leave now, unless their connection has an earlier run waiting.
   */
  #stallForLog(taken: Array<[Connection, Uint8Array, boolean]>): void {
    let stalledAny = false;
    for (const [connection, bytes, needsLog] of taken) {
      if (!needsLog) {
        connection.writeTaken(bytes);
        continue;
      }
      connection.stall(bytes);
      this.#stalled ??= new Set();
      this.#stalled.add(connection);
      stalledAny = true;
    }
    if (stalledAny) this.#awaitLog();
  }

  /** Counts #awaitLog calls: only the latest may release, since it waits for the most records. */
  #awaitGeneration = 0;

  /**
   * Waits until the store has written everything issued so far, however long the disk takes to have room, then lets
   * the stalled runs go. Each stall waits anew, for what was issued up to it; the store writes in issue order, so
   * once the latest wait resolves, every stalled run has its records.
   */
  #awaitLog(): void {
    const generation = ++this.#awaitGeneration;
    const release = () => {
      if (generation !== this.#awaitGeneration) return;
      const stalled = this.#stalled;
      this.#stalled = undefined;
      if (stalled !== undefined) for (const connection of stalled) connection.releaseStalled();
    };
    this.store.whenWritten().then(release, () => {
      const stalled = this.#stalled;
      this.#stalled = undefined;
      if (stalled === undefined) return;
      if (!this.#reportedBroken) {
        this.#reportedBroken = true;
        this.logger.error(
          { code: 'BROKER_ERR_STORE', connections: stalled.size },
          'store: cannot write before a restart; closing connections whose output needs what it could not write',
        );
      }
      for (const connection of stalled) connection.dropStalled();
    });
  }

  /**
   * Routes `message` to every matching session and stores it if retained. Returns the number of recipients. `wire`
   * is the received frame when it can be forwarded unchanged to subscribers of `wireVersion` (forwardableFrame).
   */
  publish(message: Message, wire?: Uint8Array, wireVersion?: ProtocolVersion, from?: Connection): number {
    const now = Date.now();
    if (message.retain) {
      this.router.retain(message);
      this.stats.retainedCurrent = this.router.retained.size;
      if (storesRetained(message.topic)) {
        if (message.payload.length > 0) this.store.setRetained(message);
        else this.store.clearRetained(message.topic);
      }
    }
    const templates = new PublishTemplates(message, now, wire, wireVersion);
    let recipient: Session | undefined;
    const recipients = this.router.route(message, (session, delivery) => {
      session.offer(delivery, templates, now);
      recipient = session;
      if (from !== undefined && from.holdFor === undefined && this.#backlogged(from, session, now)) {
        from.holdFor = session;
      }
    });
    if (
      recipients === 1 &&
      recipient !== undefined &&
      from !== undefined &&
      from.holdFor === undefined &&
      this.#outputBacklogged(from, recipient, now)
    ) {
      from.holdFor = recipient;
      from.holdOnOutput = true;
    }
    if (this.events.listenerCount('message') > 0) this.events.emit('message', message);
    return recipients;
  }

  /**
   * The first half of routing an inbound QoS 2 message under a durable store: picks the recipients now and writes
   * what their delivery needs (queue entries of persistent sessions, the retained message), but changes nothing a
   * client can see. `deliverHeld` completes it once the commit holding those writes resolved, `dropHeld` undoes it
   * if the commit failed, so that a message the publisher is told was not taken is delivered to nobody.
   */
  planPublish(message: Message): HeldPublish {
    if (message.retain && storesRetained(message.topic)) {
      if (message.payload.length > 0) this.store.setRetained(message);
      else this.store.clearRetained(message.topic);
    }
    const deliveries: Array<[Session, Delivery]> = [];
    this.router.route(message, (session, delivery) => {
      session.hold(delivery);
      deliveries.push([session, delivery]);
    });
    return { message, deliveries };
  }

  deliverHeld(held: HeldPublish): void {
    const message = held.message;
    const now = Date.now();
    if (message.retain) {
      this.router.retain(message);
      this.stats.retainedCurrent = this.router.retained.size;
    }
    const templates = new PublishTemplates(message, now);
    for (const [session, delivery] of held.deliveries) {
      if (this.sessions.get(session.clientId) === session) {
        session.offerHeld(delivery, templates, now);
        continue;
      }
      // The session ended meanwhile (its store records went with it): a shared message goes to another member.
      if (delivery.sharedFilter !== undefined) this.#reassignShared(session, delivery, now);
    }
    if (this.events.listenerCount('message') > 0) this.events.emit('message', message);
  }

  dropHeld(held: HeldPublish): void {
    const now = Date.now();
    for (const [session, delivery] of held.deliveries) session.dropHeld(delivery, now);
    const message = held.message;
    if (message.retain && storesRetained(message.topic)) {
      // The failed batch's `retain` record is written again (the store retries it, in order): the record after it
      // puts back what memory retains. As a copy with a record of its own: reading the log back forgets the message
      // the failed one replaced, so a record naming its id would name nothing.
      const current = this.router.retained.get(message.topic);
      if (current === undefined) this.store.clearRetained(message.topic);
      else {
        const { storeId: _id, storeRefs: _refs, ...fields } = current;
        const copy: Message = fields;
        this.router.retain(copy);
        this.store.setRetained(copy);
      }
    }
  }

  /** Whether `identity` may publish to `topic`: its ACL allows it, and the topic is not the broker's own. */
  mayPublish(identity: ClientIdentity, topic: string): boolean {
    const authorize = this.options.authorize;
    return (authorize === undefined || authorize(identity, 'publish', topic)) && !reservedForBroker(topic);
  }

  publishWill(will: Will, identity: ClientIdentity): void {
    if (!this.mayPublish(identity, will.topic)) {
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
   * The session for a client connecting as `owner` (user name or certificate identity, null: anonymous): a fresh one
   * when `clean` or none exists. A delayed will still pending for the client is dropped when the session continues
   * and published when it ends (MQTT 5.0 3.1.3.2.2). A session belongs to the identity that made it: another one
   * naming its client id starts afresh, as with a clean start, instead of taking it over (MQTT 5.0 section 5.4.2: a
   * client id alone proves nothing). Taking it over kept its subscriptions the new identity's ACL allowed, and the
   * rightful client, back under its own session, found them gone while told its session was present.
   */
  openSession(
    clientId: string,
    clean: boolean,
    expiryInterval: number,
    owner: string | null,
  ): { session: Session; present: boolean } {
    let session = this.sessions.get(clientId);
    const foreign = session !== undefined && session.owner !== undefined && session.owner !== owner;
    if (foreign) {
      this.logger.info(
        { code: 'BROKER_ERR_NOT_AUTHORIZED', clientId, username: owner ?? undefined },
        'the session of this client id belongs to another identity: starting a new one',
      );
    }
    const pending = this.pendingWills.get(clientId);
    if (pending !== undefined) {
      this.pendingWills.delete(clientId);
      this.ticker.delete(pending);
      this.store.deleteWill(clientId);
      if (clean || foreign) this.publishWill(pending.will, pending.identity);
    }
    if (session !== undefined && (clean || foreign)) {
      this.endSession(session);
      session = undefined;
    }
    const present = session !== undefined;
    if (session === undefined) {
      const state = newSessionState(clientId, expiryInterval, owner);
      session = new Session(state, this);
      this.sessions.set(clientId, session);
      if (expiryInterval > 0) this.store.putSession(clientId, expiryInterval, 0, owner);
      this.stats.sessionsCurrent++;
    } else {
      // Restored from a store written before owners were kept: the first identity to resume it owns it.
      session.owner = owner;
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

  /**
   * Sets `entry` in `session` (and so its store) and in the router, counted once per filter. Returns whether the
   * router had no subscription of the session for this filter (retain handling 1 sends retained messages then).
   */
  addSubscription(session: Session, entry: SubscriptionEntry): boolean {
    const isNew = this.router.subscribe(session, entry);
    if (session.subscribe(entry)) this.stats.subscriptionsCurrent++;
    return isNew;
  }

  /** Takes `filter` out of `session` (and so its store) and the router; returns whether the session had it. */
  removeSubscription(session: Session, filter: string): boolean {
    if (!session.unsubscribe(filter)) return false;
    this.router.unsubscribe(session, filter);
    this.stats.subscriptionsCurrent--;
    return true;
  }

  /** Removes a session and its subscriptions. */
  endSession(session: Session): void {
    if (this.sessions.get(session.clientId) !== session) return;
    this.sessions.delete(session.clientId);
    if (session.persistent) this.store.deleteSession(session.clientId);
    const state = session.state;
    // Each walk only when there is something to walk: an iterator (and for the queue a generator) per walk is a
    // share of every short-lived connection's cost, and most sessions end with nothing in flight or queued.
    const subscriptions = state.subscriptions;
    if (subscriptions.size > 0) {
      for (const filter of subscriptions.keys()) this.router.unsubscribe(session, filter);
      this.stats.subscriptionsCurrent -= subscriptions.size;
      subscriptions.clear();
    }
    // Unacknowledged shared-subscription messages go to another member of their group.
    let orphans: Delivery[] | undefined;
    if (state.inflight.size > 0) {
      for (const entry of state.inflight.values()) {
        if (entry.state === 'publish' && entry.delivery.sharedFilter !== undefined) {
          orphans ??= [];
          orphans.push(entry.delivery);
        }
      }
    }
    if (state.queue.length > 0) {
      for (const delivery of state.queue) {
        if (delivery.sharedFilter === undefined) {
          // Lost with the session (it expired, or a clean start ended it): counted, as any other drop.
          this.stats.droppedSessionEnded++;
          continue;
        }
        orphans ??= [];
        orphans.push(delivery);
      }
    }
    session.discard();
    if (orphans !== undefined) {
      const now = Date.now();
      for (const delivery of orphans) this.#reassignShared(session, delivery, now);
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
   * A shared message whose member's session ended goes to another member (MQTT 5.0 4.8.2), unless it expired: its
   * delivery to that member has not begun, so it is dropped ([MQTT-3.3.2-5]).
   */
  #reassignShared(from: Session, delivery: Delivery, now: number): void {
    if (isExpired(delivery.message, now)) {
      this.stats.droppedExpired++;
      return;
    }
    this.router.reassignShared(from, delivery, (member, moved) => member.offer(moved, undefined, now));
  }

  /**
   * Writes the will of a client that just connected as armed (deadline 0), so that a broker crash, which ends the
   * connection without DISCONNECT, still publishes it at the next start-up (MQTT-3.1.2-8). CONNACK leaves after the
   * write is durable (output waits for the log). `detach` settles the record when the connection ends.
   */
  armWill(connection: Connection): void {
    const will = connection.will;
    if (will === undefined) return;
    const identity = connection.identity;
    this.store.putWill({ clientId: identity.clientId, will, identity: { ...identity }, deadline: 0 });
    connection.willStored = true;
  }

  /**
   * A connected client's network connection is gone. `will` is what is left to publish (undefined after a normal
   * DISCONNECT). The will waits for its delay unless the session ends first.
   */
  detach(connection: Connection, session: Session, will: Will | undefined): void {
    session.outlet = undefined;
    const identity = connection.identity;
    const expiryInterval = session.state.expiryInterval;
    const now = Date.now();
    if (expiryInterval === 0) {
      this.stats.sessionsOffline++; // endSession counts it back down
      this.endSession(session);
      if (will !== undefined) this.publishWill(will, identity);
      this.#disarmWill(connection);
      return;
    }
    this.stats.sessionsOffline++;
    const deadline = now + expiryInterval * 1000;
    this.store.putSession(identity.clientId, expiryInterval, deadline, session.owner);
    this.#startExpiry(session, deadline);
    const delay = will === undefined ? 0 : Math.min(will.properties?.willDelayInterval ?? 0, expiryInterval);
    if (will === undefined || delay === 0) {
      if (will !== undefined) this.publishWill(will, identity);
      this.#disarmWill(connection);
      return;
    }
    connection.willStored = false;
    const pending = new PendingWill(this, will, identity, now + delay * 1000);
    this.store.putWill({ clientId: identity.clientId, will, identity: { ...identity }, deadline: pending.deadline });
    this.pendingWills.set(identity.clientId, pending);
    this.ticker.add(pending);
  }

  /**
   * The armed will record goes (published or not wanted) unless a delayed will overwrites it (detach). A method, not
   * a closure made by every detach: tsx names each closure it makes (Object.defineProperty), ~1 µs per disconnect.
   */
  #disarmWill(connection: Connection): void {
    if (!connection.willStored) return;
    connection.willStored = false;
    this.store.deleteWill(connection.identity.clientId);
  }

  /** Publishes every pending will now (shutdown ends the sessions they wait on). */
  flushPendingWills(): void {
    for (const pending of [...this.pendingWills.values()]) {
      this.ticker.delete(pending);
      pending.expire();
    }
  }
}
