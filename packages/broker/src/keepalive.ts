// One timer for the whole broker: every connection's CONNECT timeout and keepalive, every offline session's expiry
// and every delayed will is a deadline checked by a single periodic tick, not a timer per client.

export interface Timed {
  /** ms since the epoch; 0 = none. Owners move it freely (e.g. on every packet) without touching the timer. */
  deadline: number;
  /** Called once when the deadline has passed; the item is removed first and may re-add itself. */
  expire(now: number): void;
}

export class DeadlineTicker {
  readonly #items = new Set<Timed>();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #lastTick = 0;
  #skipped = false;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#lastTick = Date.now();
    this.#timer = setInterval(() => this.onInterval(Date.now()), this.#intervalMs);
  }

  /**
   * The interval's turn. One that comes late follows a stall (a long GC, a busy machine) and runs before the reads
   * that waited meanwhile: a client whose PINGREQ sits unread in its socket would be cut off as silent. It judges
   * nothing; the next one, after those reads, does, late or not (a broker lagging for good still expires
   * deadlines, one interval later).
   */
  onInterval(now: number): void {
    const late = now - this.#lastTick > 2 * this.#intervalMs;
    this.#lastTick = now;
    if (late && !this.#skipped) {
      this.#skipped = true;
      return;
    }
    this.#skipped = false;
    this.tick(now);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  add(item: Timed): void {
    this.#items.add(item);
  }

  delete(item: Timed): void {
    this.#items.delete(item);
  }

  get size(): number {
    return this.#items.size;
  }

  /** Expires everything due at `now`; public so tests can drive it with a fake clock. */
  tick(now: number): void {
    const due: Timed[] = [];
    for (const item of this.#items) {
      if (item.deadline !== 0 && item.deadline <= now) due.push(item);
    }
    for (const item of due) {
      this.#items.delete(item);
      item.expire(now);
    }
  }
}
