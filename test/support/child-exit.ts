// A child's end as a test needs it: 'exit' can come before the last of its stdout and stderr has been read (a
// check on its final output line then fails at random), and 'close' never comes while a grandchild still holds
// the pipes. This waits for 'exit', then for the pipes to close, a bounded while.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/** Resolves with the exit code and signal once the child has exited and its output has been read. */
export async function exitedWithOutput(
  child: ChildProcess,
  boundMs = 2_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const closed = once(child, 'close');
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, boundMs)))]);
  clearTimeout(timer);
  return { code: child.exitCode, signal: child.signalCode };
}
