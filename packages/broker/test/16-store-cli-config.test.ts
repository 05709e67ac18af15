// The durable store from the outside: config keys (data_dir, store_sync, store_reserve) and
// `otalink broker --data-dir DIR` keeping a persistent session and its queued message across a restart, or failing
// with BROKER_ERR_STORE when the directory cannot be used, or BROKER_ERR_STORE_LOCKED while another broker uses it
// (until that one is SIGKILLed: its lock is then stale).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createBroker, loadBrokerConfig } from '../src/index.js';
import { connectClient, connected, str, subscribe, text } from './support/raw-client.js';

const root = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'otalink-store-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Started {
  const child = spawn(process.execPath, [join(root, 'bin/otalink.js'), 'broker', ...args], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '' },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdout?.resume();
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(guard);
      resolve(code);
    });
  });
  return { child, stderr: () => stderr, exited };
}

async function port(started: Started): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const match = /mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(started.stderr());
    if (match !== null) return Number(match[1]);
    if (started.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the broker did not start:\n${started.stderr()}`);
}

describe('16 durable store: config file and CLI', () => {
  test('data_dir, store_sync and store_reserve reach the broker options', async () => {
    const file = join(dir, 'broker.conf');
    writeFileSync(file, 'data_dir ./state\nstore_sync none\nstore_reserve 1048576\nallow_anonymous true\n');
    const options = await loadBrokerConfig(file);
    assert.equal(options.dataDir, join(dir, 'state'));
    assert.deepEqual(options.storeOptions, { sync: 'none', reserveBytes: 1_048_576 });
    writeFileSync(file, 'store_sync sometimes\n');
    await assert.rejects(loadBrokerConfig(file), /store_sync/);
  });

  test('otalink broker --data-dir keeps a persistent session and its queued message across a restart', async () => {
    const dataDir = join(dir, 'cli-state');
    const args = ['--host', '127.0.0.1', '--port', '0', '--allow-anonymous', '--data-dir', dataDir];
    const first = start(args);
    try {
      const p = await port(first);
      assert.doesNotMatch(first.stderr(), /kept in memory/);
      const vehicle = await connected(p, { version: 4, clientId: 'cli-vehicle', clean: false });
      await subscribe(vehicle, 'cmd/cli-vehicle', 1);
      vehicle.send({ type: 'disconnect' });
      await vehicle.closedPromise;
      const backend = await connected(p, { version: 4, clientId: 'cli-backend' });
      backend.send({
        type: 'publish',
        topic: 'cmd/cli-vehicle',
        payload: text('reboot'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await backend.expect('puback');
      backend.end();
    } finally {
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
    }
    const second = start(args);
    try {
      const p = await port(second);
      const { client, connack } = await connectClient(p, { version: 4, clientId: 'cli-vehicle', clean: false });
      assert.equal(connack.sessionPresent, true);
      assert.equal(str((await client.expect('publish')).payload), 'reboot');
      client.end();
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  test('an unusable --data-dir stops start-up with BROKER_ERR_STORE and the path', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    const bad = join(file, 'state');
    const started = start(['--host', '127.0.0.1', '--port', '0', '--allow-anonymous', '--data-dir', bad]);
    assert.equal(await started.exited, 1);
    assert.match(started.stderr(), /BROKER_ERR_STORE/);
    assert.ok(started.stderr().includes(bad), started.stderr());
  });

  test('a second broker on the same --data-dir fails with BROKER_ERR_STORE_LOCKED and the lock path, touching nothing; a SIGKILLed one does not block the restart', async () => {
    const dataDir = join(dir, 'locked-state');
    const args = ['--host', '127.0.0.1', '--port', '0', '--allow-anonymous', '--data-dir', dataDir];
    const lockPath = join(dataDir, 'broker.lock');
    const files = () =>
      readdirSync(dataDir)
        .sort()
        .map((name) => {
          const stats = statSync(join(dataDir, name));
          // The lock's holder touches it every few seconds (its heartbeat): its content is what must not change.
          if (name === 'broker.lock') return `${name} ${readFileSync(join(dataDir, name), 'utf8')}`;
          return `${name} ${stats.size} ${stats.mtimeMs}`;
        });
    const first = start(args);
    let firstKilled = false;
    try {
      const p = await port(first);
      const vehicle = await connected(p, { version: 4, clientId: 'lock-vehicle', clean: false });
      await subscribe(vehicle, 'cmd/lock-vehicle', 1);
      vehicle.end();
      const backend = await connected(p, { version: 4, clientId: 'lock-backend' });
      backend.send({
        type: 'publish',
        topic: 'cmd/lock-vehicle',
        payload: text('stay'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await backend.expect('puback');
      backend.end();
      assert.equal(JSON.parse(readFileSync(lockPath, 'utf8')).pid, first.child.pid);
      const before = files();

      const second = start(args);
      assert.equal(await second.exited, 1);
      assert.match(second.stderr(), /BROKER_ERR_STORE_LOCKED/);
      assert.ok(second.stderr().includes(lockPath), second.stderr());
      assert.ok(second.stderr().includes(`process ${first.child.pid}`), second.stderr());
      // Embedded in a process of its own too.
      const embedded = createBroker({
        listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
        dataDir,
        sysIntervalSeconds: 0,
      });
      await assert.rejects(
        embedded.listen(),
        (error: Error & { code?: string }) => error.code === 'BROKER_ERR_STORE_LOCKED',
      );
      await embedded.close();
      assert.deepEqual(files(), before, 'the refused brokers changed the data directory');

      first.child.kill('SIGKILL');
      firstKilled = true;
      await first.exited;
      assert.ok(readdirSync(dataDir).includes('broker.lock'), 'kill -9 left its lock file behind');
    } finally {
      if (!firstKilled) {
        first.child.kill('SIGKILL');
        await first.exited;
      }
    }
    const third = start(args);
    try {
      const p = await port(third);
      assert.match(third.stderr(), /took over the lock/);
      const { client, connack } = await connectClient(p, { version: 4, clientId: 'lock-vehicle', clean: false });
      assert.equal(connack.sessionPresent, true);
      assert.equal(str((await client.expect('publish')).payload), 'stay');
      client.end();
      assert.equal(JSON.parse(readFileSync(lockPath, 'utf8')).pid, third.child.pid);
    } finally {
      third.child.kill('SIGTERM');
      assert.equal(await third.exited, 0);
    }
    assert.ok(!readdirSync(dataDir).includes('broker.lock'), 'a clean shutdown removes its lock');
  });
});
