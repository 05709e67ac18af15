// Starts a real Mosquitto for client interop tests: a free loopback port, a generated config in a temp dir, and a
// restart on the same port and persistence file (for kill-and-restart tests).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function accepting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class Mosquitto {
  private child: ChildProcess | undefined;
  readonly dir: string;
  log = '';

  private constructor(
    readonly binary: string,
    readonly port: number,
    readonly persistence: boolean,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'otalink-mosquitto-'));
    // Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot write our temp dir.
    const lines = [`listener ${port} 127.0.0.1`, 'allow_anonymous true', `user ${userInfo().username}`];
    if (persistence) lines.push('persistence true', `persistence_location ${this.dir}/`, 'autosave_interval 1');
    writeFileSync(join(this.dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
  }

  static async start(binary: string, options: { persistence?: boolean } = {}): Promise<Mosquitto> {
    const m = new Mosquitto(binary, await freePort(), options.persistence ?? false);
    await m.run();
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async run(): Promise<void> {
    const child = spawn(this.binary, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    this.child = child;
    await accepting(this.port, 10_000);
  }

  /** SIGKILL: no chance to save anything beyond what persistence already wrote. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    this.child = undefined;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
