// The reference model: what the MQTT 3.1.1 and 5.0 specifications say a broker must deliver, written plainly and
// apart from our broker's code (its own topic matcher, no trie, no queues) so that the two do not share a bug.
// The runner applies each operation here and on a real broker, then compares what every client received.
import type { ProtocolVersion, QoS } from '../../packages/mqtt/src/codec/packets.js';

export interface ModelSubscription {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  subscriptionId?: number;
}

export interface ModelMessage {
  /** Unique per publish; travels in the payload (and is `clear:<topic>` for an empty, retained-clearing one). */
  tag: string;
  topic: string;
  qos: QoS;
  retain: boolean;
  origin: string;
  /** A user property (5.0) the broker must pass through unchanged. */
  note?: string;
  /** Payload larger than a client's Maximum Packet Size, when it sets one. */
  big: boolean;
  /** Message Expiry Interval in seconds, counted by the model (a run on virtual time); else the note's, if any. */
  expiry?: number;
  /** A will's Will Delay Interval in seconds (5.0). */
  willDelay?: number;
}

/** One PUBLISH a client must receive. */
export interface Expected {
  tag: string;
  topic: string;
  qos: QoS;
  retain: boolean;
  subscriptionIds: number[];
  note?: string;
  /** A delivery sent again after a connection ended before it was acknowledged. */
  dup?: boolean;
  /** Either: it was in flight or queued when the broker went down, which the client cannot tell apart. */
  anyDup?: boolean;
  /** Allowed but not required (where the specifications leave the broker a choice). */
  optional?: boolean;
  /** Retained messages sent for one SUBSCRIBE come in an order the specifications leave open. */
  batch?: number;
  /** When the message expires, in the model's seconds. */
  expiresAt?: number;
  /** The Message Expiry Interval its copy must show: the seconds left when it was sent ([MQTT-3.3.2-6]). */
  shown?: number;
}

/** A message to a shared group: exactly one member gets it (or at most one, see `required`). */
export interface SharedObligation {
  tag: string;
  /** The message's own QoS (a member gets the lower of it and its subscription's). */
  qos: QoS;
  group: string;
  /** Member client id → the QoS and subscription ids it would get the message with. */
  members: Map<string, { qos: QoS; subscriptionIds: number[]; retain: boolean }>;
  /** Some member was online when it was published, so it must arrive within the step. */
  required: boolean;
  received: number;
  /** The member that received it and has not acknowledged it: should its session end, another may get it. */
  heldBy?: string;
  expiresAt?: number;
}

export interface ConnectionLimits {
  receiveMaximum: number;
  topicAliasMaximum: number;
  maximumPacketSize?: number;
}

interface ModelSession {
  version: ProtocolVersion;
  online: boolean;
  /** The session outlives its connection (3.1.1 clean session 0, 5.0 session expiry > 0). */
  persistent: boolean;
  subscriptions: Map<string, ModelSubscription>;
  /** QoS 1 and 2 messages held while offline, in order. */
  queue: Expected[];
  limits: ConnectionLimits;
  /** Session Expiry Interval in seconds (Infinity: a 3.1.1 session that never ends). */
  expiry: number;
  /** When an offline persistent session ends. */
  endsAt?: number;
}

export interface Profile {
  name: string;
  /** A shared group picks a connected member when it has one. */
  sharedPrefersOnline: boolean;
  /** A will goes out when its connection is taken over (3.1.1 leaves this open; 5.0 requires it). */
  willOnTakeover311: boolean;
  /**
   * Try takeovers that resume the session (Clean Start 0). The will of the connection taken over must still go out
   * (will delay 0), and a session that ended with it must not lend its subscriptions to the new one.
   */
  takeoverMayResume: boolean;
  /** The broker keeps to the client's Receive Maximum ([MQTT-3.3.4-9]); the peers check it where it does. */
  honoursReceiveMaximum: boolean;
  /** Clients set a small Maximum Packet Size, so some messages are too large for them and must be skipped. */
  maximumPacketSizes: boolean;
  /** Try a SUBSCRIBE that repeats a filter with other options (it replaces the subscription, [MQTT-3.8.4-3]). */
  resubscribeMayChangeOptions: boolean;
  /** Retained messages go to a new shared subscription (the specification says they must not). */
  retainedForSharedSubscriptions: boolean;
  /** The malformed inputs to try (each must close the connection and publish its will). */
  malformedVariants: number[];
  /**
   * A client whose subscriptions overlap gets one merged copy (highest QoS, every subscription identifier) or one
   * copy per matching subscription; 5.0 allows either (section 3.3.4), 3.1.1 asks for the highest QoS.
   */
  overlapping: 'merged' | 'per-subscription' | 'avoid';
  /** 'avoid': the generator makes no overlapping subscriptions (for a broker whose choice is not consistent). */
  /** A 5.0 connection taken over gets DISCONNECT 0x8E before it is closed ([MQTT-3.1.4-3], section 4.13). */
  disconnectOnTakeover: boolean;
  /** Try DISCONNECT with an error reason (0x80): the will is published, as after any reason but 0x00. */
  willOnErrorDisconnect: boolean;
}

/** The topic levels: plain filters match by level, `+` one level, `#` the rest (and the parent), `$` not by wildcards. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function parseShared(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}

/** How long a will waits after its connection ends: its delay, but no longer than the session lives. */
const willDelayOf = (session: ModelSession, will: ModelMessage): number =>
  session.persistent ? Math.min(will.willDelay ?? 0, session.expiry) : 0;

export class ReferenceModel {
  readonly sessions = new Map<string, ModelSession>();
  readonly retained = new Map<string, ModelMessage>();
  /**
   * What each connected client must receive in the current step, in order. A message larger than the client's
   * Maximum Packet Size is in the list too: whether it may be sent depends on the connection it would be sent on,
   * which the runner knows ([MQTT-3.1.2-25]).
   */
  readonly expected = new Map<string, Expected[]>();
  readonly shared: SharedObligation[] = [];
  #batch = 0;
  /** The model's clock in seconds: a run on virtual time moves it with `tick`, others leave it at 0. */
  now = 0;
  /** Wills waiting for their delay: published at `at`, or when the session ends first, never if it is resumed. */
  readonly pendingWills = new Map<string, { will: ModelMessage; at: number }>();
  /** The tags of the wills published so far. */
  readonly willsOut = new Set<string>();
  /** When each expiring retained message expires. */
  readonly #retainedUntil = new Map<string, number>();

  constructor(readonly profile: Profile) {}

  isOnline(id: string): boolean {
    return this.sessions.get(id)?.online === true;
  }

  hasSession(id: string): boolean {
    return this.sessions.has(id);
  }

  subscriptionsOf(id: string): ModelSubscription[] {
    return [...(this.sessions.get(id)?.subscriptions.values() ?? [])];
  }

  isPersistent(id: string): boolean {
    return this.sessions.get(id)?.persistent === true;
  }

  limitsOf(id: string): ConnectionLimits | undefined {
    return this.sessions.get(id)?.limits;
  }

  #expect(id: string, e: Expected): void {
    let list = this.expected.get(id);
    if (list === undefined) {
      list = [];
      this.expected.set(id, list);
    }
    list.push(e);
  }

  /** The retained message of its topic is `message`, published now (of several, the one the broker kept). */
  keepRetained(message: ModelMessage): number | undefined {
    const expiresAt = message.expiry === undefined ? undefined : this.now + message.expiry;
    this.retained.set(message.topic, message);
    if (expiresAt === undefined) this.#retainedUntil.delete(message.topic);
    else this.#retainedUntil.set(message.topic, expiresAt);
    return expiresAt;
  }

  /** Not expired (yet). */
  live(e: { expiresAt?: number }): boolean {
    return e.expiresAt === undefined || e.expiresAt > this.now;
  }

  /** The copy as sent now: an expiring message shows the seconds it has left (at least 1 while it is sent). */
  sent(e: Expected): Expected {
    return e.expiresAt === undefined ? e : { ...e, shown: Math.max(1, e.expiresAt - this.now) };
  }

  /** Takes (and clears) the step's expectations for one client. */
  takeExpected(id: string): Expected[] {
    const list = this.expected.get(id) ?? [];
    this.expected.delete(id);
    return list;
  }

  /**
   * CONNECT of a client that is offline. Returns the session present flag the CONNACK must carry. `expiry`: the
   * Session Expiry Interval (a persistent 3.1.1 session never ends).
   */
  connect(
    id: string,
    version: ProtocolVersion,
    cleanStart: boolean,
    persistent: boolean,
    limits: ConnectionLimits,
    expiry = persistent ? Number.POSITIVE_INFINITY : 0,
  ): boolean {
    const existing = this.sessions.get(id);
    const present = !cleanStart && existing !== undefined;
    if (existing !== undefined && !present) this.#ended(id);
    // A new connection to the session before the will's delay is over: the will is never sent ([MQTT-3.1.3-9]).
    if (present) this.pendingWills.delete(id);
    const session: ModelSession =
      present && existing !== undefined
        ? existing
        : { version, online: true, persistent, subscriptions: new Map(), queue: [], limits, expiry };
    session.online = true;
    session.persistent = persistent;
    session.limits = limits;
    session.version = version;
    session.expiry = expiry;
    session.endsAt = undefined;
    this.sessions.set(id, session);
    if (present) {
      // What expired while it waited is dropped, never sent ([MQTT-3.3.2-5]).
      for (const e of session.queue.splice(0)) if (this.live(e)) this.#expect(id, this.sent(e));
    }
    return present;
  }

  /**
   * The connection went away; `will` is the message the broker must publish for it, if any: at once, or after its
   * delay unless the session ends first ([MQTT-3.1.3-9]).
   */
  disconnect(id: string, will: ModelMessage | undefined): void {
    const session = this.sessions.get(id);
    if (session === undefined) return;
    session.online = false;
    if (!session.persistent) this.#ended(id);
    else session.endsAt = this.now + session.expiry;
    if (will === undefined) return;
    const delay = willDelayOf(session, will);
    if (delay > 0) this.pendingWills.set(id, { will, at: this.now + delay });
    else this.#publishWill(will);
  }

  /** DISCONNECT with a Session Expiry Interval: the session ends with the connection (0) or lives that long. */
  setSessionExpiry(id: string, expiry: number): void {
    const session = this.sessions.get(id)!;
    session.expiry = expiry;
    session.persistent = expiry > 0;
  }

  #publishWill(will: ModelMessage): void {
    this.willsOut.add(will.tag);
    this.publish(will, { ownCopyOptional: true });
  }

  /**
   * A second of virtual time passes: delayed wills whose time has come go out, then sessions whose expiry is over
   * end (and a will still waiting goes with them). What one second brings may come in any order (the broker's
   * timer handles its deadlines in an order of its own).
   */
  tick(): void {
    this.now++;
    const queued = this.queueLengths();
    const due = new Map([...this.expected].map(([id, list]) => [id, list.length]));
    for (const [id, pending] of [...this.pendingWills]) {
      if (pending.at > this.now) continue;
      this.pendingWills.delete(id);
      this.#publishWill(pending.will);
    }
    for (const [id, session] of [...this.sessions]) {
      if (!session.online && session.endsAt !== undefined && session.endsAt <= this.now) this.#ended(id);
    }
    for (const [topic, until] of [...this.#retainedUntil]) {
      if (until > this.now) continue;
      this.retained.delete(topic);
      this.#retainedUntil.delete(topic);
    }
    this.looseQueuedSince(queued);
    const batch = ++this.#batch;
    for (const [id, list] of this.expected) for (const e of list.slice(due.get(id) ?? 0)) e.batch = batch;
  }

  /**
   * The broker shut down: every connected client's will goes out while all are still connected (the broker closes
   * them in an order of its own), then every connection ends. A will with a delay waits for it, in a session that
   * outlives the restart. A shared message of the shutdown need not arrive.
   * Returns the topics that got more than one retained will: which one the broker kept depends on its order.
   */
  shutdown(wills: Map<string, ModelMessage>): Map<string, ModelMessage[]> {
    const retainedWills = new Map<string, ModelMessage[]>();
    const online = [...this.sessions].filter(([, session]) => session.online).map(([id]) => id);
    const sharedBefore = this.shared.length;
    const queued = this.queueLengths();
    for (const id of online) {
      const will = wills.get(id);
      if (will === undefined) continue;
      const session = this.sessions.get(id)!;
      const delay = willDelayOf(session, will);
      if (delay > 0) {
        this.pendingWills.set(id, { will, at: this.now + delay });
        continue;
      }
      this.#publishWill(will);
      if (will.retain) retainedWills.set(will.topic, [...(retainedWills.get(will.topic) ?? []), will]);
    }
    // An offline session queues the wills in the order the broker closed their connections.
    this.looseQueuedSince(queued);
    for (const o of this.shared.slice(sharedBefore)) o.required = false;
    for (const id of online) {
      const session = this.sessions.get(id)!;
      session.online = false;
      if (!session.persistent) this.#ended(id);
      else session.endsAt = this.now + session.expiry;
    }
    return new Map([...retainedWills].filter(([, candidates]) => candidates.length > 1));
  }

  /** How long each offline session's queue is, for looseQueuedSince. */
  queueLengths(): Map<string, number> {
    return new Map([...this.sessions].map(([id, session]) => [id, session.queue.length]));
  }

  /** What offline sessions queued since `lengths` may come in any order (the broker's order of events was its own). */
  looseQueuedSince(lengths: Map<string, number>): void {
    for (const [id, session] of this.sessions) {
      const batch = ++this.#batch;
      for (const e of session.queue.slice(lengths.get(id) ?? 0)) e.batch = batch;
    }
  }

  /** A connection with the same client id replaced a live one: the old one's will, then the new session. */
  takeover(id: string, oldWill: ModelMessage | undefined): void {
    this.disconnect(id, oldWill);
  }

  /**
   * A session ends. A shared message it held and had not had acknowledged may go to another member of the group
   * (MQTT 5.0 section 4.8.2 says it should): each such obligation is open to the group's members from now on.
   */
  #ended(id: string): void {
    this.sessions.delete(id);
    const pending = this.pendingWills.get(id);
    if (pending !== undefined) {
      this.pendingWills.delete(id);
      this.#publishWill(pending.will);
    }
    for (const o of this.shared) {
      if (o.heldBy === id) {
        o.heldBy = undefined;
        o.received = 0;
        o.required = false;
      }
      if (o.received > 0 || !o.members.has(id)) continue;
      this.openToGroup(o);
    }
  }

  /** A shared message whose member's session ended unacknowledged may go to any member the group has now. */
  openToGroup(o: SharedObligation): void {
    for (const [other, session] of this.sessions) {
      const sub = session.subscriptions.get(o.group);
      if (sub === undefined || o.members.has(other)) continue;
      o.members.set(other, {
        qos: Math.min(o.qos, sub.qos) as QoS,
        subscriptionIds: sub.subscriptionId === undefined ? [] : [sub.subscriptionId],
        retain: false,
      });
    }
  }

  /** SUBSCRIBE with one filter; returns nothing (the broker grants the requested QoS). */
  subscribe(id: string, sub: ModelSubscription, retainHandling: 0 | 1 | 2): void {
    const session = this.sessions.get(id)!;
    const isNew = !session.subscriptions.has(sub.filter);
    session.subscriptions.set(sub.filter, sub);
    const shared = parseShared(sub.filter);
    // No retained messages for a shared subscription (MQTT 5.0 section 4.8.2).
    if (shared !== undefined && !this.profile.retainedForSharedSubscriptions) return;
    if (retainHandling === 2 || (retainHandling === 1 && !isNew)) return;
    const batch = ++this.#batch;
    for (const message of this.retained.values()) {
      if (!topicMatches(shared?.filter ?? sub.filter, message.topic)) continue;
      const expiresAt = this.#retainedUntil.get(message.topic);
      if (expiresAt !== undefined && expiresAt <= this.now) continue;
      const e: Expected = {
        expiresAt,
        tag: message.tag,
        topic: message.topic,
        qos: Math.min(message.qos, sub.qos) as QoS,
        retain: true,
        subscriptionIds: sub.subscriptionId === undefined ? [] : [sub.subscriptionId],
        note: message.note,
        batch,
        // No Local is about forwarding; whether it also holds back one's own retained message is left open.
        optional: sub.noLocal && message.origin === id ? true : undefined,
      };
      this.#expect(id, this.sent(e));
    }
  }

  /** UNSUBSCRIBE with one filter; returns whether the subscription existed (5.0 reason 0x00 or 0x11). */
  unsubscribe(id: string, filter: string): boolean {
    return this.sessions.get(id)!.subscriptions.delete(filter);
  }

  /** An application message accepted by the broker, from a client or as a will. */
  /**
   * `duplicate`: a second copy the broker may or may not have seen (a QoS 1 PUBLISH sent again is a new message to
   * it, [MQTT-4.3.2-5]); every delivery it makes is allowed, none required.
   */
  publish(message: ModelMessage, options: { ownCopyOptional?: boolean; duplicate?: boolean } = {}): void {
    const expiresAt = message.expiry === undefined ? undefined : this.now + message.expiry;
    if (message.retain) {
      this.#retainedUntil.delete(message.topic);
      if (message.tag.startsWith('clear:')) this.retained.delete(message.topic);
      else this.retained.set(message.topic, message);
      if (expiresAt !== undefined && !message.tag.startsWith('clear:'))
        this.#retainedUntil.set(message.topic, expiresAt);
    }
    const groups = new Map<string, SharedObligation>();
    for (const [id, session] of this.sessions) {
      const copies: Expected[] = [];
      for (const sub of session.subscriptions.values()) {
        const shared = parseShared(sub.filter);
        if (shared !== undefined) {
          if (!topicMatches(shared.filter, message.topic)) continue;
          let group = groups.get(sub.filter);
          if (group === undefined) {
            group = {
              tag: message.tag,
              qos: message.qos,
              group: sub.filter,
              members: new Map(),
              required: false,
              received: 0,
              expiresAt,
            };
            groups.set(sub.filter, group);
          }
          group.members.set(id, {
            qos: Math.min(message.qos, sub.qos) as QoS,
            subscriptionIds: sub.subscriptionId === undefined ? [] : [sub.subscriptionId],
            retain: session.version === 5 && sub.retainAsPublished && message.retain,
          });
          // A big message may be one the picked member's Maximum Packet Size refuses.
          if (session.online && !message.big) group.required = this.profile.sharedPrefersOnline;
          continue;
        }
        if (!topicMatches(sub.filter, message.topic)) continue;
        if (sub.noLocal && message.origin === id) continue;
        copies.push({
          tag: message.tag,
          topic: message.topic,
          qos: Math.min(message.qos, sub.qos) as QoS,
          retain: session.version === 5 && sub.retainAsPublished && message.retain,
          subscriptionIds: sub.subscriptionId === undefined ? [] : [sub.subscriptionId],
          note: message.note,
          optional: options.duplicate || (options.ownCopyOptional && message.origin === id) ? true : undefined,
          expiresAt,
        });
      }
      if (copies.length === 0) continue;
      if (this.profile.overlapping === 'per-subscription') {
        const batch = copies.length > 1 ? ++this.#batch : undefined;
        for (const e of copies) this.#deliver(id, session, { ...e, batch });
        continue;
      }
      // Overlapping filters: one copy at the highest QoS, with every subscription identifier, retained if any says so.
      const merged = copies[0]!;
      for (const e of copies.slice(1)) {
        merged.qos = Math.max(merged.qos, e.qos) as QoS;
        merged.retain ||= e.retain;
        merged.subscriptionIds.push(...e.subscriptionIds);
      }
      merged.subscriptionIds.sort((a, b) => a - b);
      this.#deliver(id, session, merged);
    }
    for (const group of groups.values()) {
      // An obligation for the sender's own session, when it is the only member, is the will case again.
      if (options.ownCopyOptional && group.members.size === 1 && group.members.has(message.origin)) {
        group.required = false;
      }
      if (options.duplicate) group.required = false;
      this.shared.push(group);
    }
  }

  #deliver(id: string, session: ModelSession, e: Expected): void {
    if (session.online) {
      this.#expect(id, this.sent(e));
    } else if (e.qos > 0) {
      session.queue.push(e);
    }
  }
}
