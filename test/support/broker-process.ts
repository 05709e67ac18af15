// The otalink broker as a child process (otalink-broker-process.ts), restartable on the same port: for tests that
// SIGKILL the broker under running clients and bring it back.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./otalink-broker-process.ts', import.meta.url));

export class BrokerProcess {
  private child: ChildProcess | undefined;
  port = 0;

  /** Starts the broker on `port` (0: a free one) and resolves once it listens. */
  async run(port = 0): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify({ port })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the broker process did not start: ${err}`)), 20_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n') && line !== undefined) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the broker process exited (${code}): ${err}`));
      });
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.child = undefined;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
