// The brokers a model run drives: ours in memory (on real or virtual time), ours on a durable store (which can also
// be restarted on the same port and data), and Mosquitto.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock } from 'node:test';
import { startBroker, type TestBroker } from '../../packages/broker/test/support/raw-client.js';
import { Mosquitto } from '../../packages/mqtt/test/client/mosquitto.js';
import type { ModelClock } from './run.js';

export interface ModelBroker {
  port: number;
  /** Present where the broker keeps its state across a restart. */
  restart?: () => Promise<void>;
  /** Present where the broker runs on virtual time. */
  clock?: ModelClock;
  close(): Promise<void>;
}

/**
 * Ours on virtual time, in memory or on a durable store (restarted now and then): node:test's mock timers stand in
 * for Date, setTimeout and setInterval in this process (the run itself waits by the real clock, real-time.ts) until
 * close(). The clock starts on a whole second, so that every deadline of a run that moves in whole seconds falls on
 * a tick of the broker's timer.
 */
export async function ourBrokerOnVirtualTime(durable = false): Promise<ModelBroker> {
  mock.timers.enable({ apis: ['Date', 'setTimeout', 'setInterval'], now: Math.ceil(Date.now() / 1000) * 1000 });
  const dataDir = durable ? mkdtempSync(join(tmpdir(), 'otalink-model-')) : undefined;
  let b: TestBroker;
  try {
    b = await startBroker({ sysIntervalSeconds: 1, dataDir });
  } catch (error) {
    mock.timers.reset();
    throw error;
  }
  const port = b.port;
  return {
    port,
    clock: { tick: (ms) => mock.timers.tick(ms), connected: (id) => b.broker.clients().includes(id) },
    restart: durable
      ? async () => {
          await b.close();
          b = await startBroker({
            dataDir,
            sysIntervalSeconds: 1,
            listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port }],
          });
        }
      : undefined,
    close: async () => {
      // Real timers again first: closing waits for connections by them.
      mock.timers.reset();
      await b.close();
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Ours in memory with a WebSocket listener only (subprotocol mqtt, path /mqtt). */
export async function ourWebSocketBroker(): Promise<ModelBroker> {
  const b = await startBroker({ sysIntervalSeconds: 1, listeners: [{ protocol: 'ws', host: '127.0.0.1', port: 0 }] });
  return { port: b.port, close: () => b.close() };
}

export async function ourBroker(durable: boolean): Promise<ModelBroker> {
  if (!durable) {
    const b = await startBroker({ sysIntervalSeconds: 1 });
    return { port: b.port, close: () => b.close() };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-model-'));
  let b: TestBroker = await startBroker({ dataDir, sysIntervalSeconds: 1 });
  const port = b.port;
  return {
    port,
    restart: async () => {
      await b.close();
      b = await startBroker({
        dataDir,
        sysIntervalSeconds: 1,
        listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port }],
      });
    },
    close: async () => {
      await b.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** With `persistence`, restart() stops it with SIGTERM (it saves its state) and runs it again on the same file. */
export async function mosquittoBroker(binary: string, persistence = false): Promise<ModelBroker> {
  const m = await Mosquitto.start(binary, { persistence });
  const restart = async () => {
    await m.kill('SIGTERM');
    await m.run();
  };
  return { port: m.port, restart: persistence ? restart : undefined, close: () => m.stop() };
}
