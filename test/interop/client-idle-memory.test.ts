// What an idle client keeps (connected over TCP, nothing in flight) is what every vehicle of a simulated fleet keeps,
// and bench:client's memory row holds it to ≤ 10 KB of heap. This pins it well below that: 500 clients against a
// real Mosquitto, heap after forced GC before and after, per client. Memory, not time: no load makes it flaky.
// It measured 11.7 KB here (9.5 KB at 10 000 in bench:client) while each connection kept a dozen closures (each
// with a ~0.25 KB property table under tsx's keepNames) and a socket whose `_events` had turned into a dictionary;
// 6.3-6.8 KB since.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, type MqttClient } from '../../packages/mqtt/src/client/index.js';
import { Mosquitto } from '../../packages/mqtt/test/client/mosquitto.js';
import { requireProgram } from '../support/system.js';

const CLIENTS = 500;
const LIMIT_BYTES = 8.5 * 1024;

function collector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    for (let i = 0; i < 4; i++) gc();
  };
}

test(`an idle TCP client keeps under ${LIMIT_BYTES / 1024} KB of heap (${CLIENTS} against Mosquitto)`, async (t) => {
  const binary = requireProgram(t, 'mosquitto');
  if (!binary) return;
  const settle = collector();
  const broker = await Mosquitto.start(binary);
  const clients: MqttClient[] = [];
  const options = { url: broker.url, protocolVersion: 5 as const, keepalive: 600, reconnect: false as const };
  try {
    // One first: what the first connection loads and compiles is not per client.
    clients.push(await connect(options));
    settle();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < CLIENTS; i += 50) {
      clients.push(...(await Promise.all(Array.from({ length: 50 }, () => connect(options)))));
    }
    await new Promise((r) => setTimeout(r, 200));
    settle();
    const perClient = (process.memoryUsage().heapUsed - before) / CLIENTS;
    t.diagnostic(`heap per idle client: ${Math.round(perClient)} B`);
    assert.ok(perClient < LIMIT_BYTES, `heap per idle client ${Math.round(perClient)} B`);
  } finally {
    await Promise.all(clients.map((c) => c.end({ force: true }).catch(() => {})));
    await broker.stop();
  }
});
