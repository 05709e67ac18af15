// Starts support/durable-broker-process.ts as a child process on a data directory, for tests that SIGKILL it.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./durable-broker-process.ts', import.meta.url));

export interface BrokerChild {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
}

export async function startChild(dataDir: string, options: Record<string, unknown> = {}): Promise<BrokerChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ dataDir, ...options })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('broker child did not start')), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`broker child exited with ${code}`)));
  });
  return { child, port, exited };
}
