// Starts one case process (bench/client/worker.ts) with IPC, answers its requests (kill or start the broker,
// run a flood publisher), and returns its result. Every case process is killed on any exit of the runner.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CaseResult, CaseSpec, WorkerMessage } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const children = new Set<ChildProcess>();
let hooked = false;

export function killCases(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** The server a case runs against: the drain case kills and restarts it. */
export interface CaseBroker {
  kill(): Promise<void>;
  start(): Promise<void>;
}

export interface CaseOptions {
  /** Extra node flags, e.g. --cpu-prof for profiling. */
  nodeFlags?: string[];
  timeoutMs: number;
}

export function runCase(spec: CaseSpec, broker: CaseBroker, options: CaseOptions): Promise<CaseResult> {
  if (!hooked) {
    hooked = true;
    process.on('exit', killCases);
  }
  const child = spawn(
    process.execPath,
    [...process.execArgv, '--expose-gc', ...(options.nodeFlags ?? []), WORKER, JSON.stringify(spec)],
    { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] },
  );
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const floods: Promise<CaseResult>[] = [];
  return new Promise<CaseResult>((resolve) => {
    let settled = false;
    const finish = (result: CaseResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `timed out after ${options.timeoutMs / 1000} s`, rates: [] }),
      options.timeoutMs,
    );
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'result') {
        finish(m.result);
        return;
      }
      const reply = () => {
        if (child.connected) child.send({ type: 'done', what: m.what });
      };
      if (m.what === 'kill-broker') void broker.kill().then(reply);
      else if (m.what === 'start-broker') void broker.start().then(reply);
      else if (m.what === 'flood') {
        const flood = runCase({ ...spec, lib: 'otalink', scenario: 'flood' }, broker, options);
        floods.push(flood);
        void flood.then(reply);
      }
    });
    child.once('exit', (code, signal) => {
      children.delete(child);
      finish({
        ok: false,
        error: `case process exited (${signal ?? code}) before its result: ${stderr.trim()}`,
        rates: [],
      });
    });
  });
}
