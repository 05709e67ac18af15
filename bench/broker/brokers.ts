// The three brokers under test, each started in its own process (group) on a loopback port, and stopped again.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../lib/free-port.js';
import { OTALINK_EXEC_ARGV } from '../lib/otalink-loader.js';
import { spawnGroup, stopChild, waitForLine } from './proc.js';

export type BrokerName = 'ours' | 'mosquitto' | 'aedes' | 'floor';
/**
 * 'floor' is no broker: a Node server that answers CONNECT and SUBSCRIBE with fixed acks and echoes a PUBLISH to its
 * sender (servers/floor.ts). It runs the round-trip, idle and connects/s scenarios only, to show what the load
 * generator can drive at all and what a Node socket costs by itself (latency, RSS per idle connection, CPU per connect).
 */
export const BROKER_NAMES: readonly BrokerName[] = ['ours', 'mosquitto', 'aedes', 'floor'];
/** The scenarios a broker takes part in (all of them unless listed). */
export const ONLY_SCENARIOS: Partial<Record<BrokerName, readonly string[]>> = { floor: ['rtt', 'idle', 'connect'] };

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';
/** Mosquitto settings that differ from its defaults, printed with the results. */
export const MOSQUITTO_SETTINGS = {
  max_queued_messages: 100_000,
  // Our broker's default Receive Maximum (in flight towards one client) is 100; Mosquitto's default is 20.
  max_inflight_messages: 100,
} as const;

export interface RunningBroker {
  name: BrokerName;
  pid: number;
  port: number;
  /**
   * The resident size of V8's young generation (servers/young-generation.ts): a Node broker's heap grows it once by
   * ~25 MB when thousands of connections arrive, which the idle row reports apart. 0 for Mosquitto (no such heap).
   */
  youngGeneration(): Promise<number>;
  stop(): Promise<void>;
}

export class BrokerUnavailable extends Error {}

const START_TIMEOUT_MS = 15_000;

export async function startBroker(name: BrokerName): Promise<RunningBroker> {
  if (name === 'mosquitto') return startMosquitto();
  const script = fileURLToPath(new URL(`./servers/${name}.ts`, import.meta.url));
  // Ours runs as `otalink broker` runs it (bin/ts-loader.js); the others as this process was started (tsx).
  const loader = name === 'ours' ? OTALINK_EXEC_ARGV : process.execArgv;
  const child = spawnGroup(process.execPath, [...loader, script, '0'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  try {
    const match = await waitForLine(child, /^(PORT (\d+)|UNAVAILABLE (.*))$/, START_TIMEOUT_MS);
    if (match[3] !== undefined) throw new BrokerUnavailable(match[3]);
    return running(name, child, Number(match[2]));
  } catch (error) {
    await stopChild(child);
    if (error instanceof BrokerUnavailable) throw error;
    throw new BrokerUnavailable(error instanceof Error ? error.message : String(error));
  }
}

async function startMosquitto(): Promise<RunningBroker> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'otalink-bench-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'set_tcp_nodelay true',
      `max_queued_messages ${MOSQUITTO_SETTINGS.max_queued_messages}`,
      `max_inflight_messages ${MOSQUITTO_SETTINGS.max_inflight_messages}`,
      'log_type error',
      'log_dest stderr',
      '',
    ].join('\n'),
  );
  const child = spawnGroup(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitUntilListening(child, port);
  } catch (error) {
    await stopChild(child);
    throw new BrokerUnavailable(error instanceof Error ? error.message : String(error));
  }
  return running('mosquitto', child, port);
}

function running(name: BrokerName, child: ChildProcess, port: number): RunningBroker {
  if (child.pid === undefined) throw new BrokerUnavailable('no pid');
  // Keep draining its output so a chatty broker never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  const youngGeneration = async (): Promise<number> => {
    if (name === 'mosquitto') return 0;
    const answer = waitForLine(child, /^YOUNG (\d+)$/, 5000);
    child.stdin?.write('young\n');
    return Number((await answer)[1]);
  };
  return { name, pid: child.pid, port, youngGeneration, stop: () => stopChild(child) };
}

/** Mosquitto prints nothing on start with log_type error, so poll its port. */
async function waitUntilListening(child: ChildProcess, port: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + START_TIMEOUT_MS;
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-1000);
  });
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${stderr.trim()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`mosquitto did not listen on ${port} within ${START_TIMEOUT_MS} ms`);
}

export function mosquittoVersion(): string {
  try {
    const out = execFileSync(MOSQUITTO_BIN, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /mosquitto version (\S+)/.exec(out)?.[1] ?? 'unknown';
  } catch (error) {
    // `mosquitto -h` exits non-zero but still prints its version.
    const out = (error as { stdout?: string }).stdout ?? '';
    return /mosquitto version (\S+)/.exec(out)?.[1] ?? 'not installed';
  }
}
