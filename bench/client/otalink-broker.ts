// Our broker as the other server the clients publish to (test/support/otalink-broker-process.ts in its own Node
// process), started and killed by the runner like BenchMosquitto, and killed on any exit of the runner.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killAndWait } from '../lib/child.js';
import { OTALINK_EXEC_ARGV } from '../lib/otalink-loader.js';

// The same child the kill-restart tests use: options as JSON, `{"port":N}` on stdout, exits with its parent's stdin.
const SCRIPT = fileURLToPath(new URL('../../test/support/otalink-broker-process.ts', import.meta.url));
const running = new Set<ChildProcess>();
let hooked = false;

export class BenchOtalinkBroker {
  private child: ChildProcess | undefined;
  port = 0;

  /** @param receiveMaximum the window announced to 5.0 clients (and bounding QoS 2 from 3.1.1 ones). */
  constructor(private readonly receiveMaximum: number) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) return;
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const child of running) child.kill('SIGKILL');
      });
    }
    const child = spawn(
      process.execPath,
      [...OTALINK_EXEC_ARGV, SCRIPT, JSON.stringify({ limits: { receiveMaximum: this.receiveMaximum } })],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.child = child;
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`our broker did not start within 20 s: ${err}`)), 20_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const newline = out.indexOf('\n');
        if (newline < 0) return;
        clearTimeout(timer);
        resolve((JSON.parse(out.slice(0, newline)) as { port: number }).port);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`our broker exited (${code}) before listening: ${err}`));
      });
    });
  }

  /** SIGKILL, as BenchMosquitto.kill: nothing is saved. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    await killAndWait(child, 'SIGKILL');
  }

  stop(): Promise<void> {
    return this.kill();
  }
}
