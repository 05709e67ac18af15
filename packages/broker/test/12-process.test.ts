// The black-box form: the broker in its own process (test/support/broker-process.ts), driven only through its
// socket; graceful shutdown on SIGTERM sends 5.0 clients DISCONNECT 0x8B.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connected, str, subscribe, text } from './support/raw-client.js';

const script = fileURLToPath(new URL('./support/broker-process.ts', import.meta.url));

describe('12 broker process, black box', () => {
  let child: ChildProcess;
  let port = 0;
  before(async () => {
    child = spawn(
      process.execPath,
      ['--import', 'tsx', script, JSON.stringify({ limits: { maxQueuedMessages: 10 } })],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout!.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the broker process did not start')), 20_000);
      child.stdout!.on('data', (chunk: string) => {
        out += chunk;
        const line = out.split('\n')[0];
        if (out.includes('\n') && line !== undefined) {
          port = (JSON.parse(line) as { port: number }).port;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', () => reject(new Error('the broker process exited')));
    });
  });
  after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  for (const version of [4, 5] as const) {
    test(`MQTT ${version}: QoS 1 publish/subscribe, retained and will through the process`, async () => {
      const sub = await connected(port, { version, clientId: `p-sub-${version}` });
      await subscribe(sub, `proc${version}/#`, 1);
      const pub = await connected(port, {
        version,
        clientId: `p-pub-${version}`,
        will: { topic: `proc${version}/will`, payload: text('bye'), qos: 1, retain: false },
      });
      pub.send({
        type: 'publish',
        topic: `proc${version}/a`,
        payload: text('one'),
        qos: 1,
        retain: true,
        dup: false,
        packetId: 1,
      });
      await pub.expect('puback');
      const m = await sub.expect('publish');
      assert.equal(str(m.payload), 'one');
      sub.send({ type: 'puback', packetId: m.packetId! });
      pub.end();
      const will = await sub.expect('publish');
      assert.equal(will.topic, `proc${version}/will`);
      sub.send({ type: 'puback', packetId: will.packetId! });
      const late = await connected(port, { version, clientId: `p-late-${version}` });
      await subscribe(late, `proc${version}/a`, 0);
      assert.equal((await late.expect('publish')).retain, true);
      sub.end();
      late.end();
    });
  }

  test('$SYS topics are published', async () => {
    const sys = await connected(port, { version: 4, clientId: 'p-sys' });
    await subscribe(sys, '$SYS/broker/clients/connected', 0);
    // Published every second by the child process: bounded for a loaded machine, not for speed.
    const m = await sys.expect('publish', 10_000);
    assert.match(str(m.payload), /^\d+$/);
    sys.end();
  });

  test('SIGTERM: 5.0 clients get DISCONNECT 0x8B, 3.1.1 clients a close, and the process exits 0', async () => {
    const v5 = await connected(port, { version: 5, clientId: 'p-v5' });
    const v4 = await connected(port, { version: 4, clientId: 'p-v4' });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const packets = await v5.expectClose(10_000);
    assert.deepEqual(
      packets.map((p) => p.type === 'disconnect' && p.reasonCode),
      [0x8b],
    );
    assert.deepEqual(await v4.expectClose(10_000), []);
    const [code] = await exited;
    assert.equal(code, 0);
  });
});
