// A FIFO with O(1) removal at the head: the client session's queue of messages waiting to be sent, and the broker
// session's queue of messages waiting for a subscriber. Array.prototype.shift is O(n) once an array outgrows V8's
// regular heap objects (~16 k elements): draining a 40 k-message session queue with it took seconds of memmove.
export class Fifo<T> implements Iterable<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts `items` back at the head, in their order (a resend after reconnect goes before what was queued). */
  unshiftAll(items: readonly T[]): void {
    this.#items = [...items, ...this.#items.slice(this.#head)];
    this.#head = 0;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    // Released for the garbage collector now, not at the next compaction: a sent message (and its payload) must
    // not stay reachable behind the head, up to 1 024 of them, for as long as the queue is not drained.
    this.#items[this.#head] = undefined;
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** The newest item, removed. */
  pop(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items.pop();
    if (this.length === 0) this.clear();
    return item;
  }

  /** Takes out the items `remove` picks, keeping the order of the rest; returns them in their order. */
  removeWhere(remove: (item: T) => boolean): T[] {
    const items = this.#items;
    const head = this.#head;
    // Judged first, moved after: `remove` may throw (the broker passes an application's authorize hook), and then
    // the queue is as it was.
    const picked = new Uint8Array(items.length - head);
    let count = 0;
    for (let i = head; i < items.length; i++) {
      if (remove(items[i] as T)) {
        picked[i - head] = 1;
        count++;
      }
    }
    const removed: T[] = [];
    if (count === 0) return removed;
    // Compacted in place: a sweep that takes a few items out of a long queue allocates no second array of it.
    let kept = 0;
    for (let i = head; i < items.length; i++) {
      const item = items[i] as T;
      if (picked[i - head] === 1) removed.push(item);
      else items[kept++] = item;
    }
    items.length = kept;
    this.#head = 0;
    return removed;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}
