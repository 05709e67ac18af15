// Reconnect delays: exponential growth to a cap, with "full jitter" (a uniform draw in [0, ceiling]) so a fleet
// that lost its broker at the same instant does not come back in lockstep. Pure: the caller supplies `random`.

export interface BackoffOptions {
  /** First ceiling, in ms (Paho: 1 s). */
  initialDelayMs?: number;
  /** Largest ceiling, in ms (Paho: 60 s). */
  maxDelayMs?: number;
  multiplier?: number;
  /** 'full': uniform in [0, ceiling]; 'equal': ceiling/2 + uniform in [0, ceiling/2]; 'none': the ceiling. */
  jitter?: 'full' | 'equal' | 'none';
  /**
   * How long a connection must last before the delays start again from initialDelayMs, in ms (default 30 s, as
   * AWS IoT's device SDKs). A server that accepts and at once disconnects (a session taken over by a twin with the
   * same client id, a quota) then meets a growing delay instead of a reconnect every initialDelayMs.
   */
  stableAfterMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 1000,
  maxDelayMs: 60_000,
  multiplier: 2,
  jitter: 'full',
  stableAfterMs: 30_000,
};

/** Delay before reconnect attempt `attempt` (0 for the first retry). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  // Field by field: an option given as undefined (a config value not set) takes the default, as one left out does.
  const o: Required<BackoffOptions> = {
    initialDelayMs: options.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
    multiplier: options.multiplier ?? DEFAULT_BACKOFF.multiplier,
    jitter: options.jitter ?? DEFAULT_BACKOFF.jitter,
    stableAfterMs: options.stableAfterMs ?? DEFAULT_BACKOFF.stableAfterMs,
  };
  const ceiling = Math.min(o.maxDelayMs, o.initialDelayMs * o.multiplier ** Math.max(0, attempt));
  switch (o.jitter) {
    case 'none':
      return ceiling;
    case 'equal':
      return ceiling / 2 + random() * (ceiling / 2);
    default:
      return random() * ceiling;
  }
}
