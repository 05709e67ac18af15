// The default file store (ClientOptions.store undefined): where it goes, when a client gets one, what it keeps
// across a restart, and the errors of a store it cannot open. The kill -9 of a process on its default store is in
// test/interop/client-mosquitto.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { MemoryStore, MqttClient, memoryTransport, openFileStore } from '../../src/client/index.js';
import { defaultStorePath } from '../../src/client/store/file-default.js';
import type { MqttError } from '../../src/codec/errors.js';
import type { PublishPacket } from '../../src/codec/packets.js';
import { FakeBroker } from './fake-broker.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('default store: its path', () => {
  test('the client id and the server, percent-encoded where a file name could not hold them', () => {
    assert.equal(
      defaultStorePath('veh-123', { host: '127.0.0.1', port: 1883 }, '/var/lib/tcu'),
      '/var/lib/tcu/veh-123@127.0.0.1_1883.log',
    );
    assert.equal(
      defaultStorePath('fleet/car 1*ü', { host: 'Broker.Example.COM', port: 8883 }, '/s'),
      '/s/fleet%2Fcar%201%2A%C3%BC@broker.example.com_8883.log',
    );
    assert.equal(defaultStorePath('..', { host: '::1', port: 1 }, '/s'), '/s/..@%3A%3A1_1.log');
    assert.equal(defaultStorePath('', { host: 'h', port: 1 }, '/s'), '/s/@h_1.log');
    // No MQTT string may hold an unpaired surrogate: encoded as U+FFFD, not thrown from the constructor.
    assert.equal(defaultStorePath('a\uD800', { host: 'h', port: 1 }, '/s'), '/s/a%EF%BF%BD@h_1.log');
  });

  test('an id with capitals ends in a hash of itself: a file system that ignores case still gets two files', () => {
    const server = { host: '127.0.0.1', port: 1883 };
    const upper = defaultStorePath('VIN123', server, '/s')!;
    assert.match(upper, /^\/s\/VIN123@127\.0\.0\.1_1883~[0-9a-f]{8}\.log$/);
    const lower = defaultStorePath('vin123', server, '/s')!;
    assert.equal(lower, '/s/vin123@127.0.0.1_1883.log');
    assert.notEqual(upper.toLowerCase(), lower.toLowerCase());
    assert.equal(upper, defaultStorePath('VIN123', server, '/s'), 'the same id gives the same file');
  });

  test('two WebSocket paths on one host and port are two servers; /mqtt (the default) adds nothing', () => {
    const at = (path: string) => defaultStorePath('c', { protocol: 'wss', host: 'gw', port: 443, path }, '/s');
    assert.equal(at('/mqtt'), '/s/c@gw_443.log');
    assert.equal(at('/tenant-a'), '/s/c@gw_443_%2Ftenant-a.log');
    assert.notEqual(at('/tenant-a'), at('/tenant-b'));
    assert.equal(
      defaultStorePath('c', { protocol: 'mqtt', host: 'gw', port: 1883, path: '/x' }, '/s'),
      '/s/c@gw_1883.log',
    );
  });

  test('a long client id is cut and ends in a hash: still one file, and one per id', () => {
    const server = { host: 'h', port: 1883 };
    const a = defaultStorePath(`${'x'.repeat(300)}a`, server, '/s')!;
    const b = defaultStorePath(`${'x'.repeat(300)}b`, server, '/s')!;
    const name = a.slice('/s/'.length);
    // With the lock's temporary file (~35 more), under ecryptfs's 143.
    assert.ok(name.length <= 100, `${name.length} characters`);
    assert.ok(!name.includes('/'));
    assert.notEqual(a, b);
    assert.equal(a, defaultStorePath(`${'x'.repeat(300)}a`, server, '/s'), 'the same id gives the same file');
    // The same id on another server is another session, so another file, even once cut.
    assert.notEqual(a, defaultStorePath(`${'x'.repeat(300)}a`, { host: 'h', port: 1884 }, '/s'));
  });

  test('a relative storeDir is taken from the working directory; no storeDir: $OTALINK_MQTT_STORE_DIR, else .otalink-mqtt', () => {
    const server = { host: 'h', port: 1 };
    assert.equal(defaultStorePath('c', server, 'state'), join(process.cwd(), 'state', 'c@h_1.log'));
    const saved = process.env.OTALINK_MQTT_STORE_DIR;
    try {
      process.env.OTALINK_MQTT_STORE_DIR = '/from/env';
      assert.equal(defaultStorePath('c', server, undefined), '/from/env/c@h_1.log');
      delete process.env.OTALINK_MQTT_STORE_DIR;
      assert.equal(defaultStorePath('c', server, undefined), join(process.cwd(), '.otalink-mqtt', 'c@h_1.log'));
      process.env.OTALINK_MQTT_STORE_DIR = '';
      assert.equal(defaultStorePath('c', server, undefined), join(process.cwd(), '.otalink-mqtt', 'c@h_1.log'));
    } finally {
      if (saved === undefined) delete process.env.OTALINK_MQTT_STORE_DIR;
      else process.env.OTALINK_MQTT_STORE_DIR = saved;
    }
  });
});

describe('default store: the client', () => {
  let dir: string;
  let broker: FakeBroker;
  const clients: MqttClient[] = [];
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'otalink-default-store-'));
    broker = await FakeBroker.start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end({ force: true });
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const open = async (options: Partial<ConstructorParameters<typeof MqttClient>[0] & object> = {}) => {
    const client = new MqttClient({ url: broker.url, reconnect: false, storeDir: dir, ...options });
    clients.push(client);
    await client.start();
    return client;
  };

  test('a client given a client id opens one for that id and server; a restart with the same id resends what was not acknowledged', async () => {
    broker.script.onPublish = () => 'ignore';
    const first = await open({ clientId: 'veh-1', clean: false });
    const expected = join(dir, `veh-1@127.0.0.1_${broker.port}.log`);
    assert.equal(first.storePath, expected);
    assert.ok(existsSync(expected));
    const outcome = first.publish('t/1', 'unacknowledged', { qos: 1 }).catch((e: MqttError) => e.code);
    const queued = first.publish('t/2', 'also', { qos: 2 }).catch((e: MqttError) => e.code);
    await broker.until(() => broker.publishes.length === 2);
    // A process that ends without its acks (as a SIGKILL would leave the file, the promises aside).
    await first.end({ force: true });
    assert.equal(await outcome, 'MQTT_ERR_CLIENT_CLOSED');
    assert.equal(await queued, 'MQTT_ERR_CLIENT_CLOSED');
    assert.equal((await readStore(expected)).length, 2, 'both kept on disk');

    broker.script.onPublish = () => 'ack';
    broker.publishes.length = 0;
    const second = await open({ clientId: 'veh-1', clean: false });
    assert.equal(second.storePath, expected);
    await broker.until(() => broker.publishes.length >= 2, 10_000, 'the resends');
    assert.deepEqual(
      broker.publishes.map((p) => [p.topic, text(p.payload), p.qos]),
      [
        ['t/1', 'unacknowledged', 1],
        ['t/2', 'also', 2],
      ],
    );
    await until(() => second.pendingCount.inflight === 0, 'the acks');
    await second.end();
    assert.deepEqual(await readStore(expected), [], 'acknowledged, so gone from the store');
  });

  test('a clean session keeps it too: what a killed run left goes again as new messages', async () => {
    broker.script.onPublish = () => 'ignore';
    const first = await open({ clientId: 'clean-1', protocolVersion: 4 });
    first.publish('t/clean', 'left', { qos: 1 }).catch(() => {});
    await broker.until(() => broker.publishes.length === 1);
    await first.end({ force: true });
    broker.script.onPublish = () => 'ack';
    broker.publishes.length = 0;
    const second = await open({ clientId: 'clean-1', protocolVersion: 4 });
    await broker.until(() => broker.publishes.length === 1, 10_000, 'the resend');
    const [resent] = broker.publishes;
    assert.deepEqual([resent!.topic, text(resent!.payload), resent!.dup], ['t/clean', 'left', false]);
    assert.equal(broker.connects.at(-1)!.clean, true);
    await until(() => second.pendingCount.inflight === 0, 'the ack');
  });

  test('another client id, or the same id on another server, is another store', async () => {
    const a = await open({ clientId: 'a' });
    const b = await open({ clientId: 'b' });
    const other = await FakeBroker.start();
    try {
      const a2 = await open({ clientId: 'a', url: other.url });
      assert.equal(new Set([a.storePath, b.storePath, a2.storePath]).size, 3);
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.log')).length, 3);
      await a2.end();
    } finally {
      await other.close();
    }
  });

  test('no default store without a client id (or with an empty one), with store: false, with a store of its own, or with a transport of its own', async () => {
    const anonymous = await open({});
    const assigned = await open({ clientId: '' });
    const off = await open({ clientId: 'off', store: false });
    const own = await open({ clientId: 'own', store: new MemoryStore() });
    for (const c of [anonymous, assigned, off, own]) assert.equal(c.storePath, undefined);
    const viaTransport = new MqttClient({
      clientId: 'in-process',
      storeDir: dir,
      reconnect: false,
      transport: memoryTransport(() => {}),
    });
    assert.equal(viaTransport.storePath, undefined);
    assert.deepEqual(readdirSync(dir), [], 'no file written');
  });

  test('a message published before start() goes after those a killed run left, and none is lost or overwritten', async () => {
    broker.script.onPublish = () => 'ignore';
    // One in flight, one still queued when the process ends.
    const first = await open({ clientId: 'early', clean: false, maxInflight: 1 });
    for (const payload of ['old-1', 'old-2']) first.publish('t', payload, { qos: 1 }).catch(() => {});
    await broker.until(() => broker.publishes.length === 1);
    await new Promise((r) => setTimeout(r, 20));
    await first.end({ force: true });
    assert.equal((await readStore(first.storePath!)).length, 2);

    broker.script.onPublish = () => 'ack';
    broker.publishes.length = 0;
    const second = new MqttClient({
      url: broker.url,
      reconnect: false,
      storeDir: dir,
      clientId: 'early',
      clean: false,
    });
    clients.push(second);
    // Numbered 1 in this process, as the killed run's first message was: it must neither take that one's record
    // nor go before it.
    const early = second.publish('t', 'new-1', { qos: 1 });
    await second.start();
    assert.equal((await early).reasonCode, 0);
    await until(() => second.pendingCount.inflight + second.pendingCount.queued === 0, 'the acks');
    assert.deepEqual(
      broker.publishes.map((p) => text(p.payload)),
      ['old-1', 'old-2', 'new-1'],
    );
    await second.end();
    assert.deepEqual(await readStore(second.storePath!), [], 'all three acknowledged, so gone');
  });

  test('a store of its own, the same: a message published before start() neither replaces a stored one nor goes twice', async () => {
    const store = new MemoryStore();
    const old = new TextEncoder().encode('old');
    store.put('out:1', { kind: 'outgoing', seq: 1, topic: 't', payload: old, qos: 1, retain: false, state: 'queued' });
    const client = new MqttClient({ url: broker.url, reconnect: false, clientId: 'own-store', store });
    clients.push(client);
    const early = client.publish('t', 'new', { qos: 1 });
    await client.start();
    assert.equal((await early).reasonCode, 0);
    await until(() => client.pendingCount.inflight + client.pendingCount.queued === 0, 'the acks');
    assert.deepEqual(
      broker.publishes.map((p) => text(p.payload)),
      ['old', 'new'],
    );
    assert.equal(store.size, 0);
  });

  test('end() while start() opens the store: start() rejects, nothing connects, the store is closed and free', async () => {
    const client = new MqttClient({ url: broker.url, reconnect: false, storeDir: dir, clientId: 'ending' });
    clients.push(client);
    const started = client.start();
    await client.end();
    await assert.rejects(started, { code: 'MQTT_ERR_CLIENT_CLOSED' });
    assert.equal(client.state, 'closed');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(broker.connects.length, 0, 'no CONNECT after end()');
    const again = await open({ clientId: 'ending' });
    assert.equal(again.state, 'connected', 'the lock was released');
    await assert.rejects(client.start(), { code: 'MQTT_ERR_INVALID_OPTION' });
  });

  test('a second client with the same id and server while the first runs: MQTT_ERR_STORE_LOCKED, with the way out, and the first goes on', async () => {
    const first = await open({ clientId: 'twin' });
    await assert.rejects(open({ clientId: 'twin' }), (err: MqttError) => {
      assert.equal(err.code, 'MQTT_ERR_STORE_LOCKED');
      assert.match(err.message, /twin@127\.0\.0\.1_\d+\.log is in use by process \d+/);
      assert.match(err.message, /the default store of client id 'twin'.*false for none/);
      return true;
    });
    assert.equal(broker.connects.length, 1, 'the refused client never connected');
    assert.equal((await first.publish('t', 'still here', { qos: 1 })).reasonCode, 0);
    await first.end();
    // Closed, the store is free again.
    const again = await open({ clientId: 'twin' });
    await again.end();
  });

  test('a store directory that cannot be made: connect() rejects with MQTT_ERR_STORE naming the path', async () => {
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, 'not a directory');
    await assert.rejects(open({ clientId: 'c', storeDir: join(blocker, 'stores') }), (err: MqttError) => {
      assert.equal(err.code, 'MQTT_ERR_STORE');
      assert.ok(err.message.includes(join(blocker, 'stores')), err.message);
      return true;
    });
    assert.equal(broker.connects.length, 0);
  });

  test('QoS 2 received on the default store is delivered once across a restart', async () => {
    const id = 'qos2-in';
    const command = (dup: boolean): PublishPacket => ({
      type: 'publish',
      topic: 'cmd',
      payload: new TextEncoder().encode('once'),
      qos: 2,
      retain: false,
      dup,
      packetId: 7,
    });
    const client = await open({ clientId: id, clean: false, protocolVersion: 4 });
    const got: string[] = [];
    client.on('message', (m) => got.push(text(m.payload)));
    const conn = broker.latest!;
    conn.send(command(false));
    await broker.until(() => conn.received.some((p) => p.type === 'pubrec'));
    // The PUBREL never comes: the process ends, and the server resends the PUBLISH (DUP) to the restarted one.
    await client.end({ force: true });
    assert.deepEqual(got, ['once']);
    broker.script.connack = () => ({ type: 'connack', sessionPresent: true, reasonCode: 0 });
    const restarted = await open({ clientId: id, clean: false, protocolVersion: 4 });
    const again: string[] = [];
    restarted.on('message', (m) => again.push(text(m.payload)));
    const conn2 = broker.latest!;
    conn2.send(command(true));
    await broker.until(() => conn2.received.some((p) => p.type === 'pubrec'));
    conn2.send({ type: 'pubrel', packetId: 7 });
    await broker.until(() => conn2.received.some((p) => p.type === 'pubcomp'));
    assert.deepEqual(again, [], 'not delivered a second time');
  });
});

async function readStore(path: string) {
  const store = await openFileStore(path);
  try {
    return await store.list();
  } finally {
    await store.close();
  }
}

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
