// How many open files `otalink up` needs for its simulated fleet, and how many this process may hold: broker,
// backend and every vehicle share one process, so a fleet too large for it fails at start with the numbers instead
// of leaving vehicles that never connect (EMFILE) behind a half-started stack.
import { readFileSync } from 'node:fs';
import { fleetOpenJournals } from '@otalink/sim';

/** Files beside the fleet's: listeners, the store, logs, the backend's MQTT connection, downloads in progress. */
const HEADROOM = 512;

/** Both ends of each vehicle's MQTT connection (broker and vehicle live here), and the journals the fleet keeps open. */
export function upFilesNeeded(vehicles: number): number {
  return 2 * vehicles + Math.min(vehicles, fleetOpenJournals(vehicles)) + HEADROOM;
}

/**
 * This process's open-files limit (Node raises the soft limit to the hard one at start), from /proc/self/limits;
 * undefined where that file does not exist (the check is then skipped).
 */
export function openFilesLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (m === null || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}

/** Why `vehicles` cannot run in this process, or undefined when they fit. */
export function fleetTooLarge(vehicles: number, limit = openFilesLimit()): string | undefined {
  const needed = upFilesNeeded(vehicles);
  if (limit === undefined || needed <= limit) return undefined;
  return (
    `--vehicles ${vehicles}: the broker and the vehicles share this one process and need about ${needed} open ` +
    `files, more than the ${limit} it may hold (ulimit -n). Start fewer here, or run \`otalink up --vehicles 0\` ` +
    'and the fleet with `otalink sim` in processes of its own'
  );
}
