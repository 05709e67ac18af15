// Runs one benchmark case in a fresh Node process (same flags, so tsx is loaded) and returns the JSON it prints
// on its last stdout line. A fresh process per case keeps every call site monomorphic: no case's types or
// closures leak into another case's inline caches, for either library.
import { spawnSync } from 'node:child_process';

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
