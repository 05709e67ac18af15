// A session's subscriptions by topic filter, read like a Map. Most sessions hold one (a vehicle's own command topic):
// that one is kept in a field, and a Map is made only for a second one at the same time, since a Map and its table
// (~180 bytes) would be a sixth of an idle connection's heap.
import type { SubscriptionEntry } from './session.js';

const NONE: readonly never[] = [];

export class Subscriptions implements Iterable<[string, SubscriptionEntry]> {
  /** The only subscription, while `#many` is undefined. */
  #one: SubscriptionEntry | undefined = undefined;
  #many: Map<string, SubscriptionEntry> | undefined = undefined;

  get size(): number {
    if (this.#many !== undefined) return this.#many.size;
    return this.#one === undefined ? 0 : 1;
  }

  get(filter: string): SubscriptionEntry | undefined {
    if (this.#many !== undefined) return this.#many.get(filter);
    const one = this.#one;
    return one !== undefined && one.filter === filter ? one : undefined;
  }

  has(filter: string): boolean {
    return this.get(filter) !== undefined;
  }

  /** Adds the subscription to `entry.filter`, or replaces the one there (it keeps its place in the order). */
  add(entry: SubscriptionEntry): void {
    const many = this.#many;
    if (many !== undefined) {
      many.set(entry.filter, entry);
      return;
    }
    const one = this.#one;
    if (one === undefined || one.filter === entry.filter) {
      this.#one = entry;
      return;
    }
    this.#many = new Map([
      [one.filter, one],
      [entry.filter, entry],
    ]);
    this.#one = undefined;
  }

  /** Removes the subscription to `filter`; returns whether there was one. */
  delete(filter: string): boolean {
    const many = this.#many;
    if (many === undefined) {
      if (this.#one === undefined || this.#one.filter !== filter) return false;
      this.#one = undefined;
      return true;
    }
    if (!many.delete(filter)) return false;
    if (many.size === 1) {
      // Back to one: the Map goes.
      for (const entry of many.values()) this.#one = entry;
      this.#many = undefined;
    }
    return true;
  }

  clear(): void {
    this.#one = undefined;
    this.#many = undefined;
  }

  keys(): IterableIterator<string> {
    if (this.#many !== undefined) return this.#many.keys();
    return (this.#one === undefined ? NONE : [this.#one.filter]).values();
  }

  values(): IterableIterator<SubscriptionEntry> {
    if (this.#many !== undefined) return this.#many.values();
    return (this.#one === undefined ? NONE : [this.#one]).values();
  }

  entries(): IterableIterator<[string, SubscriptionEntry]> {
    if (this.#many !== undefined) return this.#many.entries();
    const one = this.#one;
    return (one === undefined ? NONE : [[one.filter, one] as [string, SubscriptionEntry]]).values();
  }

  [Symbol.iterator](): IterableIterator<[string, SubscriptionEntry]> {
    return this.entries();
  }
}
