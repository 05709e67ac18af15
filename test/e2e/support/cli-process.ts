// `otalink` as a child process, the way a user runs it: output collected, waits bounded, and every child still
// running at the end of a test file killed (by its own pid) so a failed assertion leaves no process behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { exitedWithOutput } from '../../support/child-exit.js';

const root = new URL('../../..', import.meta.url).pathname;

export interface CliProcess {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Settles with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stdout matches; rejects on timeout or when the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
}

const children = new Set<ChildProcess>();

export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = spawn(process.execPath, ['bin/otalink.js', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = exitedWithOutput(proc).then((ended) => {
    children.delete(proc);
    return ended;
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForOutput(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(out);
        if (match !== null) return match;
        if (ended) throw new Error(`exited before printing ${pattern}:\n${out}\n${err.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} in ${timeoutMs} ms:\n${out}\n${err.slice(-4000)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}

/** Runs a short command to its end; rejects after `timeoutMs`. */
export async function runCli(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args);
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs);
  const { code } = await child.exited;
  clearTimeout(timer);
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

/** SIGKILLs every child still running (for `after`). */
export async function killChildren(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, 'exit');
        child.kill('SIGKILL');
        await exit;
      }
    }),
  );
}

/**
 * The backend's manifest signing keys as `--trusted-key ID=FILE` arguments, the way an operator gets them:
 * `otalink artifact keys --out DIR` writes each public key and prints the arguments.
 */
export async function trustedKeyArgs(api: string, caFile: string, dir: string): Promise<string[]> {
  const keys = await runCli(['artifact', 'keys', '--api', api, '--cafile', caFile, '--out', dir]);
  if (keys.code !== 0) throw new Error(`otalink artifact keys exited with ${keys.code}: ${keys.stderr}`);
  const args = keys.stdout
    .trim()
    .split('\n')
    .flatMap((line) => line.split(' '));
  if (args.length < 2 || args[0] !== '--trusted-key') throw new Error(`unexpected output: ${keys.stdout}`);
  return args;
}
