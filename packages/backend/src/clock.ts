// Time as a dependency: the orchestrator and its scheduler read `now()` and arm one timer through this, so tests
// drive a whole campaign (re-notify, step and in-progress timeouts, rate windows) with a fake clock.
export interface Clock {
  now(): number;
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, delayMs) => {
    const timer = setTimeout(fn, delayMs);
    // The backend's lifetime is held by its sockets, not by a pending deadline.
    timer.unref();
    return timer;
  },
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
