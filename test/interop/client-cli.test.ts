// `otalink pub` and `otalink sub` against Mosquitto, next to mosquitto_pub and mosquitto_sub.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { runPub } from '../../packages/cli/src/commands/pub.js';
import { runSub } from '../../packages/cli/src/commands/sub.js';
import { Mosquitto } from '../../packages/mqtt/test/client/mosquitto.js';
import { requireProgram } from '../support/system.js';

function captureIo(stdinText = '') {
  const stdin = new PassThrough();
  stdin.end(stdinText);
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { io: { stdin, stdout, stderr }, out: () => out, err: () => err };
}

const bin = new URL('../../bin/otalink.js', import.meta.url).pathname;

test("`otalink sub -t 'ota/#' -v` prints what mosquitto_pub sends, as mosquitto_sub would", async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoPub = requireProgram(t, 'mosquitto_pub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoPub) return;
  const broker = await Mosquitto.start(mosquitto);
  try {
    // The first message is retained before the subscriber starts, so it arrives exactly once whenever the
    // subscriber's start-up finishes (publishing in a loop until one shows up could land a second copy).
    const retained = spawn(mosquittoPub, [
      '-p',
      String(broker.port),
      '-t',
      'ota/v1/hello',
      '-m',
      'hi',
      '-q',
      '1',
      '-r',
    ]);
    assert.equal(await new Promise<number | null>((resolve) => retained.once('exit', resolve)), 0);
    const child = spawn(
      process.execPath,
      [bin, 'sub', '-p', String(broker.port), '-t', 'ota/#', '-v', '-C', '3', '-q', '1'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Wait until the subscriber is there (its start-up time varies); then publish the rest.
    for (let n = 0; !out.includes('ota/v1/hello'); n++) {
      await new Promise((r) => setTimeout(r, 100));
      if (n > 300) throw new Error(`sub never printed anything: ${err}`);
    }
    await runPub(
      ['-p', String(broker.port), '-t', 'ota/v2/status', '-m', 'from otalink pub', '-q', '2'],
      captureIo().io,
    );
    await runPub(['-p', String(broker.port), '-t', 'elsewhere', '-m', 'not for ota/#'], captureIo().io);
    await runPub(['-p', String(broker.port), '-V', '5', '-t', 'ota/v3/x', '-m', 'third'], captureIo().io);
    assert.equal(await exited, 0, err);
    const lines = out.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[0], 'ota/v1/hello hi');
    assert.deepEqual(lines.slice(1), ['ota/v2/status from otalink pub', 'ota/v3/x third']);
  } finally {
    await broker.stop();
  }
});

test('pub -l sends each stdin line; sub -C counts; mosquitto_sub reads what otalink pub sends', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoSub) return;
  const broker = await Mosquitto.start(mosquitto);
  try {
    const sub = captureIo();
    const subDone = runSub(['-p', String(broker.port), '-t', 'lines/+', '-C', '3', '-q', '2', '-V', '5'], sub.io);
    const other = spawn(mosquittoSub, ['-p', String(broker.port), '-t', 'lines/#', '-C', '3', '-v']);
    let otherOut = '';
    other.stdout.on('data', (d: Buffer) => {
      otherOut += d.toString();
    });
    const otherDone = new Promise((r) => other.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    const pub = captureIo('one\ntwo\nthree\n');
    assert.equal(await runPub(['-p', String(broker.port), '-t', 'lines/a', '-l', '-q', '1'], pub.io), 0, pub.err());
    assert.equal(await subDone, 0, sub.err());
    assert.equal(sub.out(), 'one\ntwo\nthree\n');
    await otherDone;
    assert.equal(otherOut, 'lines/a one\nlines/a two\nlines/a three\n');
  } finally {
    await broker.stop();
  }
});

test('clear errors: bad options, and a refused connection with its reason spelled out', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const bad = captureIo();
  assert.equal(await runPub(['-t', 'a', '-m', 'x', '-q', '3'], bad.io), 1);
  assert.match(bad.err(), /-q must be 0, 1 or 2, got "3"/);
  const unknown = captureIo();
  assert.equal(await runSub(['--bogus'], unknown.io), 1);
  assert.match(unknown.err(), /Unknown option '--bogus'/);
  const broker = await Mosquitto.start(mosquitto);
  try {
    // Same port, anonymous access off: Mosquitto refuses the CONNECT.
    await broker.kill('SIGTERM');
    writeFileSync(
      join(broker.dir, 'mosquitto.conf'),
      `listener ${broker.port} 127.0.0.1\nallow_anonymous false\nuser ${userInfo().username}\n`,
    );
    await broker.run();
    for (const [version, reason] of [
      ['311', /0x05 Connection Refused, not authorized/],
      ['5', /0x87 Not authorized/],
    ] as const) {
      const refused = captureIo();
      assert.equal(await runPub(['-p', String(broker.port), '-V', version, '-t', 'a', '-m', 'x'], refused.io), 5);
      assert.match(refused.err(), reason);
    }
    // Nothing listening any more: the socket's refusal, in words, with both codes.
    await broker.kill('SIGTERM');
    const down = captureIo();
    assert.equal(await runSub(['-p', String(broker.port), '-t', 'a'], down.io), 1);
    assert.equal(
      down.err(),
      `otalink sub: cannot connect to mqtt://localhost:${broker.port}: connection refused: nothing listens on that port (ECONNREFUSED) [MQTT_ERR_CONNECT_FAILED]\n`,
    );
  } finally {
    await broker.stop();
  }
});
