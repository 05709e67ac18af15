// Rate measurement: warm up until the JIT has settled, then several timed rounds, reporting the median so one
// noisy neighbour on a shared machine moves nothing. Each round repeats the operation until a minimum time has
// passed, so the clock's resolution never matters.

export interface MeasureOptions {
  /** Warm-up time before the first timed round. */
  warmupMs: number;
  /** Timed rounds; the median is reported. */
  rounds: number;
  /** Minimum duration of one round. */
  roundMs: number;
}

export interface Measurement {
  /** Median items per second over the rounds. */
  median: number;
  /** Every round's rate, in the order run. */
  rounds: number[];
}

export const DEFAULT_MEASURE: MeasureOptions = { warmupMs: 600, rounds: 7, roundMs: 250 };

/** `op` does some work and returns how many items (packets) it handled. */
export function measure(op: () => number, options: MeasureOptions = DEFAULT_MEASURE): Measurement {
  runFor(op, options.warmupMs);
  const rates: number[] = [];
  for (let r = 0; r < options.rounds; r++) rates.push(runFor(op, options.roundMs));
  return { median: median(rates), rounds: rates };
}

/** Calls `op` until `ms` have passed; returns items per second. */
function runFor(op: () => number, ms: number): number {
  const limit = BigInt(Math.round(ms * 1e6));
  const start = process.hrtime.bigint();
  let items = 0;
  let elapsed = 0n;
  do {
    items += op();
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return items / (Number(elapsed) / 1e9);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
