// The client on a file store when the disk fails it, and when the application reuses a payload buffer: what the
// store keeps must be what was published, and a failed write is reported, never thrown at the process.
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/client/index.js';
import { FileStore } from '../../src/client/store/file-store.js';
import type { OutgoingRecord } from '../../src/session/records.js';
import { FakeBroker } from './fake-broker.js';

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

test('a QoS 2 batch that fails (disk full) while an earlier one waits for its flush is reported, not an unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  const realSync = fs.fdatasync;
  const realWrite = fs.writeSync;
  let held: Array<() => void> | undefined;
  let full = false;
  const mutable = fs as unknown as Record<string, unknown>;
  mutable.fdatasync = (fd: number, cb: (err: Error | null) => void) => {
    if (held !== undefined) held.push(() => realSync(fd, cb));
    else realSync(fd, cb);
  };
  mutable.writeSync = (...args: unknown[]) => {
    if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (realWrite as (...a: unknown[]) => number)(...args);
  };
  const broker = await FakeBroker.start({ onPublish: () => 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'otalink-store-fail-'));
  try {
    const client = await connect({
      url: broker.url,
      clientId: 'full',
      clean: false,
      store: FileStore.open(join(dir, 's.log')),
      reconnect: false,
    });
    const errors: Error[] = [];
    client.on('error', (err) => errors.push(err));
    held = [];
    const first = client.publish('a', 'first', { qos: 2 });
    first.catch(() => {});
    await turns(2);
    assert.equal(held.length, 1, "the first batch's flush is running");
    full = true;
    const second = client.publish('b', 'second', { qos: 2 });
    second.catch(() => {});
    await turns(2);
    full = false;
    await new Promise((r) => setTimeout(r, 20));
    for (const go of held.splice(0)) go();
    held = undefined;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, []);
    assert.ok(
      errors.some((e) => (e as { code?: string }).code === 'MQTT_ERR_STORE'),
      `the failed write is reported: ${errors.map((e) => e.message)}`,
    );
    await client.end({ force: true });
  } finally {
    mutable.fdatasync = realSync;
    mutable.writeSync = realWrite;
    process.off('unhandledRejection', onUnhandled);
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a payload buffer reused right after publish(): the store and every resend keep the bytes published', async () => {
  const broker = await FakeBroker.start({ onPublish: () => 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'otalink-store-reuse-'));
  const path = join(dir, 's.log');
  try {
    const client = await connect({ url: broker.url, clientId: 'reuse', clean: false, store: FileStore.open(path) });
    const buf = Buffer.alloc(4);
    for (let i = 1; i <= 3; i++) {
      buf.writeUInt32BE(i);
      client.publish('reading', buf, { qos: 1 }).catch(() => {});
    }
    buf.writeUInt32BE(0xdead);
    await broker.until(() => broker.publishes.length === 3);
    await new Promise((r) => setTimeout(r, 30));
    // What a SIGKILL now leaves, as a restart would read it.
    fs.copyFileSync(path, `${path}.killed`);
    const stored = FileStore.open(`${path}.killed`);
    const payloads = stored
      .list()
      .map((r) => Buffer.from((r as OutgoingRecord).payload).readUInt32BE(0))
      .sort();
    await stored.close();
    assert.deepEqual(
      broker.publishes.map((p) => Buffer.from(p.payload).readUInt32BE(0)),
      [1, 2, 3],
    );
    assert.deepEqual(payloads, [1, 2, 3]);
    // And the resend of an unacknowledged message after the line drops.
    buf.writeUInt32BE(0xbeef);
    broker.dropAll();
    await broker.until(() => broker.publishes.length === 6);
    assert.deepEqual(
      broker.publishes.slice(3).map((p) => Buffer.from(p.payload).readUInt32BE(0)),
      [1, 2, 3],
    );
    await client.end({ force: true });
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a QoS 0 payload buffer reused right after publish(): sent as published behind a stored message, and offline', async () => {
  const broker = await FakeBroker.start({});
  const dir = mkdtempSync(join(tmpdir(), 'otalink-store-reuse0-'));
  try {
    const client = await connect({
      url: broker.url,
      clientId: 'reuse0',
      clean: false,
      store: FileStore.open(join(dir, 's.log')),
      reconnect: { initialDelayMs: 20, maxDelayMs: 20 },
    });
    const buf = Buffer.alloc(4);
    // Behind a QoS 2 message: its bytes wait for the store's flush before they go.
    buf.writeUInt32BE(1);
    client.publish('reading', buf, { qos: 2 }).catch(() => {});
    buf.writeUInt32BE(2);
    const behind = client.publish('reading', buf, { qos: 0 });
    buf.writeUInt32BE(0xdead);
    await behind;
    await broker.until(() => broker.publishes.length === 2);
    // Offline: queued until the line is back.
    const offline = new Promise((r) => client.once('offline', r));
    broker.dropAll();
    await offline;
    buf.writeUInt32BE(3);
    const queued = client.publish('reading', buf, { qos: 0 });
    buf.writeUInt32BE(0xbeef);
    await queued;
    await broker.until(() => broker.publishes.some((p) => p.qos === 0 && p !== broker.publishes[1]));
    assert.deepEqual(
      broker.publishes.filter((p) => p.qos === 0).map((p) => Buffer.from(p.payload).readUInt32BE(0)),
      [2, 3],
    );
    await client.end({ force: true });
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
