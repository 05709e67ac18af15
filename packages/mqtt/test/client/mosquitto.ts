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

/** PEM text for TLS listeners: the server's certificate and key, and the CA that signs client certificates. */
export interface MosquittoTls {
  cert: string;
  key: string;
  ca: string;
}

export interface MosquittoOptions {
  persistence?: boolean;
  /** Adds two TLS listeners: `tlsPort` (server certificate only) and `mutualTlsPort` (client certificate required). */
  tls?: MosquittoTls;
}

export class Mosquitto {
  private child: ChildProcess | undefined;
  readonly dir: string;
  log = '';
  tlsPort = 0;
  mutualTlsPort = 0;

  private constructor(
    readonly binary: string,
    readonly port: number,
    readonly persistence: boolean,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'otalink-mosquitto-'));
  }

  /** Writes the config: global settings, then each listener with the settings that follow its line. */
  private configure(tls: MosquittoTls | undefined): void {
    // Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot write our temp dir.
    const lines = ['allow_anonymous true', `user ${userInfo().username}`];
    if (this.persistence) lines.push('persistence true', `persistence_location ${this.dir}/`, 'autosave_interval 1');
    lines.push(`listener ${this.port} 127.0.0.1`);
    if (tls !== undefined) {
      for (const [name, pem] of Object.entries(tls)) writeFileSync(join(this.dir, `${name}.pem`), pem);
      const files = [`cafile ${this.dir}/ca.pem`, `certfile ${this.dir}/cert.pem`, `keyfile ${this.dir}/key.pem`];
      lines.push(`listener ${this.tlsPort} 127.0.0.1`, ...files);
      lines.push(`listener ${this.mutualTlsPort} 127.0.0.1`, ...files, 'require_certificate true');
    }
    writeFileSync(join(this.dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
  }

  static async start(binary: string, options: MosquittoOptions = {}): Promise<Mosquitto> {
    const m = new Mosquitto(binary, await freePort(), options.persistence ?? false);
    if (options.tls !== undefined) {
      m.tlsPort = await freePort();
      m.mutualTlsPort = await freePort();
    }
    m.configure(options.tls);
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
