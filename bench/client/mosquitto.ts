// The Mosquitto both clients talk to: a free loopback port, a generated config in a temp dir, started and killed
// by the benchmark runner (and killed on any exit path). Several loopback addresses listen on the same port so
// 10 000 idle clients from one process do not run short of ephemeral ports (each address is its own 4-tuple space).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { killAndWait } from '../lib/child.js';

export const MOSQUITTO_BINARY = '/usr/sbin/mosquitto';
/** Addresses Mosquitto listens on (all on the same port). */
export const LOOPBACK_HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;

export interface MosquittoSettings {
  /** Mosquitto's outgoing window per client, and (2.0) the Receive Maximum it announces to 5.0 clients. */
  maxInflightMessages: number;
  /** Messages queued per client beyond the window (QoS 0 included for connected clients) before dropping. */
  maxQueuedMessages: number;
}

const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooked = false;

function killEverything(): void {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killEverything);
}

export function mosquittoVersion(): string {
  const r = spawnSync(MOSQUITTO_BINARY, ['-h'], { encoding: 'utf8' });
  return /version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown';
}

async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, LOOPBACK_HOSTS[0]);
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // The same port must be free on every address we bind.
    if (await freeOnAll(port)) return port;
  }
}

async function freeOnAll(port: number): Promise<boolean> {
  for (const host of LOOPBACK_HOSTS) {
    const server = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, host, () => resolve(true));
    });
    if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!ok) return false;
  }
  return true;
}

async function accepting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: LOOPBACK_HOSTS[0], port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class BenchMosquitto {
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async create(settings: MosquittoSettings): Promise<BenchMosquitto> {
    hookExit();
    const dir = mkdtempSync(join(tmpdir(), 'otalink-bench-mosquitto-'));
    tempDirs.add(dir);
    const port = await freePort();
    const lines: string[] = [];
    for (const host of LOOPBACK_HOSTS) lines.push(`listener ${port} ${host}`);
    lines.push(
      'allow_anonymous true',
      // Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot read our temp dir.
      `user ${userInfo().username}`,
      'persistence false',
      'set_tcp_nodelay true',
      `max_inflight_messages ${settings.maxInflightMessages}`,
      `max_queued_messages ${settings.maxQueuedMessages}`,
      'max_connections -1',
      // 10 000 connects would otherwise be 10 000 log lines through a pipe.
      'log_type error',
      'log_type warning',
      'log_dest stderr',
    );
    writeFileSync(join(dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
    return new BenchMosquitto(dir, port);
  }

  get url(): string {
    return `mqtt://${LOOPBACK_HOSTS[0]}:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) return;
    const child = spawn(MOSQUITTO_BINARY, ['-c', join(this.dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-4000);
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.child = child;
    await accepting(this.port, 10_000);
  }

  /** SIGKILL: the clients see the line drop, nothing is saved. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    await killAndWait(child, 'SIGKILL');
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }

  get recentLog(): string {
    return this.log;
  }
}
