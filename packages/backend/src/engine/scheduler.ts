// ONE timer for every deadline the backend has (execution timers, rollout wake-ups, throttled publishes): a binary
// min-heap of (at, key) with lazy deletion, and a single clock timer armed for the earliest entry. 10 k executions
// cost 10 k heap entries, not 10 k Node timers.
import type { Clock } from '../clock.js';

interface HeapItem {
  at: number;
  key: string;
}

export class Scheduler {
  /** The truth: key → due time. Heap entries that disagree with it are stale and skipped. */
  private readonly due = new Map<string, number>();
  private readonly heap: HeapItem[] = [];
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly onDue: (key: string, now: number) => void,
  ) {}

  get size(): number {
    return this.due.size;
  }

  /** Sets (or moves) the deadline of `key`. */
  set(key: string, at: number): void {
    if (this.closed) return;
    if (this.due.get(key) === at) return;
    this.due.set(key, at);
    this.push({ at, key });
    // Progress reports move step deadlines often; rebuild when stale entries dominate so memory stays bounded.
    if (this.heap.length > 4 * this.due.size + 1024) this.rebuild();
    this.arm();
  }

  /** Sets the deadline of `key` unless an earlier one is already set. */
  setEarliest(key: string, at: number): void {
    const current = this.due.get(key);
    if (current === undefined || at < current) this.set(key, at);
  }

  delete(key: string): void {
    this.due.delete(key);
  }

  has(key: string): boolean {
    return this.due.has(key);
  }

  at(key: string): number | undefined {
    return this.due.get(key);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.due.clear();
    this.heap.length = 0;
  }

  /** Fires everything due at `now` (the clock timer calls this; tests may too). */
  runDue(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > now) break;
      this.pop();
      if (this.due.get(top.key) !== top.at) continue;
      this.due.delete(top.key);
      try {
        this.onDue(top.key, now);
      } catch {
        // onDue handles its own errors; a throw here must not stop the other deadlines.
      }
    }
    this.arm();
  }

  private arm(): void {
    if (this.closed) return;
    // Drop stale heads so the timer is armed for a live deadline.
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.due.get(top.key) === top.at) break;
      this.pop();
    }
    const top = this.heap[0];
    const at = top === undefined ? Number.POSITIVE_INFINITY : top.at;
    if (at === this.timerAt && this.timer !== undefined) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (top === undefined) return;
    // setTimeout caps at 2^31-1 ms; a far deadline re-arms when the timer fires early.
    const delay = Math.min(Math.max(0, at - this.clock.now()), 2 ** 31 - 1);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.runDue();
    }, delay);
  }

  private rebuild(): void {
    this.heap.length = 0;
    for (const [key, at] of this.due) this.push({ at, key });
  }

  private push(item: HeapItem): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as HeapItem).at <= item.at) break;
      heap[i] = heap[parent] as HeapItem;
      i = parent;
    }
    heap[i] = item;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && (heap[right] as HeapItem).at < (heap[left] as HeapItem).at ? right : left;
      if ((heap[child] as HeapItem).at >= last.at) break;
      heap[i] = heap[child] as HeapItem;
      i = child;
    }
    heap[i] = last;
  }
}
