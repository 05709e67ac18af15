// The runner's side of the generator processes: fork them (in their own process groups), send commands, await
// replies, and sum their counters.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnGroup, stopChild } from './proc.js';
import {
  addCounters,
  type Command,
  type Counters,
  emptyCounters,
  type Response,
  type StatsResult,
} from './protocol.js';

export class Generator {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (message: Response) => {
      const pending = this.waiting.get(message.id);
      if (pending === undefined) return;
      this.waiting.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(`${name}: ${message.error}`));
    });
    child.once('exit', (code, signal) => {
      for (const pending of this.waiting.values()) pending.reject(new Error(`${name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  request<T>(command: Command, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: ${command.cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ ...command, id });
    });
  }

  stop(): Promise<void> {
    return stopChild(this.child, 1000);
  }
}

export function startGenerators(count: number): Generator[] {
  const script = fileURLToPath(new URL('./worker.ts', import.meta.url));
  return Array.from({ length: count }, (_, i) => {
    const child = spawnGroup(process.execPath, [...process.execArgv, script], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Generator(`generator ${i + 1}`, child);
  });
}

/** Sum of every generator's counters for the groups named (all groups if none), and their CPU time so far. */
export async function totals(
  generators: readonly Generator[],
  groups?: readonly string[],
): Promise<Counters & { generatorCpuMs: number }> {
  const all = await Promise.all(generators.map((g) => g.request<StatsResult>({ cmd: 'stats' }, 5000)));
  let sum = emptyCounters();
  let generatorCpuMs = 0;
  for (const result of all) {
    generatorCpuMs += result.cpuMs;
    for (const [name, counters] of Object.entries(result.groups)) {
      if (groups === undefined || groups.includes(name)) sum = addCounters(sum, counters);
    }
  }
  return { ...sum, generatorCpuMs };
}

export async function closeAll(generators: readonly Generator[]): Promise<void> {
  await Promise.all(generators.map((g) => g.request({ cmd: 'close', timeoutMs: 5000 }, 8000)));
}
