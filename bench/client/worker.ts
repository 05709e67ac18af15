// One benchmark case in its own process: `worker.ts '<json CaseSpec>'`. Talks to the runner over the IPC
// channel (requests such as "kill the broker", and the result as the last message) and exits when the runner
// goes away, so no case outlives the benchmark.
import { connect as netConnect } from 'node:net';
import { encode } from '../../packages/mqtt/src/codec/encoder.js';
import { type BenchClient, type Lib, mqttjs, ours } from './libs.js';
import { cpuShare, processCpuSeconds } from './process-cpu.js';
import type { CaseResult, CaseSpec, RunnerReply, WorkerMessage } from './protocol.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as CaseSpec;
const lib: Lib = spec.lib === 'mqttjs' ? mqttjs : ours;
const payload = new Uint8Array(spec.payloadBytes ?? 64).fill(0x61);
const gc = (globalThis as { gc?: () => void }).gc;

process.on('disconnect', () => process.exit(2));

const replies = new Map<string, () => void>();
process.on('message', (m: RunnerReply) => {
  if (m.type === 'done') {
    replies.get(m.what)?.();
    replies.delete(m.what);
  }
});

function ask(what: WorkerMessage & { type: 'request' }): Promise<void> {
  return new Promise((resolve) => {
    replies.set(what.what, resolve);
    process.send?.(what);
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no end after ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Publishes `count` messages and resolves when all are acknowledged (QoS 0: when a QoS 1 fence behind them is). */
async function publishBatch(client: BenchClient, count: number, qos: 0 | 1 | 2, window: number): Promise<void> {
  const topic = 'bench/publish';
  if (qos === 0 || lib.selfWindowed) {
    const all: Promise<unknown>[] = new Array(count);
    for (let i = 0; i < count; i++) all[i] = client.publish(topic, payload, qos);
    await Promise.all(all);
  } else {
    // MQTT.js: the same window, kept from outside.
    let started = 0;
    const lane = async () => {
      while (started < count) {
        started++;
        await client.publish(topic, payload, qos);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
  }
  // Mosquitto handles a connection's packets in order: the fence's PUBACK means every QoS 0 message was read.
  if (qos === 0) await client.publish(topic, payload, 1);
}

async function publishCase(): Promise<CaseResult> {
  const s = spec;
  const client = await lib.connect({
    host: s.host,
    port: s.port,
    version: s.version,
    window: s.window,
    ...(s.storeDir === undefined ? {} : { storeDir: s.storeDir, clientId: `bench-publish-${lib.name}` }),
  });
  const rates: number[] = [];
  const cpuUs: number[] = [];
  const clientCpuPct: number[] = [];
  const brokerCpuPct: number[] = [];
  const brokerCpuUs: number[] = [];
  // Batches of `messages` until the round has lasted roundMs: both clients get the same time, not the same count,
  // so the faster one is not timed over a fraction of a second of its life (JIT and heap still settling).
  const round = async (what: string): Promise<number> => {
    const t0 = performance.now();
    let sent = 0;
    do {
      await within(publishBatch(client, s.messages, s.qos, s.window), 120_000, what);
      sent += s.messages;
    } while (performance.now() - t0 < (s.roundMs ?? 0));
    return sent;
  };
  try {
    await round('warm-up');
    for (let r = 0; r < s.rounds; r++) {
      const broker0 = processCpuSeconds(s.brokerPid);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const sent = await round('publish');
      const elapsedMs = performance.now() - t0;
      const brokerShare = cpuShare(s.brokerPid, broker0, elapsedMs);
      const cpu = cpuPerMessage(cpu0, sent);
      rates.push(sent / (elapsedMs / 1000));
      cpuUs.push(cpu);
      clientCpuPct.push((cpu * sent * 100) / (elapsedMs * 1000));
      if (brokerShare !== undefined) {
        brokerCpuPct.push(brokerShare);
        brokerCpuUs.push((brokerShare * elapsedMs * 10) / sent);
      }
    }
  } catch (err) {
    return { ok: false, error: explain(err, client), rates, serverReceiveMaximum: client.serverReceiveMaximum() };
  }
  const failure = client.failure();
  await client.end(true);
  return {
    ok: failure === undefined,
    error: failure,
    rates,
    cpuUs,
    clientCpuPct,
    brokerCpuPct,
    brokerCpuUs,
    serverReceiveMaximum: client.serverReceiveMaximum(),
  };
}

async function receiveCase(): Promise<CaseResult> {
  const s = spec;
  const client = await lib.connect({ host: s.host, port: s.port, version: s.version, window: s.window });
  let received = 0;
  let first = 0;
  let last = 0;
  let resolveAll = () => {};
  const all = new Promise<void>((resolve) => {
    resolveAll = resolve;
  });
  client.onMessage(() => {
    const now = performance.now();
    if (received === 0) first = now;
    last = now;
    if (++received === s.messages) resolveAll();
  });
  await client.subscribe('bench/flood', 0);
  const cpu0 = process.cpuUsage();
  const flooded = ask({ type: 'request', what: 'flood' });
  // Mosquitto may drop QoS 0 messages it cannot queue: stop when all arrived or the stream went quiet.
  await Promise.race([
    all,
    (async () => {
      await flooded;
      for (;;) {
        const seen = received;
        await new Promise((r) => setTimeout(r, 2000));
        if (received === seen) return;
      }
    })(),
  ]);
  const cpu = cpuPerMessage(cpu0, Math.max(1, received));
  await client.end(true);
  const rate = received > 1 ? (received - 1) / ((last - first) / 1000) : 0;
  return { ok: true, rates: [rate], cpuUs: [cpu], received, sent: s.messages };
}

async function memoryCase(): Promise<CaseResult> {
  const s = spec;
  const hosts = s.hosts ?? [s.host];
  // The library's own client objects in a preallocated array: nothing of the benchmark's grows per client.
  const clients: unknown[] = new Array(s.clients).fill(undefined);
  const idle = { port: s.port, version: s.version, window: s.window, keepalive: 600 } as const;
  // One client first: module-level state (lazy imports, JIT) is not per-client cost.
  const warm = await lib.connectIdle({ ...idle, host: s.host });
  settle();
  const before = process.memoryUsage();
  let next = 0;
  const lane = async () => {
    while (next < s.clients) {
      const i = next++;
      clients[i] = await lib.connectIdle({ ...idle, host: hosts[i % hosts.length] ?? s.host });
    }
  };
  await within(Promise.all(Array.from({ length: s.batch ?? 200 }, lane)), 300_000, 'connecting clients');
  await new Promise((r) => setTimeout(r, 1000));
  settle();
  const after = process.memoryUsage();
  const heapPerClient = (after.heapUsed - before.heapUsed) / s.clients;
  const rssPerClient = (after.rss - before.rss) / s.clients;
  await Promise.all([warm, ...clients].map((c) => lib.endIdle(c)));
  return { ok: true, rates: [], heapPerClient, rssPerClient, clients: clients.length };
}

function settle(): void {
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
}

async function drainCase(): Promise<CaseResult> {
  const s = spec;
  const client = await lib.connect({
    host: s.host,
    port: s.port,
    version: s.version,
    window: s.window,
    clientId: `bench-drain-${lib.name}`,
    clean: false,
    reconnectMs: 100,
    ...(s.storeDir === undefined ? {} : { storeDir: s.storeDir }),
  });
  const offline = new Promise<void>((resolve) => client.onOffline(resolve));
  await ask({ type: 'request', what: 'kill-broker' });
  await within(offline, 10_000, 'going offline');
  const cpu0 = process.cpuUsage();
  const all: Promise<unknown>[] = new Array(s.messages);
  for (let i = 0; i < s.messages; i++) all[i] = client.publish('bench/drain', payload, 1);
  const settled = Promise.all(all);
  settled.catch(() => {});
  let reconnectedAt = 0;
  client.onConnack(() => {
    if (reconnectedAt === 0) {
      reconnectedAt = performance.now();
      client.resetFailure();
    }
  });
  await ask({ type: 'request', what: 'start-broker' });
  try {
    await within(settled, 120_000, 'drain');
  } catch (err) {
    return { ok: false, error: explain(err, client), rates: [] };
  }
  const done = performance.now();
  const cpu = cpuPerMessage(cpu0, s.messages);
  const failure = client.failure();
  await client.end(true);
  return {
    ok: failure === undefined,
    error: failure,
    rates: [s.messages / ((done - reconnectedAt) / 1000)],
    cpuUs: [cpu],
    serverReceiveMaximum: client.serverReceiveMaximum(),
  };
}

/** The flood publisher for the receive case: pre-encoded 3.1.1 QoS 0 frames, written as fast as the socket takes them. */
async function floodCase(): Promise<CaseResult> {
  const s = spec;
  const socket = netConnect({ host: s.host, port: s.port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(encode({ type: 'connect', protocolVersion: 4, clientId: 'bench-flood', clean: true, keepalive: 60 }, 4));
  const frame = encode({ type: 'publish', topic: 'bench/flood', payload, qos: 0, retain: false, dup: false }, 4);
  const perChunk = 256;
  const chunk = new Uint8Array(frame.length * perChunk);
  for (let i = 0; i < perChunk; i++) chunk.set(frame, i * frame.length);
  let sent = 0;
  while (sent < s.messages) {
    const n = Math.min(perChunk, s.messages - sent);
    const ok = socket.write(n === perChunk ? chunk : chunk.subarray(0, n * frame.length));
    sent += n;
    if (!ok) await new Promise((r) => socket.once('drain', r));
  }
  socket.end(encode({ type: 'disconnect' }, 4));
  await new Promise((r) => socket.once('close', r));
  return { ok: true, rates: [], sent };
}

/** This process's CPU time (all threads: GC and JIT count) per message since `start`, in µs. */
function cpuPerMessage(start: NodeJS.CpuUsage, messages: number): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / messages;
}

function explain(err: unknown, client: BenchClient): string {
  const message = err instanceof Error ? err.message : String(err);
  const failure = client.failure();
  return failure !== undefined && failure !== message ? `${failure} (${message})` : message;
}

const cases: Record<CaseSpec['scenario'], () => Promise<CaseResult>> = {
  publish: publishCase,
  receive: receiveCase,
  memory: memoryCase,
  drain: drainCase,
  flood: floodCase,
};

cases[spec.scenario]().then(
  (result) => {
    process.send?.({ type: 'result', result } satisfies WorkerMessage, () => process.exit(0));
  },
  (err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    process.send?.({ type: 'result', result: { ok: false, error, rates: [] } } satisfies WorkerMessage, () =>
      process.exit(0),
    );
  },
);
