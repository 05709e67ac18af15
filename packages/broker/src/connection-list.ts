// The broker's open connections, for shutdown to end them all. Linked through the connections themselves: a Set
// would hold an entry (~45 bytes with its table) per connection and hash each one on every connect and close.

/** What the list links: its two neighbours, kept in the item (a connection). */
export interface Linked<T> {
  listPrev: T | undefined;
  listNext: T | undefined;
}

export class LinkedList<T extends Linked<T>> implements Iterable<T> {
  #head: T | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds `item`, which must not be in a list. */
  add(item: T): void {
    const head = this.#head;
    item.listPrev = undefined;
    item.listNext = head;
    if (head !== undefined) head.listPrev = item;
    this.#head = item;
    this.#size++;
  }

  /** Removes `item`; returns false (and changes nothing) when it is not in this list. */
  delete(item: T): boolean {
    const prev = item.listPrev;
    const next = item.listNext;
    if (prev === undefined) {
      if (this.#head !== item) return false;
      this.#head = next;
    } else {
      prev.listNext = next;
    }
    if (next !== undefined) next.listPrev = prev;
    item.listPrev = undefined;
    item.listNext = undefined;
    this.#size--;
    return true;
  }

  /** Newest first. Removing the item just visited is safe. */
  *[Symbol.iterator](): Iterator<T> {
    let item = this.#head;
    while (item !== undefined) {
      const next = item.listNext;
      yield item;
      item = next;
    }
  }
}
