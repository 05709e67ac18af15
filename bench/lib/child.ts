// Runs one benchmark case in a fresh Node process (same flags, so tsx is loaded) and returns the JSON it prints
// on its last stdout line. A fresh process per case keeps every call site monomorphic: no case's types or
// closures leak into another case's inline caches, for either library.
import { type ChildProcess, spawnSync } from 'node:child_process';
import { once } from 'node:events';

export function runChild(script: string, args: readonly string[]): unknown {
  const result = spawnSync(process.execPath, [...process.execArgv, script, ...args], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`benchmark child ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  const lines = result.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null');
}

/** Sends `signal` to a child still running and resolves once it has exited; a child already gone resolves at once. */
export async function killAndWait(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}
