// The brokers the campaign suite runs against: ours (createBroker) and Mosquitto as a child process, both on a
// free loopback port with plain TCP and anonymous clients (identity and ACLs are proven by test/e2e/isolation).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createBroker } from '@otalink/broker';
import { pino } from 'pino';

export interface RunningBroker {
  url: string;
  close(): Promise<void>;
}

export async function startOurBroker(): Promise<RunningBroker> {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    sysIntervalSeconds: 0,
    logger: pino({ level: 'silent' }),
  });
  await broker.listen();
  const address = broker.addresses()[0];
  if (address === undefined) throw new Error('broker has no listener');
  return { url: `mqtt://127.0.0.1:${address.port}`, close: () => broker.close() };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Mosquitto 2 on a free loopback port; persistent sessions live in memory for the process's lifetime. */
export async function startMosquitto(program: string): Promise<RunningBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'otalink-e2e-mosquitto-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = join(dir, 'mosquitto.conf');
    await writeFile(
      config,
      [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 10000', ''].join(
        '\n',
      ),
    );
    const child: ChildProcess = spawn(program, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    // 'close', not 'exit': the reason it stopped ("Address already in use") is read from stderr below.
    const exited = once(child, 'close');
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      // Its own "running" line first: a process beside us that took the port would accept too.
      if (/mosquitto version \S+ running/.test(stderr) && (await accepts(port))) {
        return {
          url: `mqtt://127.0.0.1:${port}`,
          async close() {
            if (child.exitCode === null) {
              child.kill('SIGTERM');
              await exited;
            }
            await rm(dir, { recursive: true, force: true });
          },
        };
      }
      await delay(50);
    }
    child.kill('SIGKILL');
    await exited;
    // Another process took the port between our probe and mosquitto's bind: try another.
    if (!/Address already in use/.test(stderr)) throw new Error(`mosquitto did not start: ${stderr}`);
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error('mosquitto: no free port after 5 attempts');
}
