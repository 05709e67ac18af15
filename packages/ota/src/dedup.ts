// The vehicle's memory of the commands it has acted on: QoS 1 and re-sends deliver some twice, and acting twice on a
// job.notify or a job.cancel must be impossible. Bounded (oldest forgotten first) and with expiry, and serialisable
// so the agent's journal can persist it across restarts.

export interface SeenMessageIdsOptions {
  /** At most this many ids are remembered; default 1000. */
  capacity?: number;
  /** An id is forgotten this long after it was acted on; default 30 days. */
  ttlMs?: number;
}

export interface SeenMessageIdsSnapshot {
  /** [msgId, actedOnAt] pairs, oldest first. */
  entries: Array<[string, number]>;
}

const DEFAULT_CAPACITY = 1000;
const DEFAULT_TTL_MS = 30 * 24 * 60 * 60_000;

export class SeenMessageIds {
  readonly capacity: number;
  readonly ttlMs: number;
  // A Map keeps insertion order, so the first entry is always the oldest.
  private readonly seen = new Map<string, number>();

  constructor(options: SeenMessageIdsOptions = {}, snapshot?: SeenMessageIdsSnapshot) {
    this.capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new RangeError('capacity must be >= 1');
    if (!(this.ttlMs > 0)) throw new RangeError('ttlMs must be > 0');
    for (const [id, at] of snapshot?.entries ?? []) this.remember(id, at);
  }

  /** True when `msgId` was acted on and has not expired. */
  has(msgId: string, now: number): boolean {
    this.expire(now);
    return this.seen.has(msgId);
  }

  /**
   * Records `msgId` as acted on. Returns false when it already was (the caller must not act again). Call it in the
   * same durable step as the action's effect, so a crash cannot separate the two.
   */
  add(msgId: string, now: number): boolean {
    this.expire(now);
    if (this.seen.has(msgId)) return false;
    this.remember(msgId, now);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  snapshot(): SeenMessageIdsSnapshot {
    return { entries: [...this.seen.entries()] };
  }

  private remember(msgId: string, at: number): void {
    this.seen.delete(msgId);
    this.seen.set(msgId, at);
    while (this.seen.size > this.capacity) {
      const oldest = this.seen.keys().next().value as string;
      this.seen.delete(oldest);
    }
  }

  private expire(now: number): void {
    for (const [id, at] of this.seen) {
      if (at + this.ttlMs > now) break;
      this.seen.delete(id);
    }
  }
}
