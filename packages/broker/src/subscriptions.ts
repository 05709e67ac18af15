// A session's subscriptions by topic filter, read like a Map. Most sessions hold one (a vehicle's own command topic):
// that one is kept as it is, and a Map is made only for a second one at the same time, since a Map and its table
// (~180 bytes) would be a sixth of an idle connection's heap. One field holds either: the session's own
// (SubscriptionHolder), which a Subscriptions reads and writes, so an idle session holds no object for it.
import type { SubscriptionEntry } from './session.js';

const NONE: readonly never[] = [];

/** Nothing, the only subscription, or a Map once there have been two at the same time. */
export type SubscriptionSet = SubscriptionEntry | Map<string, SubscriptionEntry> | undefined;

/** What keeps the subscriptions: a session, in a field of its own. */
export interface SubscriptionHolder {
  subscribed: SubscriptionSet;
}

/**
 * The subscriptions of `holder` (by default a holder of its own), read like a Map. A session makes one whenever its
 * subscriptions are asked for: a short-lived object on the paths that subscribe, unsubscribe and end sessions, where
 * a long-lived one would be 32 B of every idle session.
 */
export class Subscriptions implements Iterable<[string, SubscriptionEntry]> {
  readonly #holder: SubscriptionHolder;

  constructor(holder: SubscriptionHolder = { subscribed: undefined }) {
    this.#holder = holder;
  }

  get #entries(): SubscriptionSet {
    return this.#holder.subscribed;
  }
  set #entries(entries: SubscriptionSet) {
    this.#holder.subscribed = entries;
  }

  /** What this reads and writes, for a session taking over a state's subscriptions. */
  get held(): SubscriptionSet {
    return this.#holder.subscribed;
  }

  get size(): number {
    const entries = this.#entries;
    if (entries instanceof Map) return entries.size;
    return entries === undefined ? 0 : 1;
  }

  get(filter: string): SubscriptionEntry | undefined {
    const entries = this.#entries;
    if (entries instanceof Map) return entries.get(filter);
    return entries !== undefined && entries.filter === filter ? entries : undefined;
  }

  has(filter: string): boolean {
    return this.get(filter) !== undefined;
  }

  /** Adds the subscription to `entry.filter`, or replaces the one there (it keeps its place in the order). */
  add(entry: SubscriptionEntry): void {
    const entries = this.#entries;
    if (entries instanceof Map) {
      entries.set(entry.filter, entry);
    } else if (entries === undefined || entries.filter === entry.filter) {
      this.#entries = entry;
    } else {
      this.#entries = new Map([
        [entries.filter, entries],
        [entry.filter, entry],
      ]);
    }
  }

  /** Removes the subscription to `filter`; returns whether there was one. */
  delete(filter: string): boolean {
    const entries = this.#entries;
    if (!(entries instanceof Map)) {
      if (entries === undefined || entries.filter !== filter) return false;
      this.#entries = undefined;
      return true;
    }
    if (!entries.delete(filter)) return false;
    if (entries.size === 1) {
      // Back to one: the Map goes.
      for (const entry of entries.values()) this.#entries = entry;
    }
    return true;
  }

  clear(): void {
    this.#entries = undefined;
  }

  keys(): IterableIterator<string> {
    const entries = this.#entries;
    if (entries instanceof Map) return entries.keys();
    return (entries === undefined ? NONE : [entries.filter]).values();
  }

  values(): IterableIterator<SubscriptionEntry> {
    const entries = this.#entries;
    if (entries instanceof Map) return entries.values();
    return (entries === undefined ? NONE : [entries]).values();
  }

  entries(): IterableIterator<[string, SubscriptionEntry]> {
    const entries = this.#entries;
    if (entries instanceof Map) return entries.entries();
    return (entries === undefined ? NONE : [[entries.filter, entries] as [string, SubscriptionEntry]]).values();
  }

  [Symbol.iterator](): IterableIterator<[string, SubscriptionEntry]> {
    return this.entries();
  }
}
