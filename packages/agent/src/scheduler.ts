// When the agent needs to wake up (a maintenance window opens, a precondition is looked at again, a simulated
// link comes back). One agent can use plain timers; the simulator shares one ticker among thousands of agents so
// that an idle vehicle costs no timer at all.

export interface Scheduler {
  /** Calls `fn` at (or soon after) epoch ms `at`; returns a cancel function. */
  at(at: number, fn: () => void): () => void;
}

/** A timer per wake-up. */
export const timerScheduler: Scheduler = {
  at(at, fn) {
    const timer = setTimeout(fn, Math.max(0, at - Date.now()));
    return () => clearTimeout(timer);
  },
};

export interface TickerScheduler extends Scheduler {
  /** Wake-ups not yet due. */
  readonly pending: number;
  close(): void;
}

/**
 * One interval for every wake-up: due entries run on the next tick (resolution `tickMs`). The interval only runs
 * while something is pending.
 */
export function createTickerScheduler(tickMs = 250, now: () => number = Date.now): TickerScheduler {
  const entries = new Set<{ at: number; fn: () => void }>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const tick = () => {
    const time = now();
    for (const entry of [...entries]) {
      if (entry.at > time) continue;
      entries.delete(entry);
      entry.fn();
    }
    if (entries.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    at(at, fn) {
      if (closed) return () => undefined;
      const entry = { at, fn };
      entries.add(entry);
      timer ??= setInterval(tick, tickMs);
      return () => {
        entries.delete(entry);
      };
    },
    get pending() {
      return entries.size;
    },
    close() {
      closed = true;
      entries.clear();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
