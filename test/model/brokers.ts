// The brokers a model run drives: ours in memory, ours on a durable store (which can also be restarted on the same
// port and data), and Mosquitto.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type TestBroker } from '../../packages/broker/test/support/raw-client.js';
import { Mosquitto } from '../../packages/mqtt/test/client/mosquitto.js';

export interface ModelBroker {
  port: number;
  /** Present where the broker keeps its state across a restart. */
  restart?: () => Promise<void>;
  close(): Promise<void>;
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
