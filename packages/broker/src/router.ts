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
    const direct = new Map<Session, Delivery>();
    const shared: Array<[Session, Delivery]> = [];
    const origin = message.origin;
    this.#trie.match(message.topic, (key, entry) => {
      if (key instanceof SharedGroup) {
        const member = key.pick();
        if (member === undefined) return;
        const memberEntry = key.entries.get(member)!;
        const delivery = deliveryFor(message, memberEntry);
        delivery.sharedFilter = memberEntry.filter;
        shared.push([member, delivery]);
        return;
      }
      if (entry === undefined || (entry.noLocal && origin === key.clientId)) return;
      const existing = direct.get(key);
      if (existing === undefined) {
        direct.set(key, deliveryFor(message, entry));
        return;
      }
      // Overlapping filters: the highest QoS, every subscription identifier, retained if any says so.
      existing.qos = Math.max(existing.qos, Math.min(message.qos, entry.qos)) as QoS;
      if (entry.retainAsPublished && message.retain) existing.retain = true;
      if (entry.subscriptionId !== undefined) {
        existing.subscriptionIds = [...(existing.subscriptionIds ?? []), entry.subscriptionId];
      }
    });
    for (const [session, delivery] of direct) deliver(session, delivery);
    for (const [session, delivery] of shared) deliver(session, delivery);
    return direct.size + shared.length;
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

function deliveryFor(message: Message, entry: SubscriptionEntry): Delivery {
  return {
    message,
    qos: Math.min(message.qos, entry.qos) as QoS,
    retain: entry.retainAsPublished && message.retain,
    subscriptionIds: entry.subscriptionId === undefined ? undefined : [entry.subscriptionId],
  };
}
