// Wills of clients connected when the broker was SIGKILLed: their connections ended without DISCONNECT, so their
// wills are published after the restart (MQTT-3.1.2-8), retained ones kept as retained; a 5.0 Will Delay Interval
// counts from the restart, and a client back within it cancels its will; a client that sent DISCONNECT has none.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { PublishPacket } from '@otalink/mqtt';
import { type BrokerChild, startChild } from './support/durable-child.js';
import { type ConnectOptions, connected, type RawClient, str, subscribe, text } from './support/raw-client.js';

const dir = mkdtempSync(join(tmpdir(), 'otalink-crash-wills-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function car(clientId: string, version: 4 | 5, willDelayInterval?: number): ConnectOptions {
  return {
    version,
    clientId,
    clean: version === 4,
    properties: version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
    will: {
      topic: `presence/${clientId}`,
      payload: text('offline'),
      qos: 1,
      retain: true,
      properties: willDelayInterval === undefined ? undefined : { willDelayInterval },
    },
  };
}

async function announce(client: RawClient, clientId: string): Promise<void> {
  client.send({
    type: 'publish',
    topic: `presence/${clientId}`,
    payload: text('online'),
    qos: 1,
    retain: true,
    dup: false,
    packetId: 1,
  });
  await client.expect('puback');
}

/** Publishes received (with `payload`, if given) until `count` topics arrived, acknowledging QoS 1. */
async function collect(
  client: RawClient,
  count: number,
  timeoutMs: number,
  payload?: string,
): Promise<Map<string, PublishPacket>> {
  const seen = new Map<string, PublishPacket>();
  while (seen.size < count) {
    const packet = await client.expect('publish', timeoutMs);
    if (packet.qos === 1) client.send({ type: 'puback', packetId: packet.packetId! });
    // A PUBACK the crash took before it was written means a redelivery of an 'online' (QoS 1 allows it).
    if (payload === undefined || str(packet.payload) === payload) seen.set(packet.topic, packet);
  }
  return seen;
}

test('17 wills of clients connected at a SIGKILL are published after the restart (3.1.1 at once, 5.0 after its delay from the restart, cancelled by a reconnect), retained', async () => {
  const dataDir = join(dir, 'state');
  const watcherOptions: ConnectOptions = {
    version: 5,
    clientId: 'watcher',
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  };
  let broker: BrokerChild = await startChild(dataDir);
  try {
    const watcher = await connected(broker.port, watcherOptions);
    await subscribe(watcher, 'presence/#', 1);
    const old = await connected(broker.port, car('car-311', 4));
    const v5 = await connected(broker.port, car('car-v5', 5, 1));
    const back = await connected(broker.port, car('car-back', 5, 30));
    for (const [client, id] of [
      [old, 'car-311'],
      [v5, 'car-v5'],
      [back, 'car-back'],
    ] as const) {
      await announce(client, id);
    }
    // car-gone leaves with DISCONNECT before the crash: no will, now or after the restart.
    const gone = await connected(broker.port, car('car-gone', 4));
    await announce(gone, 'car-gone');
    gone.send({ type: 'disconnect' });
    await gone.closedPromise;
    // The will's deletion has no acknowledgement of its own: a retained publish acknowledged after it proves it is
    // on disk (a commit covers every write issued before it). A kill inside that window may publish the will.
    old.send({ type: 'publish', topic: 'marker/x', payload: text('m'), qos: 1, retain: true, dup: false, packetId: 2 });
    await old.expect('puback');
    await collect(watcher, 4, 5000);

    broker.child.kill('SIGKILL');
    await broker.exited;
    const restarted = Date.now();
    broker = await startChild(dataDir);

    // car-back reconnects within its 30 s delay: its will is cancelled.
    const backAgain = await connected(broker.port, { ...car('car-back', 5, 30), clean: false });
    const watcherAgain = await connected(broker.port, { ...watcherOptions });
    const wills = await collect(watcherAgain, 2, 10_000, 'offline');
    assert.deepEqual([...wills.keys()].sort(), ['presence/car-311', 'presence/car-v5']);
    for (const will of wills.values()) assert.equal(str(will.payload), 'offline');
    const v5Will = wills.get('presence/car-v5')!;
    // Delivered to a subscriber, the retain flag is 1 only for retained messages sent on subscribe (5.0 RAP off).
    assert.equal(v5Will.retain, false);
    assert.ok(Date.now() - restarted >= 1000, 'the 1 s will delay did not count from the restart');

    const fresh = await connected(broker.port, { version: 4, clientId: 'fresh', clean: true });
    await subscribe(fresh, 'presence/#', 1);
    const retained = await collect(fresh, 4, 5000);
    assert.deepEqual(
      Object.fromEntries([...retained].map(([topic, packet]) => [topic, `${str(packet.payload)} ${packet.retain}`])),
      {
        'presence/car-311': 'offline true',
        'presence/car-v5': 'offline true',
        'presence/car-back': 'online true',
        'presence/car-gone': 'online true',
      },
    );
    const late = await collect(watcherAgain, 1, 600).catch(() => new Map<string, PublishPacket>());
    assert.ok(![...late.values()].some((p) => str(p.payload) === 'offline'), 'a cancelled will was published');
    backAgain.end();
    fresh.end();
    watcherAgain.end();
  } finally {
    broker.child.kill('SIGTERM');
    await broker.exited;
  }
});
