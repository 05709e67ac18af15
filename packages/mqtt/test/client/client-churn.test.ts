// A client in a vehicle keeps one MqttClient for months while coverage comes and goes: every lost line, reconnect,
// resubscribe and replay of what queued offline must leave nothing behind on that client, over TCP and over
// WebSocket (a relay in front of the fake broker). Here a persistent session's line is cut hundreds of times; each
// time a QoS 1 and a QoS 2 message are published while it is down (queued, then replayed), one of each once it is
// back, and a request's reply comes on a subscription made for it and undone (its stream ending). Between a
// snapshot after the warm-up and one after the churn, the heap may not hold more objects of any kind, nor more
// bytes, beyond noise (test/support/heap-census.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { assertHeapLevel, heapSnapshot } from '../../../../test/support/heap-census.js';
import { type ClientState, connect, type MqttClient } from '../../src/client/index.js';
import { FakeBroker } from './fake-broker.js';
import { webSocketRelay } from './ws-relay.js';

const WARM_UP = 60;
const ROUNDS = 400;

function until(client: MqttClient, state: ClientState): Promise<void> {
  if (client.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`client still ${client.state}, not ${state}, after 5 s`)), 5000);
    const onState = (s: ClientState) => {
      if (s !== state) return;
      clearTimeout(timer);
      client.off('state', onState);
      resolve();
    };
    client.on('state', onState);
  });
}

async function round(client: MqttClient, broker: FakeBroker, n: number): Promise<void> {
  const offline = until(client, 'reconnecting');
  broker.dropAll();
  await offline;
  const queued = [
    client.publish('tcu/status', 'offline', { qos: 1 }),
    client.publish('tcu/log', 'offline', { qos: 2 }),
  ];
  await until(client, 'connected');
  await Promise.all(queued);
  await client.publish('tcu/status', 'online', { qos: 1 });
  await client.publish('tcu/log', 'online', { qos: 2 });
  // A request and its reply on a topic of its own, read from the subscription's stream, which then ends.
  const topic = `tcu/reply/${n}`;
  const sub = await client.subscribe(topic, { qos: 1 });
  const replies = sub.messages();
  broker.latest!.send({ type: 'publish', topic, payload: new Uint8Array(8), qos: 0, retain: false, dup: false });
  assert.equal((await replies.next()).value?.topic, topic);
  await sub.unsubscribe();
  assert.equal((await replies.next()).done, true);
  broker.forget();
}

describe('client churn', () => {
  for (const transport of ['tcp', 'ws'] as const) {
    for (const version of [4, 5] as const) {
      test(`${transport}, MQTT ${version === 4 ? '3.1.1' : '5.0'}: ${ROUNDS} lost lines, reconnects and replays leave the heap level`, async () => {
        const broker = await FakeBroker.start();
        const relay = transport === 'ws' ? await webSocketRelay(broker) : undefined;
        const dir = mkdtempSync(join(tmpdir(), 'otalink-client-churn-'));
        const client = await connect({
          url: relay?.url ?? broker.url,
          protocolVersion: version,
          clientId: 'tcu',
          clean: false,
          properties: version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
          reconnect: { initialDelayMs: 1, maxDelayMs: 4, jitter: 'none' },
        });
        try {
          await client.subscribe('ota/tcu/#', { qos: 1 });
          for (let i = 0; i < WARM_UP; i++) await round(client, broker, i);
          const first = heapSnapshot(dir, 'after-warm-up');
          for (let i = WARM_UP; i < WARM_UP + ROUNDS; i++) await round(client, broker, i);
          assertHeapLevel(first, dir, ROUNDS, 'reconnects');
        } finally {
          await client.end({ force: true });
          await relay?.close();
          await broker.close();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});
