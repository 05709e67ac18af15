import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, MqttClient } from '../../src/client/index.js';
import { MemoryStore } from '../../src/client/store/memory-store.js';
import type { PublishPacket } from '../../src/codec/packets.js';
import { FakeBroker } from './fake-broker.js';
import { ImpairingProxy } from './proxy.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('client lifecycle', () => {
  test('a persistent session backlog sent right behind CONNACK reaches the first consumer', async () => {
    const broker = await FakeBroker.start({
      connack: (_c, _present, conn) => {
        conn.send({ type: 'connack', sessionPresent: true, reasonCode: 0 });
        for (let i = 0; i < 3; i++) {
          const p: PublishPacket = {
            type: 'publish',
            topic: 'backlog',
            payload: new TextEncoder().encode(`b${i}`),
            qos: 1,
            retain: false,
            dup: false,
            packetId: i + 1,
          };
          conn.send(p);
        }
        return null;
      },
    });
    try {
      const client = await connect({ url: broker.url, clientId: 'backlog', clean: false, reconnect: false });
      await broker.until(() => broker.latest!.received.filter((p) => p.type === 'puback').length === 3);
      const got: string[] = [];
      client.on('message', (m) => got.push(text(m.payload)));
      await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['b0', 'b1', 'b2']);
      await client.end();
    } finally {
      await broker.close();
    }
  });

  test('messages published before start() go out once connected; state events in order', async () => {
    const broker = await FakeBroker.start();
    try {
      const client = new MqttClient({ url: broker.url, reconnect: false });
      const states: string[] = [];
      client.on('state', (s) => states.push(s));
      const early = client.publish('early', 'e', { qos: 1 });
      await client.start();
      assert.equal((await early).reasonCode, 0);
      await client.end();
      assert.deepEqual(states, ['connecting', 'connected', 'closed']);
      await assert.rejects(client.publish('late', 'x'), { code: 'MQTT_ERR_CLIENT_CLOSED' });
    } finally {
      await broker.close();
    }
  });

  test('retryFirstConnect: a client started out of reach resolves, queues, and connects when it can', async () => {
    const broker = await FakeBroker.start();
    const proxy = await ImpairingProxy.start(broker.port);
    proxy.mode = 'stall'; // no CONNACK comes back: every attempt times out
    const options = { url: proxy.url, connectTimeoutMs: 150, reconnect: { initialDelayMs: 20, maxDelayMs: 50 } };
    try {
      await assert.rejects(
        connect(options),
        { code: 'MQTT_ERR_TIMEOUT' },
        'without the option the first failure rejects',
      );
      const client = await connect({ ...options, retryFirstConnect: true });
      const errors: string[] = [];
      client.on('error', (e) => errors.push((e as { code?: string }).code ?? e.message));
      assert.notEqual(client.state, 'connected');
      const sent = client.publish('queued', 'q', { qos: 1 });
      await broker.until(() => errors.length >= 2); // it keeps trying, reporting each failure
      proxy.mode = 'pass';
      assert.equal((await sent).reasonCode, 0);
      assert.equal(client.state, 'connected');
      assert.ok(broker.delivered.some((p) => text(p.payload) === 'q'));
      await client.end();
    } finally {
      await proxy.close();
      await broker.close();
    }
  });

  test('a message queued offline fails when its Message Expiry Interval runs out, not when the line comes back', async () => {
    const broker = await FakeBroker.start();
    const proxy = await ImpairingProxy.start(broker.port);
    proxy.mode = 'stall';
    try {
      const client = await connect({
        url: proxy.url,
        connectTimeoutMs: 150,
        reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
        retryFirstConnect: true,
      });
      client.on('error', () => {});
      const queuedAt = Date.now();
      const short = client.publish('expiring', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
      const long = client.publish('expiring', 'long', { qos: 1, properties: { messageExpiryInterval: 3600 } });
      await assert.rejects(short, { code: 'MQTT_ERR_MESSAGE_EXPIRED' });
      const waited = Date.now() - queuedAt;
      assert.ok(waited >= 990, `failed after ${waited} ms, before its second ran out`);
      assert.notEqual(client.state, 'connected', 'still offline: failed by its own deadline');
      proxy.mode = 'pass';
      assert.equal((await long).reasonCode, 0);
      assert.deepEqual(
        broker.delivered.map((p) => text(p.payload)),
        ['long'],
      );
      await client.end();
    } finally {
      await proxy.close();
      await broker.close();
    }
  });

  test('the backoff grows when every connection ends at once (a twin taking the session): delays start again only after one lasted', async () => {
    const broker = await FakeBroker.start({
      connack: (_c, present, conn) => {
        setImmediate(() => conn.send({ type: 'disconnect', reasonCode: 0x8e }));
        return { type: 'connack', sessionPresent: present, reasonCode: 0 };
      },
    });
    const delays: number[] = [];
    const client = await connect({
      url: broker.url,
      clientId: 'twin',
      clean: false,
      random: () => 0.999,
      reconnect: { initialDelayMs: 20, maxDelayMs: 5000 },
    });
    client.on('reconnecting', (info) => delays.push(Math.round(info.delayMs)));
    try {
      await broker.until(() => delays.length >= 5, 5000, 'five reconnects');
      // Without growth two clients with one id take the session from each other twice a second, for ever.
      assert.ok(delays[4]! > delays[0]! * 4, `delays ${delays.join(', ')} ms`);
    } finally {
      await client.end({ force: true });
      await broker.close();
    }
  });

  test('end() during the connect attempt closes cleanly and rejects connect()', async () => {
    const broker = await FakeBroker.start({ connack: () => null });
    try {
      const client = new MqttClient({ url: broker.url, reconnect: false });
      const started = client.start().then(
        () => 'connected',
        (e: { code?: string }) => e.code,
      );
      await broker.until(() => broker.connects.length === 1);
      await client.end();
      assert.equal(await started, 'MQTT_ERR_CLIENT_CLOSED');
      assert.equal(client.state, 'closed');
    } finally {
      await broker.close();
    }
  });

  test('with reconnect disabled, a dropped line closes the client with the reason', async () => {
    const broker = await FakeBroker.start();
    try {
      const client = await connect({ url: broker.url, reconnect: false });
      const closed = new Promise<Error | undefined>((resolve) => client.once('closed', resolve));
      const iterator = client.messages();
      broker.dropAll();
      const reason = await closed;
      assert.equal((reason as { code?: string } | undefined)?.code, 'MQTT_ERR_CONNECTION_CLOSED');
      assert.equal((await iterator.next()).done, true, 'iterators end when the client closes');
    } finally {
      await broker.close();
    }
  });

  test('a client that ended is garbage at once: the limit on the wait for the peer FIN ends with the line', async () => {
    const broker = await FakeBroker.start();
    try {
      // end() half-closes and gives the peer 2 s to close its side. That timer held the socket, and through it the
      // whole client, for those 2 s after the line had closed: a fleet simulator or backend that ends thousands of
      // clients a second kept seconds' worth of them.
      const ended = async (): Promise<WeakRef<MqttClient>> => {
        const client = await connect({ url: broker.url, reconnect: false });
        await client.publish('t', 'x', { qos: 1 });
        await client.end();
        return new WeakRef(client);
      };
      const ref = await ended();
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      assert.equal(ref.deref(), undefined, 'nothing holds the client once end() has resolved');
    } finally {
      await broker.close();
    }
  });
});

test('restored messages beyond the queue limit are reported to an error listener attached after await connect()', async () => {
  const broker = await FakeBroker.start({ onPublish: () => 'ignore' });
  const store = new MemoryStore();
  try {
    // A window of one: one message in flight, nine queued behind it.
    const first = await connect({ url: broker.url, clientId: 'restored', clean: false, store, maxInflight: 1 });
    for (let i = 0; i < 10; i++) first.publish('t', `m${i}`, { qos: 1 }).catch(() => {});
    await broker.until(() => broker.publishes.length === 1);
    await first.end({ force: true });
    assert.equal((await store.list()).length, 10);
    const second = await connect({ url: broker.url, clientId: 'restored', clean: false, store, queue: { limit: 3 } });
    // Listening only now, as an application using connect() does: the restore ran inside it.
    const errors: string[] = [];
    second.on('error', (e) => errors.push((e as { code?: string }).code ?? e.message));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(errors, Array(6).fill('MQTT_ERR_QUEUE_FULL'));
    await second.end({ force: true });
  } finally {
    await broker.close();
  }
});
