// The real clock, taken when this module loads: a model run on virtual time (node:test's mock timers, which replace
// Date, setTimeout and setInterval for the broker) still waits for sockets by the real one.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** Milliseconds by the real clock (performance.now is never mocked). */
export const realNow = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => realSetTimeout(resolve, ms));

/** A real timer, for a wait that another event may cut short. */
export function realTimer(ms: number, fire: () => void): { clear(): void } {
  const timer = realSetTimeout(fire, ms);
  return { clear: () => realClearTimeout(timer) };
}
