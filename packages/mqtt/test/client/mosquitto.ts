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

/**
 * Resolves once `port` accepts and Mosquitto says it is running (all its listeners bound): a port taken by another
 * process beside us would accept too, while this Mosquitto exits with "Address already in use".
 */
async function accepting(
  port: number,
  timeoutMs: number,
  exited: () => boolean,
  running: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited()) throw new Error(`mosquitto exited instead of listening on ${port}`);
    if (!running()) {
      if (Date.now() > deadline) throw new Error(`mosquitto did not start on ${port}`);
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
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
  /** More global config lines, e.g. `retain_available false`. */
  config?: string[];
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
  private configure(tls: MosquittoTls | undefined, config: string[] = []): void {
    // Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot write our temp dir.
    const lines = ['allow_anonymous true', `user ${userInfo().username}`, ...config];
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
    // A port is only known free when probed: a test file running beside this one may take it before Mosquitto binds
    // it. Mosquitto then exits at once, saying so, and starts again on fresh ports.
    for (let attempt = 1; ; attempt++) {
      const m = new Mosquitto(binary, await freePort(), options.persistence ?? false);
      if (options.tls !== undefined) {
        m.tlsPort = await freePort();
        m.mutualTlsPort = await freePort();
      }
      m.configure(options.tls, options.config);
      try {
        await m.run();
        return m;
      } catch (error) {
        await m.stop();
        if (attempt >= 5 || !/Address already in use/.test(m.log)) throw error;
      }
    }
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
    // 'close', not 'exit': an early exit is explained by its last output, read to the end by then.
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    try {
      const exited = () => child.exitCode !== null || child.signalCode !== null;
      const before = this.log.length;
      await accepting(this.port, 10_000, exited, () => /mosquitto version \S+ running/.test(this.log.slice(before)));
    } catch (error) {
      if (child.exitCode === null && child.signalCode === null) throw error;
      await closed;
      throw new Error(`${(error as Error).message}: ${this.log}`);
    }
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
