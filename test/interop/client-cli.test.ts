// `otalink pub` and `otalink sub` against Mosquitto, next to mosquitto_pub and mosquitto_sub.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, test } from 'node:test';
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

/** Children of run() still running: a failed assertion must not leave one reconnecting to a stopped broker. */
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill();
  children.clear();
});

/** A child process with its output gathered as it comes; `exited` waits for 'close' (output read to the end), not 'exit'. */
function run(program: string, args: string[]) {
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return { out: () => out, err: () => err, exited };
}

/** Waits until `ready()` (a subscriber's start-up time varies); fails after a generous bound, never on speed. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let n = 0; !ready(); n++) {
    if (n > 600) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * %j and %J output with the timestamp and a retained message's expiry taken out: two subscribers do not print the
 * same instant, and the expiry counts down between their reads.
 */
const untimed = (text: string) =>
  text.replace(/"tst":\t?"[^"]*"/g, '"tst":T').replace(/("message-expiry-interval":\t?)\d+/g, '$1E');

test("`otalink sub -t 'ota/#' -v` prints what mosquitto_pub sends, as mosquitto_sub would", async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoPub = requireProgram(t, 'mosquitto_pub', 'mosquitto-clients');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoPub || !mosquittoSub) return;
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
    const args = ['-p', String(broker.port), '-t', 'ota/#', '-v', '-C', '4', '-q', '1'];
    const child = spawn(process.execPath, [bin, 'sub', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    // mosquitto_sub with the same options, side by side.
    const peer = spawn(mosquittoSub, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let peerOut = '';
    peer.stdout.on('data', (d: Buffer) => {
      peerOut += d.toString();
    });
    const peerExited = new Promise<number | null>((resolve) => peer.once('close', resolve));
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // Wait until the subscriber is there (its start-up time varies); then publish the rest.
    for (let n = 0; !out.includes('ota/v1/hello') || !peerOut.includes('ota/v1/hello'); n++) {
      await new Promise((r) => setTimeout(r, 100));
      if (n > 300) throw new Error(`sub never printed anything: ${err}`);
    }
    await runPub(
      ['-p', String(broker.port), '-t', 'ota/v2/status', '-m', 'from otalink pub', '-q', '2'],
      captureIo().io,
    );
    await runPub(['-p', String(broker.port), '-t', 'elsewhere', '-m', 'not for ota/#'], captureIo().io);
    await runPub(['-p', String(broker.port), '-V', '5', '-t', 'ota/v3/x', '-m', 'third'], captureIo().io);
    await runPub(['-p', String(broker.port), '-t', 'ota/v4/cleared', '-n', '-q', '1'], captureIo().io);
    assert.equal(await exited, 0, err);
    assert.equal(await peerExited, 0);
    assert.equal(
      out,
      'ota/v1/hello hi\nota/v2/status from otalink pub\nota/v3/x third\nota/v4/cleared (null)\n',
      'an empty payload prints as (null)',
    );
    assert.equal(out, peerOut, 'byte for byte what mosquitto_sub printed');
  } finally {
    await broker.stop();
  }
});

test('sub -W: running out of time exits 27 and says so, with or without -C, as mosquitto_sub does', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoSub) return;
  const broker = await Mosquitto.start(mosquitto);
  try {
    for (const extra of [[], ['-C', '2']]) {
      const args = ['-p', String(broker.port), '-t', 'quiet/here', '-W', '1', ...extra];
      const ours = captureIo();
      assert.equal(await runSub(args, ours.io), 27, extra.join(' '));
      assert.equal(ours.out(), '');
      assert.equal(ours.err(), 'otalink sub: Timed out\n');
      const peer = spawn(mosquittoSub, args, { stdio: 'ignore' });
      assert.equal(await new Promise((resolve) => peer.once('exit', resolve)), 27, `mosquitto_sub ${extra.join(' ')}`);
    }
    const quiet = captureIo();
    assert.equal(await runSub(['-p', String(broker.port), '-t', 'quiet/here', '-W', '1', '--quiet'], quiet.io), 27);
    assert.equal(quiet.err(), '');
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
    // -d on both: their packet traces say when each has its SUBACK, so the lines are published only then.
    const subDone = runSub(['-p', String(broker.port), '-t', 'lines/+', '-C', '3', '-q', '2', '-V', '5', '-d'], sub.io);
    // stdbuf: mosquitto_sub's trace lines are printf'd, block-buffered into a pipe until it exits.
    const otherArgs = ['-p', String(broker.port), '-t', 'lines/#', '-C', '3', '-v', '-d'];
    const other = spawn('stdbuf', ['-oL', mosquittoSub, ...otherArgs]);
    children.add(other);
    let otherOut = '';
    other.stdout.on('data', (d: Buffer) => {
      otherOut += d.toString();
    });
    const otherDone = new Promise((r) => other.once('close', r));
    await until(() => sub.err().includes('received SUBACK') && otherOut.includes('received SUBACK'), 'both SUBACKs');
    const pub = captureIo('one\ntwo\nthree\n');
    assert.equal(await runPub(['-p', String(broker.port), '-t', 'lines/a', '-l', '-q', '1'], pub.io), 0, pub.err());
    assert.equal(await subDone, 0, sub.err());
    assert.equal(sub.out(), 'one\ntwo\nthree\n');
    await otherDone;
    const messages = otherOut.split('\n').filter((line) => line.startsWith('lines/'));
    assert.deepEqual(messages, ['lines/a one', 'lines/a two', 'lines/a three']);
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
  // --quiet silences what goes wrong at run time, not mistakes on the command line (as mosquitto's --quiet).
  const quietBad = captureIo();
  assert.equal(await runPub(['-t', 'a', '-m', 'x', '-q', '3', '--quiet'], quietBad.io), 1);
  assert.match(quietBad.err(), /-q must be 0, 1 or 2, got "3"/);
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
    // The exit code is the CONNACK's, as mosquitto_pub's: 5 in 3.1.1, 135 (0x87) in 5.0.
    for (const [version, reason, code] of [
      ['311', /0x05 Connection Refused, not authorized/, 5],
      ['5', /0x87 Not authorized/, 135],
    ] as const) {
      const refused = captureIo();
      assert.equal(await runPub(['-p', String(broker.port), '-V', version, '-t', 'a', '-m', 'x'], refused.io), code);
      assert.match(refused.err(), reason);
      const quiet = captureIo();
      const args = ['-p', String(broker.port), '-V', version, '-t', 'a', '-m', 'x', '--quiet'];
      assert.equal(await runPub(args, quiet.io), code);
      assert.equal(quiet.err(), '');
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

test('-D properties from otalink pub reach mosquitto_sub; otalink sub -F prints what mosquitto_sub -F prints', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoSub) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  try {
    // Retained, so that every subscriber below gets the same messages whenever it starts. -D alone makes pub MQTT 5.
    const withProperties = [
      ['-D', 'publish', 'content-type', 'text/json'],
      ['-D', 'publish', 'correlation-data', 'cd1'],
      ['-D', 'publish', 'payload-format-indicator', '1'],
      ['-D', 'publish', 'response-topic', 'rt/x'],
      ['-D', 'publish', 'user-property', 'k', 'v'],
      ['--property', 'publish', 'user-property', 'k2', 'v 2'],
      ['-D', 'publish', 'message-expiry-interval', '600'],
    ].flat();
    for (const args of [
      ['-t', 'f/a', '-m', '{"a": 1}', '-r', ...withProperties],
      ['-t', 'f/b', '-m', 'he"llo\tx', '-r', '-V', '5'],
    ]) {
      const pub = captureIo();
      assert.equal(await runPub(['-p', port, ...args], pub.io), 0, pub.err());
    }
    const theirs = run(mosquittoSub, ['-p', port, '-V', '5', '-t', 'f/a', '-F', '%P|%C|%D|%F|%R|%E', '-C', '1']);
    assert.equal(await theirs.exited, 0, theirs.err());
    const [fields, expiry] = theirs
      .out()
      .trimEnd()
      .split(/\|(?=\d+$)/);
    assert.equal(fields, 'k:v k2:v 2|text/json|cd1|1|rt/x');
    // A retained message's expiry counts down while it waits: some of the 600 s are left.
    assert.ok(Number(expiry) > 0 && Number(expiry) <= 600, `message-expiry-interval ${expiry}`);
    // Everything but the expiry (it counts down) and the clock, with mosquitto's widths and flags, and its JSON.
    const format =
      '%t|%p|%x|%X|%l|%q|%r|%m|%C|%D|%F|%P|%R|%10t|%-6l|%06l|%.2t|%5.2t|%10x|%3p|%-10p|%010p|%5X|%4C|%3R|\\t|\\\\|%j';
    for (const args of [
      ['-t', 'f/#', '-F', format, '-C', '2'],
      ['-t', 'f/a', '-F', '%J', '--pretty', '-C', '1'],
    ]) {
      const mosq = run(mosquittoSub, ['-p', port, '-V', '5', ...args]);
      const ours = captureIo();
      assert.equal(await runSub(['-p', port, '-V', '5', ...args], ours.io), 0, ours.err());
      assert.equal(await mosq.exited, 0, mosq.err());
      assert.ok(ours.out().includes('"topic"'), ours.out());
      assert.equal(untimed(ours.out()), untimed(mosq.out()));
    }
    // QoS 1: %m and "mid" in %j are the packet identifier, as mosquitto_sub prints them.
    for (const topic of ['q/a', 'q/b']) {
      assert.equal(
        await runPub(['-p', port, '-t', topic, '-m', `{"t":"${topic}"}`, '-r', '-q', '1'], captureIo().io),
        0,
      );
    }
    const qos1 = ['-t', 'q/#', '-q', '1', '-F', '%m|%q|%t|%j', '-C', '2'];
    const mosqQos1 = run(mosquittoSub, ['-p', port, '-V', '5', ...qos1]);
    const oursQos1 = captureIo();
    assert.equal(await runSub(['-p', port, '-V', '5', ...qos1], oursQos1.io), 0, oursQos1.err());
    assert.equal(await mosqQos1.exited, 0, mosqQos1.err());
    assert.match(oursQos1.out(), /^[1-9]\d*\|1\|q\/a\|.*"mid":[1-9]/);
    assert.equal(untimed(oursQos1.out()), untimed(mosqQos1.out()));
    // A subscription identifier comes back on the messages it matched.
    const id = captureIo();
    assert.equal(
      await runSub(
        ['-p', port, '-t', 'f/a', '-D', 'subscribe', 'subscription-identifier', '7', '-F', '%S %t', '-C', '1'],
        id.io,
      ),
      0,
      id.err(),
    );
    assert.equal(id.out(), '7 f/a\n');
  } finally {
    await broker.stop();
  }
});

test('sub -E, -T, --retained-only and --remove-retained do what mosquitto_sub does', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  const sub = async (args: string[], out: string) => {
    const io = captureIo();
    assert.equal(await runSub(['-p', port, ...args], io.io), 0, io.err());
    assert.equal(io.out(), out, args.join(' '));
  };
  try {
    for (const [topic, message] of [
      ['t/1', 'one'],
      ['t/2', 'two'],
      ['t/3', 'three'],
    ] as const) {
      assert.equal(await runPub(['-p', port, '-t', topic, '-m', message, '-r', '-q', '1'], captureIo().io), 0);
    }
    // -E: the SUBACK ends it, before any of the retained messages is printed.
    await sub(['-t', 't/#', '-E'], '');
    // -T: what matches is neither printed nor counted.
    await sub(['-t', 't/#', '-T', 't/2', '-T', 'x/#', '-C', '2', '-v'], 't/1 one\nt/3 three\n');
    // --retained-only: the retained messages, then the first live one ends the run unprinted.
    const only = captureIo();
    const done = runSub(['-p', port, '-t', 't/#', '-t', 'live', '--retained-only', '-v'], only.io);
    await until(() => only.out().includes('t/3'), 'the retained messages');
    assert.equal(await runPub(['-p', port, '-t', 'live', '-m', 'now'], captureIo().io), 0);
    assert.equal(await done, 0, only.err());
    assert.equal(only.out(), 't/1 one\nt/2 two\nt/3 three\n');
    // mosquitto's own example: clear the retained messages (but those -T spares) and exit, at the first clearing
    // that comes back live.
    await sub(['-t', 't/#', '-T', 't/3', '--remove-retained', '--retained-only', '-v'], 't/1 one\nt/2 two\n');
    // What is retained now: t/3, and a marker retained after it (the broker sends a filter's retained messages in
    // the order of the SUBSCRIBE's filters).
    assert.equal(await runPub(['-p', port, '-t', 'marker', '-m', 'end', '-r'], captureIo().io), 0);
    await sub(['-t', 't/#', '-t', 'marker', '-C', '2', '-v'], 't/3 three\nmarker end\n');
  } finally {
    await broker.stop();
  }
});

test('sessions: -x keeps one past a clean start; -U with no -t unsubscribes it and exits', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  const sub = async (args: string[]) => {
    const io = captureIo();
    assert.equal(await runSub(['-p', port, '-V', '5', '-i', 'keeper', '-q', '1', ...args], io.io), 0, io.err());
    return io.out();
  };
  const pub = (message: string) => runPub(['-p', port, '-t', 'p/x', '-m', message, '-q', '1'], captureIo().io);
  try {
    assert.equal(await runPub(['-p', port, '-t', 'marker', '-m', 'here', '-r'], captureIo().io), 0);
    // A clean start with an expiry of 10 minutes: the session outlives the connection and collects p/x.
    assert.equal(await sub(['-x', '600', '-t', 'p/#', '-E']), '');
    assert.equal(await pub('kept'), 0);
    // Back in it (-c): what it collected comes first, before the retained marker.
    assert.equal(await sub(['-c', '-t', 'marker', '-C', '1', '-v']), 'p/x kept\n');
    // -U alone: unsubscribe and exit. What is published to p/x afterwards is no longer collected.
    assert.equal(await sub(['-c', '-U', 'p/#']), '');
    assert.equal(await pub('dropped'), 0);
    assert.equal(await sub(['-c', '-t', 'marker', '-C', '1', '-v']), 'marker here\n');
  } finally {
    await broker.stop();
  }
});

test('-L takes the topic from an mqtt:// URL, as mosquitto_pub and mosquitto_sub do', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoSub) return;
  const broker = await Mosquitto.start(mosquitto);
  const url = `mqtt://127.0.0.1:${broker.port}`;
  try {
    const pub = captureIo();
    assert.equal(await runPub(['-L', `${url}/l/one`, '-m', 'via url', '-r'], pub.io), 0, pub.err());
    // sub adds the URL's filter to the -t ones; a wildcard in it is a wildcard, not a URL fragment.
    assert.equal(await runPub(['-p', String(broker.port), '-t', 'other', '-m', 'too', '-r'], captureIo().io), 0);
    const ours = captureIo();
    assert.equal(await runSub(['-L', `${url}/l/#`, '-t', 'other', '-C', '2', '-v'], ours.io), 0, ours.err());
    assert.equal(ours.out(), 'l/one via url\nother too\n');
    const theirs = run(mosquittoSub, ['-L', `${url}/l/#`, '-C', '1', '-v']);
    assert.equal(await theirs.exited, 0, theirs.err());
    assert.equal(theirs.out(), 'l/one via url\n');
  } finally {
    await broker.stop();
  }
});

test('pub -d traces the packets as mosquitto_pub -d does; -M 1 and --repeat pace the publishes', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  const mosquittoPub = requireProgram(t, 'mosquitto_pub', 'mosquitto-clients');
  const mosquittoSub = requireProgram(t, 'mosquitto_sub', 'mosquitto-clients');
  if (!mosquitto || !mosquittoPub || !mosquittoSub) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  try {
    for (const version of ['311', '5']) {
      const args = ['-p', port, '-V', version, '-d', '-q', '2', '-i', 'dbg', '-t', 'd/a', '-m', 'hello', '-r'];
      const ours = captureIo();
      assert.equal(await runPub(args, ours.io), 0, ours.err());
      const theirs = run(mosquittoPub, args);
      assert.equal(await theirs.exited, 0, theirs.err());
      // mosquitto_pub writes its trace to stdout, ours goes to stderr.
      assert.equal(ours.err(), theirs.out());
      assert.match(ours.err(), /^Client dbg sending PUBLISH \(d0, q2, r1, m1, 'd\/a', \.\.\. \(5 bytes\)\)$/m);
    }
    // At most one unacknowledged message: each PUBLISH waits for the PUBACK of the one before.
    const paced = captureIo('one\ntwo\n');
    assert.equal(await runPub(['-p', port, '-d', '-i', 'm1', '-q', '1', '-M', '1', '-t', 'd/b', '-l'], paced.io), 0);
    assert.deepEqual(
      paced
        .err()
        .split('\n')
        .filter((line) => /PUB/.test(line)),
      [
        "Client m1 sending PUBLISH (d0, q1, r0, m1, 'd/b', ... (3 bytes))",
        'Client m1 received PUBACK (Mid: 1, RC:0)',
        "Client m1 sending PUBLISH (d0, q1, r0, m2, 'd/b', ... (3 bytes))",
        'Client m1 received PUBACK (Mid: 2, RC:0)',
      ],
    );
    // --repeat over MQTT 5 (the client aliases the repeated topic; mosquitto_sub sees it in full). The messages wait
    // in mosquitto_sub's persistent session, set up first with -E: no need to know when a live subscriber is ready.
    const session = ['-p', port, '-V', '5', '-c', '-i', 'receiver', '-q', '1', '-t', 'r/x'];
    const setUp = run(mosquittoSub, [...session, '-E']);
    assert.equal(await setUp.exited, 0, setUp.err());
    const repeat = [
      '-p',
      port,
      '-V',
      '5',
      '-q',
      '1',
      '-t',
      'r/x',
      '-m',
      'again',
      '--repeat',
      '3',
      '--repeat-delay',
      '0.05',
    ];
    const repeated = captureIo();
    assert.equal(await runPub(repeat, repeated.io), 0, repeated.err());
    const receiver = run(mosquittoSub, [...session, '-C', '3', '-v']);
    assert.equal(await receiver.exited, 0, receiver.err());
    assert.equal(receiver.out(), 'r/x again\nr/x again\nr/x again\n');
  } finally {
    await broker.stop();
  }
});
