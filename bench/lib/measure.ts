// Rate measurement: warm up until the JIT has settled, then several timed rounds, reporting the median so one
// noisy neighbour on a shared machine moves nothing. Each round repeats the operation until a minimum time has
// passed, so the clock's resolution never matters. Rates are given per second of this process's CPU time (all
// its threads, so GC and JIT work count) and per second of wall time: on a shared machine other processes take
// wall time away, and the CPU-time rate is the one that stays comparable between runs.

export interface MeasureOptions {
  /** Warm-up time before the first timed round. */
  warmupMs: number;
  /** Timed rounds; the median is reported. */
  rounds: number;
  /** Minimum duration of one round. */
  roundMs: number;
}

export interface Measurement {
  /** Median items per CPU second over the rounds. */
  median: number;
  /** Median items per wall-clock second over the rounds. */
  wallMedian: number;
  /** Every round's CPU-time rate, in the order run. */
  rounds: number[];
  /** Every round's wall-clock rate, in the order run. */
  wallRounds: number[];
}

export const DEFAULT_MEASURE: MeasureOptions = { warmupMs: 600, rounds: 7, roundMs: 250 };

/** `op` does some work and returns how many items (packets) it handled. */
export function measure(op: () => number, options: MeasureOptions = DEFAULT_MEASURE): Measurement {
  runFor(op, options.warmupMs);
  const cpuRates: number[] = [];
  const wallRates: number[] = [];
  for (let r = 0; r < options.rounds; r++) {
    const round = runFor(op, options.roundMs);
    cpuRates.push(round.cpu);
    wallRates.push(round.wall);
  }
  return { median: median(cpuRates), wallMedian: median(wallRates), rounds: cpuRates, wallRounds: wallRates };
}

/** Calls `op` until `ms` of wall time have passed; returns items per CPU second and per wall second. */
function runFor(op: () => number, ms: number): { cpu: number; wall: number } {
  const limit = BigInt(Math.round(ms * 1e6));
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let items = 0;
  let elapsed = 0n;
  do {
    items += op();
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  const cpu = process.cpuUsage(cpuStart);
  return { cpu: items / ((cpu.user + cpu.system) / 1e6), wall: items / (Number(elapsed) / 1e9) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
