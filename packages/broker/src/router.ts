// Who gets a message: the subscription trie (exact-topic fast path), shared subscription groups served round-robin,
// and the retained message store.
import type { QoS } from '@otalink/mqtt/codec';
import { parseSharedSubscription, SubscriptionTrie } from '@otalink/mqtt/topic';
import type { Delivery, Message } from './message.js';
import { RetainedStore } from './retained.js';
import type { Session, SubscriptionEntry } from './session.js';

/** Members of one `$share/{group}/{filter}`; each message goes to one of them. */
export class SharedGroup {
  readonly members: Session[] = [];
  readonly entries = new Map<Session, SubscriptionEntry>();
  #cursor = 0;

  /** The next member round-robin, preferring connected ones so an offline member does not hoard messages. */
  pick(): Session | undefined {
    const n = this.members.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#cursor + i) % n;
      const member = this.members[index]!;
      if (member.outlet !== undefined) {
        this.#cursor = index + 1;
        return member;
      }
    }
    if (n === 0) return undefined;
    const member = this.members[this.#cursor % n]!;
    this.#cursor++;
    return member;
  }
}

type Key = Session | SharedGroup;

export class Router {
  readonly #trie = new SubscriptionTrie<Key, SubscriptionEntry | undefined>();
  readonly #groups = new Map<string, SharedGroup>();
  readonly retained = new RetainedStore();
  /** Reused by route(): a Map, an array and a closure per message showed at low rates (~450 B per publish). */
  #collector: RouteCollector | undefined = new RouteCollector();

  /** Adds or replaces a subscription; returns whether it is new (for retain handling 1). */
  subscribe(session: Session, entry: SubscriptionEntry): boolean {
    const shared = parseSharedSubscription(entry.filter);
    if (shared === undefined) return this.#trie.add(entry.filter, session, entry);
    let group = this.#groups.get(entry.filter);
    if (group === undefined) {
      group = new SharedGroup();
      this.#groups.set(entry.filter, group);
      this.#trie.add(shared.filter, group, undefined);
    }
    const isNew = !group.entries.has(session);
    if (isNew) group.members.push(session);
    group.entries.set(session, entry);
    return isNew;
  }

  unsubscribe(session: Session, filter: string): boolean {
    const shared = parseSharedSubscription(filter);
    if (shared === undefined) return this.#trie.remove(filter, session);
    const group = this.#groups.get(filter);
    if (group === undefined || !group.entries.delete(session)) return false;
    group.members.splice(group.members.indexOf(session), 1);
    if (group.members.length === 0) {
      this.#groups.delete(filter);
      this.#trie.remove(shared.filter, group);
    }
    return true;
  }

  /**
   * Calls `deliver` once per recipient session (a session matching through several filters gets one merged
   * delivery; a shared group adds one delivery for the member it picks). Returns the number of deliveries.
   */
  route(message: Message, deliver: (session: Session, delivery: Delivery) => void): number {
    // A delivery that routes again (none does today) finds the collector in use and takes a new one.
    const found = this.#collector ?? new RouteCollector();
    this.#collector = undefined;
    try {
      found.message = message;
      this.#trie.match(message.topic, found.visit);
      const total = found.finish();
      for (let i = 0; i < total; i++) deliver(found.sessions[i]!, found.deliveries[i]!);
      return total;
    } finally {
      found.clear();
      this.#collector = found;
    }
  }

  /**
   * A shared-subscription delivery whose session ended before it was acknowledged goes to another member of the
   * group (MQTT 5.0 4.8.2). Returns false when no other member is left.
   */
  reassignShared(from: Session, delivery: Delivery, deliver: (session: Session, delivery: Delivery) => void): boolean {
    const group = delivery.sharedFilter === undefined ? undefined : this.#groups.get(delivery.sharedFilter);
    if (group === undefined) return false;
    for (let i = 0; i < group.members.length; i++) {
      const member = group.pick();
      if (member === undefined) return false;
      if (member === from) continue;
      const entry = group.entries.get(member)!;
      const moved = deliveryFor(delivery.message, entry);
      moved.sharedFilter = entry.filter;
      deliver(member, moved);
      return true;
    }
    return false;
  }

  /** Stores or (empty payload) clears the retained message for its topic. */
  retain(message: Message): void {
    if (message.payload.length === 0) this.retained.delete(message.topic);
    else this.retained.set(message);
  }

  /** Retained messages matching `filter` (not $share), dropping expired ones as it goes. */
  retainedMatching(filter: string, now: number): Message[] {
    return this.retained.match(filter, now);
  }

  get subscriptionCount(): number {
    let n = this.#trie.size - this.#groups.size;
    for (const group of this.#groups.values()) n += group.members.length;
    return n;
  }
}

/**
 * The recipients one route() found: direct ones in slots [0, count), then (finish) the members shared groups picked,
 * kept apart until the match ends. Emptied by overwriting, not `length = 0`, so the arrays keep their backing stores.
 */
class RouteCollector {
  message: Message | undefined;
  readonly sessions: Array<Session | undefined> = [];
  readonly deliveries: Array<Delivery | undefined> = [];
  count = 0;
  total = 0;
  readonly #sharedSessions: Array<Session | undefined> = [];
  readonly #sharedDeliveries: Array<Delivery | undefined> = [];
  #sharedCount = 0;
  /** Slot of each direct recipient, built once there are more than SCAN_LIMIT (a fan-out), else a scan finds it. */
  #index: Map<Session, number> | undefined;

  readonly visit = (key: Key, entry: SubscriptionEntry | undefined): void => {
    const message = this.message!;
    if (key instanceof SharedGroup) {
      const member = key.pick();
      if (member === undefined) return;
      const memberEntry = key.entries.get(member)!;
      const delivery = deliveryFor(message, memberEntry);
      delivery.sharedFilter = memberEntry.filter;
      this.#sharedSessions[this.#sharedCount] = member;
      this.#sharedDeliveries[this.#sharedCount++] = delivery;
      return;
    }
    if (entry === undefined || (entry.noLocal && message.origin === key.clientId)) return;
    const slot = this.#slotOf(key);
    if (slot < 0) {
      const at = this.count++;
      this.sessions[at] = key;
      this.deliveries[at] = deliveryFor(message, entry);
      this.#index?.set(key, at);
      if (this.#index === undefined && this.count > SCAN_LIMIT) this.#buildIndex();
      return;
    }
    // Overlapping filters: the highest QoS, every subscription identifier, retained if any says so.
    const existing = this.deliveries[slot]!;
    existing.qos = Math.max(existing.qos, Math.min(message.qos, entry.qos)) as QoS;
    if (entry.retainAsPublished && message.retain) existing.retain = true;
    if (entry.subscriptionId !== undefined) {
      existing.subscriptionIds = [...(existing.subscriptionIds ?? []), entry.subscriptionId];
    }
  };

  #slotOf(session: Session): number {
    if (this.#index !== undefined) return this.#index.get(session) ?? -1;
    for (let i = 0; i < this.count; i++) if (this.sessions[i] === session) return i;
    return -1;
  }

  #buildIndex(): void {
    const index = new Map<Session, number>();
    for (let i = 0; i < this.count; i++) index.set(this.sessions[i]!, i);
    this.#index = index;
  }

  /** Ends the match: the shared picks go after the direct recipients, the order deliveries go out in. */
  finish(): number {
    let total = this.count;
    for (let i = 0; i < this.#sharedCount; i++) {
      this.sessions[total] = this.#sharedSessions[i];
      this.deliveries[total++] = this.#sharedDeliveries[i];
      this.#sharedSessions[i] = undefined;
      this.#sharedDeliveries[i] = undefined;
    }
    this.#sharedCount = 0;
    this.total = total;
    return total;
  }

  clear(): void {
    const end = Math.max(this.count + this.#sharedCount, this.total);
    for (let i = 0; i < end; i++) {
      this.sessions[i] = undefined;
      this.deliveries[i] = undefined;
    }
    for (let i = 0; i < this.#sharedCount; i++) {
      this.#sharedSessions[i] = undefined;
      this.#sharedDeliveries[i] = undefined;
    }
    this.count = 0;
    this.total = 0;
    this.#sharedCount = 0;
    this.#index = undefined;
    this.message = undefined;
  }
}

/** Up to this many direct recipients, a repeated one is found by scanning; beyond, through a Map. */
const SCAN_LIMIT = 8;

function deliveryFor(message: Message, entry: SubscriptionEntry): Delivery {
  return {
    message,
    qos: Math.min(message.qos, entry.qos) as QoS,
    retain: entry.retainAsPublished && message.retain,
    subscriptionIds: entry.subscriptionId === undefined ? undefined : [entry.subscriptionId],
  };
}
