// Another process's CPU time (user + system, all its threads) from /proc/<pid>/stat, to show what share of a
// core the broker used while a client published: a broker near 100 % is the ceiling, whatever the client does.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ): 100 on every Linux this runs on. */
const USER_HZ = 100;

/** Seconds of CPU `pid` has used, or undefined where there is no /proc (or the process is gone). */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields from its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : undefined;
}

/** CPU used since `start` over `elapsedMs` of wall time, as % of one core (10 ms resolution: /proc counts ticks). */
export function cpuShare(pid: number | undefined, start: number | undefined, elapsedMs: number): number | undefined {
  const end = processCpuSeconds(pid);
  if (start === undefined || end === undefined || elapsedMs <= 0) return undefined;
  return ((end - start) * 1000 * 100) / elapsedMs;
}
