// The options `otalink pub` and `otalink sub` share, as mosquitto's clients read them: the protocol version -D implies,
// -x, -I, -L's topic, -d, and the usage errors of the new flags (all decided before any connection is attempted).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { type MqttClient, MqttError } from '@otalink/mqtt';
import { requireProgram } from '../../../test/support/system.js';
import { FakeBroker } from '../../mqtt/test/client/fake-broker.js';
import { freePort, Mosquitto } from '../../mqtt/test/client/mosquitto.js';
import { parsePropertyArgs, preparseArgs } from '../src/commands/mqtt-properties.js';
import {
  CONNECTION_OPTIONS,
  clientOptions,
  endClient,
  refusalExitCode,
  runPub,
  splitUrl,
  stdinLines,
} from '../src/commands/pub.js';
import { runSub } from '../src/commands/sub.js';
import { UsageError } from '../src/commands/usage.js';

const props = (...args: string[]) => parsePropertyArgs(preparseArgs(args).groups, 'pub');

async function refused(promise: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof UsageError && e.message === message, message);
}

test('-D makes the client MQTT 5 unless -V says 3.1.1, which is then an error', async () => {
  assert.equal((await clientOptions({})).protocolVersion, 4);
  const connect = props('-D', 'connect', 'receive-maximum', '7');
  const options = await clientOptions({}, connect);
  assert.equal(options.protocolVersion, 5);
  assert.deepEqual(options.properties, { receiveMaximum: 7 });
  await refused(
    clientOptions({ 'protocol-version': '311' }, connect),
    '-D connect receive-maximum 7: MQTT 5 properties need -V 5, not -V 311',
  );
});

test('-x sets the session expiry: seconds, or never as -1, 4294967295 or ∞ (with a client id); MQTT 5 only', async () => {
  const v5 = { 'protocol-version': '5', id: 'me' };
  for (const [text, seconds] of [
    ['0', 0],
    ['3600', 3600],
    ['4294967294', 4294967294],
    ['-1', 0xffffffff],
    ['4294967295', 0xffffffff],
    ['∞', 0xffffffff],
  ] as const) {
    const options = await clientOptions({ ...v5, 'session-expiry': text });
    assert.deepEqual(options.properties, { sessionExpiryInterval: seconds }, text);
  }
  await refused(clientOptions({ 'session-expiry': '60' }), '-x 60: the session expiry needs MQTT 5 (-V 5)');
  await refused(
    clientOptions({ 'protocol-version': '5', 'session-expiry': '∞' }),
    '-x ∞: a session that never expires needs a client id (-i)',
  );
  await refused(
    clientOptions({ ...v5, 'session-expiry': '4294967296' }),
    '-x must be 0..4294967294 seconds, or -1, 4294967295 or ∞ for never, got "4294967296"',
  );
  await refused(
    clientOptions({ ...v5, 'session-expiry': '60' }, props('-D', 'connect', 'session-expiry-interval', '5')),
    '-x and -D connect session-expiry-interval both set the session expiry: give one',
  );
  // -D alone (no -V) also makes -x valid, and the properties merge.
  const merged = await clientOptions({ 'session-expiry': '60' }, props('-D', 'connect', 'topic-alias-maximum', '4'));
  assert.deepEqual(merged.properties, { topicAliasMaximum: 4, sessionExpiryInterval: 60 });
});

test('-I prefixes the process id; -i and -I exclude each other', async () => {
  assert.equal((await clientOptions({ 'id-prefix': 'fleet-' })).clientId, `fleet-${process.pid}`);
  await refused(clientOptions({ id: 'a', 'id-prefix': 'b' }), '-i and -I cannot be used together');
});

test("-L: an mqtt:// or mqtts:// URL's path is a topic, taken as typed; ws:// and wss:// keep their path", async () => {
  assert.deepEqual(splitUrl('mqtt://u:p@h:1884/a/+/#'), { server: 'mqtt://u:p@h:1884', topic: 'a/+/#' });
  assert.deepEqual(splitUrl('mqtts://h/t'), { server: 'mqtts://h', topic: 't' });
  assert.deepEqual(splitUrl('mqtt://h'), { server: 'mqtt://h', topic: undefined });
  assert.deepEqual(splitUrl('mqtt://h/'), { server: 'mqtt://h', topic: undefined });
  assert.deepEqual(splitUrl('ws://h:8080/mqtt'), { server: 'ws://h:8080/mqtt', topic: undefined });
  assert.deepEqual(splitUrl('WSS://h/x'), { server: 'WSS://h/x', topic: undefined });
  const options = await clientOptions({ L: 'mqtt://u:p@h:1884/a/#' });
  assert.equal(options.url, 'mqtt://u:p@h:1884');
});

test('-d wraps the transport for mqtt:// and mqtts://, and refuses ws://', async () => {
  assert.equal(typeof (await clientOptions({ debug: true })).transport, 'function');
  assert.equal((await clientOptions({})).transport, undefined);
  await refused(
    clientOptions({ debug: true, L: 'wss://h/mqtt' }),
    '-d traces mqtt:// and mqtts:// connections, not wss://',
  );
});

test('-D will needs a will, and goes into it', async () => {
  const will = props('-D', 'will', 'content-type', 'text/plain');
  await refused(clientOptions({}, will), '-D will: will properties need a will (--will-topic)');
  const options = await clientOptions({ 'will-topic': 'gone' }, will);
  assert.deepEqual(options.will?.properties, { contentType: 'text/plain' });
});

function captureIo() {
  const stdin = new PassThrough();
  stdin.end();
  let err = '';
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { io: { stdin, stdout: new PassThrough(), stderr }, err: () => err.split('\n')[0] };
}

test('the new flags of pub and sub: usage errors, exit 1, before connecting', async () => {
  const cases: Array<['pub' | 'sub', string[], string]> = [
    ['pub', ['-L', 'mqtt://h/x', '-t', 'y', '-m', 'b'], 'otalink pub: -t "y" and the topic "x" in -L\'s URL: give one'],
    ['pub', ['-L', 'mqtt://h', '-m', 'b'], "otalink pub: a topic is needed (-t, or a path in -L's URL)"],
    [
      'pub',
      ['-t', 'a', '-l', '--repeat', '2'],
      'otalink pub: --repeat and --repeat-delay go with -m, -f, -n or -s, not -l',
    ],
    ['pub', ['-t', 'a', '-m', 'b', '--repeat', '0'], 'otalink pub: --repeat must be a positive count, got "0"'],
    ['pub', ['-t', 'a', '-m', 'b', '--repeat-delay', '1s'], 'otalink pub: --repeat-delay must be seconds, got "1s"'],
    ['pub', ['-t', 'a', '-m', 'b', '-M', '0'], 'otalink pub: -M must be 1..65535, got "0"'],
    [
      'pub',
      ['-t', 'a', '-m', 'b', '-D', 'publish', 'topic-alias'],
      'otalink pub: -D publish topic-alias: needs a value',
    ],
    [
      'sub',
      ['-t', 'a', '-R', '--retained-only'],
      'otalink sub: -R and --retained-only: printing no retained messages and only retained ones contradict',
    ],
    [
      'sub',
      ['-t', 'a', '-T', 'a/#/b'],
      'otalink sub: -T "a/#/b" is not a topic filter: # must be the last character of a topic filter',
    ],
    ['sub', ['-U', ''], 'otalink sub: -U "" is not a topic filter: a topic filter must not be empty'],
    ['sub', ['-v'], "otalink sub: a topic filter is needed (-t, a path in -L's URL, or -U to unsubscribe)"],
    ['sub', ['-t', 'a', '-F', '%Z'], 'otalink sub: -F "%Z": invalid format specifier "%Z"'],
    [
      'sub',
      ['-t', 'a', '-D', 'publish', 'content-type', 'x'],
      'otalink sub: -D publish: unknown command for otalink sub (connect, subscribe, unsubscribe, disconnect, will)',
    ],
  ];
  for (const [command, args, message] of cases) {
    const { io, err } = captureIo();
    assert.equal(await (command === 'pub' ? runPub(args, io) : runSub(args, io)), 1, args.join(' '));
    assert.equal(err(), message);
  }
});

test('more usage errors, as mosquitto_sub and mosquitto_pub refuse them, before connecting', async () => {
  const cases: Array<['pub' | 'sub', string[], string]> = [
    ['sub', ['-t', 'a', '-W', '0'], 'otalink sub: -W must be 1 or more seconds, got "0"'],
    // Two message sources of one kind: mosquitto_pub's "Only one type of message can be sent at once".
    ['pub', ['-t', 'a', '-m', 'b', '-m', 'c'], 'otalink pub: give exactly one of -m, -f, -n, -l, -s'],
    ['pub', ['-t', 'a', '-n', '-n'], 'otalink pub: give exactly one of -m, -f, -n, -l, -s'],
    ['pub', ['-t', 'a', '-m', 'b', '-k', '4'], 'otalink pub: -k must be 5..65535, got "4"'],
    ['sub', ['-t', 'a', '-k', '0'], 'otalink sub: -k must be 5..65535, got "0"'],
    ['sub', ['-t', 'a', '-i', ''], 'otalink sub: -i: the client id is empty (leave -i out for a generated one)'],
    ['sub', ['-t', 'a', '--will-retain'], 'otalink sub: --will-retain needs --will-topic'],
    [
      'pub',
      ['-t', 'a', '-m', 'b', '-V', '5', '-D', 'disconnect', 'session-expiry-interval', '10'],
      'otalink pub: -D disconnect session-expiry-interval 10: the session must not end with the connection (-c, -x or -D connect session-expiry-interval)',
    ],
  ];
  for (const [command, args, message] of cases) {
    const { io, err } = captureIo();
    assert.equal(await (command === 'pub' ? runPub(args, io) : runSub(args, io)), 1, args.join(' '));
    assert.equal(err(), message);
  }
  // Kept at DISCONNECT, a session CONNECT already keeps is fine.
  const kept = props('-D', 'disconnect', 'session-expiry-interval', '10');
  await clientOptions({ 'protocol-version': '5', id: 'me', 'session-expiry': '5' }, kept);
  await clientOptions({ 'protocol-version': '5', id: 'me', 'disable-clean-session': true }, kept);
  // -f is read before connecting: a missing file is reported as such, with nothing listening on the port.
  const missing = captureIo();
  assert.equal(await runPub(['-p', '1', '-t', 'a', '-f', '/nonexistent/otalink-payload'], missing.io), 1);
  assert.equal(missing.err(), 'otalink pub: -f /nonexistent/otalink-payload: cannot read it (ENOENT)');
});

test('an option that takes a value takes the next word whatever it starts with, as in mosquitto (-m -42, -P -secret)', () => {
  const { rest, groups } = preparseArgs(
    ['-P', '-secret', '--username', '-u', '-x', '-1', '-D', 'connect', 'receive-maximum', '5', '-c', '-k', '--', '-m'],
    CONNECTION_OPTIONS,
  );
  assert.deepEqual(rest, ['--pw=-secret', '--username=-u', '--session-expiry=-1', '-c', '--keepalive=--', '-m']);
  assert.deepEqual(groups, [['-D', 'connect', 'receive-maximum', '5']]);
  // A flag with nothing after it is left for parseArgs to report; `--` still ends the options.
  assert.deepEqual(preparseArgs(['-c', '--', '-P', 'x'], CONNECTION_OPTIONS).rest, ['-c', '--', '-P', 'x']);
  assert.deepEqual(preparseArgs(['-P'], CONNECTION_OPTIONS).rest, ['-P']);
});

test('a refused connection exits with the CONNACK code, as mosquitto_pub and mosquitto_sub do', () => {
  const refused = (code: number) => new MqttError('MQTT_ERR_CONNECTION_REFUSED', 'refused', { reasonCode: code });
  assert.equal(refusalExitCode(refused(5)), 5);
  assert.equal(refusalExitCode(refused(2)), 2);
  assert.equal(refusalExitCode(refused(0x87)), 135);
  assert.equal(refusalExitCode(new MqttError('MQTT_ERR_CONNECTION_REFUSED', 'refused')), 5);
  assert.equal(refusalExitCode(new MqttError('MQTT_ERR_CONNECT_FAILED', 'no')), undefined);
});

test('sub keeps going through a lost line, and ends with the CONNACK code when the reconnect is refused for good', async () => {
  const broker = await FakeBroker.start();
  try {
    let connects = 0;
    // Accepted, then (after the line drops) "server unavailable", which passes, then "not authorized", which does not.
    const codes = [0, 0x88, 0x87];
    broker.script = { connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: codes[connects++] ?? 0 }) };
    const { io, err } = byteIo();
    const run = runSub(['-L', `${broker.url}/t`, '-V', '5'], io);
    await until(() => broker.latest?.received.some((p) => p.type === 'subscribe') === true, 'the subscription');
    broker.latest?.drop();
    assert.equal(await run, 0x87);
    assert.equal(connects, 3, 'the passing refusal was retried, the lasting one was not');
    assert.match(err(), /connection refused: 0x87 Not authorized/);
  } finally {
    await broker.close();
  }
});

test('pub -l: lines split at \\n only, bytes kept as they are (\\r, invalid UTF-8), empty lines sent empty', async () => {
  const lines: Buffer[] = [];
  const stdin = new PassThrough();
  stdin.end(Buffer.from('a\xffb\rc\r\n\nlast', 'latin1'));
  for await (const line of stdinLines(stdin)) lines.push(line);
  assert.deepEqual(
    lines.map((l) => l.toString('hex')),
    ['61ff620d630d', '', '6c617374'],
  );
});

/** Output as bytes, stdin as given. */
function byteIo(stdinBytes: Buffer | string = '') {
  const stdin = new PassThrough();
  stdin.end(stdinBytes);
  const out: Buffer[] = [];
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => out.push(d));
  let err = '';
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { io: { stdin, stdout, stderr }, out: () => Buffer.concat(out), err: () => err };
}

/** Waits for `ready()`, bounded (a subscriber's start-up time varies); never a speed assertion. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let n = 0; !ready(); n++) {
    if (n > 600) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('against Mosquitto: what pub sends and sub prints, byte for byte as mosquitto_pub and mosquitto_sub', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  try {
    // A subscriber that waits in a persistent session: what is published meanwhile is kept for it.
    const session = ['-p', port, '-c', '-i', 'cli-bytes', '-q', '1', '-t', 'b/#'];
    assert.equal(await runSub([...session, '-E'], byteIo().io), 0);
    const pub = async (args: string[], stdin?: Buffer) => {
      const io = byteIo(stdin);
      assert.equal(await runPub(['-p', port, '-q', '1', ...args], io.io), 0, io.err());
    };
    // -l: \r and invalid UTF-8 are payload bytes, only \n ends a line; -m "" is a zero-length message.
    await pub(['-t', 'b/l', '-l'], Buffer.from('a\xffb\rc\n\nend', 'latin1'));
    await pub(['-t', 'b/m', '-m', '']);
    const hex = byteIo();
    assert.equal(await runSub([...session, '-C', '4', '-F', '%t %x'], hex.io), 0, hex.err());
    assert.equal(hex.out().toString(), 'b/l 61ff620d63\nb/l \nb/l 656e64\nb/m \n');
    // -v -N: mosquitto_sub prints "topic (null)" only with its newline, so nothing at all for an empty payload.
    await pub(['-t', 'b/1', '-m', 'one']);
    await pub(['-t', 'b/2', '-n']);
    await pub(['-t', 'b/3', '-m', 'three']);
    const verbose = byteIo();
    assert.equal(await runSub([...session, '-C', '3', '-v', '-N'], verbose.io), 0, verbose.err());
    assert.equal(verbose.out().toString(), 'b/1 oneb/3 three');
    // A message that starts with a dash, as mosquitto_pub takes it (parseArgs alone refuses it as ambiguous).
    await pub(['-t', 'b/dash', '-m', '-42']);
    const dash = byteIo();
    assert.equal(await runSub([...session, '-C', '1', '-v'], dash.io), 0, dash.err());
    assert.equal(dash.out().toString(), 'b/dash -42\n');
    // -R: a retained message is neither printed nor cleared by --remove-retained (mosquitto_sub skips it first).
    await pub(['-t', 'kept/a', '-m', 'stays', '-r']);
    const skipped = byteIo();
    assert.equal(await runSub(['-p', port, '-t', 'kept/#', '-R', '--remove-retained', '-W', '1'], skipped.io), 27);
    assert.equal(skipped.out().toString(), '');
    const still = byteIo();
    assert.equal(await runSub(['-p', port, '-t', 'kept/#', '-C', '1', '-v'], still.io), 0, still.err());
    assert.equal(still.out().toString(), 'kept/a stays\n');
  } finally {
    await broker.stop();
  }
});

test('against Mosquitto: sub -c -C 1 drains a persistent queue one message a run, acknowledging only what it printed; pub -s refuses an empty stdin', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const broker = await Mosquitto.start(mosquitto);
  const port = String(broker.port);
  try {
    const session = ['-p', port, '-c', '-i', 'cli-drain', '-q', '1', '-t', 'd/#'];
    assert.equal(await runSub([...session, '-E'], byteIo().io), 0);
    for (const m of ['m1', 'm2', 'm3']) {
      const io = byteIo();
      assert.equal(await runPub(['-p', port, '-q', '1', '-t', 'd/x', '-m', m], io.io), 0, io.err());
    }
    // Before, the client acknowledged all three as they arrived and printed one: m2 and m3 were lost.
    for (const expected of ['m1\n', 'm2\n', 'm3\n']) {
      const one = byteIo();
      assert.equal(await runSub([...session, '-C', '1'], one.io), 0, one.err());
      assert.equal(one.out().toString(), expected);
    }
    const none = byteIo();
    assert.equal(await runSub([...session, '-C', '1', '-W', '1'], none.io), 27);
    // pub -s with nothing on stdin: an error, and the retained message stays.
    const keep = byteIo();
    assert.equal(await runPub(['-p', port, '-t', 'd/kept', '-m', 'important', '-r'], keep.io), 0, keep.err());
    const empty = byteIo('');
    assert.equal(await runPub(['-p', port, '-t', 'd/kept', '-r', '-s'], empty.io), 1);
    assert.match(empty.err(), /zero length input/);
    const still = byteIo();
    assert.equal(await runSub(['-p', port, '-t', 'd/kept', '-C', '1'], still.io), 0, still.err());
    assert.equal(still.out().toString(), 'important\n');
  } finally {
    await broker.stop();
  }
});

test('against Mosquitto: refusals exit with their code and spell out their reason', async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const broker = await Mosquitto.start(mosquitto);
  const closed = await freePort();
  try {
    // One listener for anonymous clients that may publish nowhere, one that takes no anonymous client at all.
    await broker.kill('SIGTERM');
    writeFileSync(join(broker.dir, 'acl'), 'topic read #\n');
    writeFileSync(
      join(broker.dir, 'mosquitto.conf'),
      [
        'per_listener_settings true',
        `user ${userInfo().username}`,
        `listener ${broker.port} 127.0.0.1`,
        'allow_anonymous true',
        `acl_file ${join(broker.dir, 'acl')}`,
        `listener ${closed} 127.0.0.1`,
        'allow_anonymous false',
        '',
      ].join('\n'),
    );
    await broker.run();
    for (const [version, code, reason] of [
      ['311', 5, '0x05 Connection Refused, not authorized'],
      ['5', 135, '0x87 Not authorized'],
    ] as const) {
      const io = byteIo();
      assert.equal(await runSub(['-p', String(closed), '-V', version, '-t', 'a'], io.io), code, io.err());
      assert.equal(io.err(), `otalink sub: connection refused: ${reason} [MQTT_ERR_CONNECTION_REFUSED]\n`);
    }
    const denied = byteIo();
    assert.equal(await runPub(['-p', String(broker.port), '-V', '5', '-q', '1', '-t', 'x', '-m', 'no'], denied.io), 1);
    assert.equal(
      denied.err(),
      'otalink pub: the server refused the message: 0x87 Not authorized [MQTT_ERR_PUBLISH_FAILED]\n',
    );
  } finally {
    await broker.stop();
  }
});

/** A self-signed certificate (its own CA) for broker.test only, or undefined without openssl. */
function brokerTestCert(dir: string, name: string): { cert: string; key: string } | undefined {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'],
        ...['-subj', '/CN=broker.test', '-addext', 'subjectAltName=DNS:broker.test', '-keyout', key, '-out', cert],
      ],
      { stdio: 'ignore' },
    );
  } catch {
    return undefined;
  }
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

test("--insecure skips the certificate's host name check only, as mosquitto's: the chain is still verified", async (t) => {
  const mosquitto = requireProgram(t, 'mosquitto');
  if (!mosquitto) return;
  const dir = mkdtempSync(join(tmpdir(), 'otalink-insecure-'));
  try {
    const trusted = brokerTestCert(dir, 'trusted');
    const stranger = brokerTestCert(dir, 'stranger');
    if (trusted === undefined || stranger === undefined) return t.skip('openssl not installed');
    const broker = await Mosquitto.start(mosquitto, { tls: { ...trusted, ca: trusted.cert } });
    try {
      // The certificate names broker.test, not 127.0.0.1.
      const base = ['-h', '127.0.0.1', '-p', String(broker.tlsPort), '-t', 'tls', '-m', 'x', '-q', '1'];
      const pub = async (args: string[]) => {
        const io = byteIo();
        return { code: await runPub([...base, ...args], io.io), err: io.err() };
      };
      const checked = await pub(['--cafile', join(dir, 'trusted.pem')]);
      assert.equal(checked.code, 1);
      assert.match(checked.err, /ERR_TLS_CERT_ALTNAME_INVALID/);
      assert.deepEqual(await pub(['--cafile', join(dir, 'trusted.pem'), '--insecure']), { code: 0, err: '' });
      // With -d the trace wraps the same host-name-blind TLS.
      const traced = await pub(['--cafile', join(dir, 'trusted.pem'), '--insecure', '-d']);
      assert.equal(traced.code, 0, traced.err);
      assert.match(traced.err, /received PUBACK/);
      for (const args of [['--cafile', join(dir, 'stranger.pem'), '--insecure'], ['--insecure']]) {
        const untrusted = await pub(args);
        assert.equal(untrusted.code, 1, args.join(' '));
        assert.match(untrusted.err, /SELF_SIGNED_CERT.*\[MQTT_ERR_CONNECT_FAILED\]/, args.join(' '));
      }
      // A subscriber reads through it too, and ends cleanly.
      const sub = byteIo();
      const subArgs = ['-h', '127.0.0.1', '-p', String(broker.tlsPort), '--cafile', join(dir, 'trusted.pem')];
      const done = runSub([...subArgs, '--insecure', '-t', 'tls/#', '-v', '-C', '1', '-q', '1'], sub.io);
      const feed = setInterval(() => {
        void runPub([...subArgs, '--insecure', '-t', 'tls/live', '-m', 'hello'], byteIo().io);
      }, 200);
      try {
        await until(() => sub.out().length > 0, 'the message over TLS');
        assert.equal(await done, 0, sub.err());
      } finally {
        clearInterval(feed);
      }
      assert.equal(sub.out().toString(), 'tls/live hello\n');
    } finally {
      await broker.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a clean end the client refuses still closes the connection: the process must be able to exit', async () => {
  const calls: unknown[] = [];
  const client = {
    end(options: { force?: boolean }) {
      calls.push(options);
      return options.force ? Promise.resolve() : Promise.reject(new MqttError('MQTT_ERR_INVALID_OPTION', 'refused'));
    },
  } as unknown as MqttClient;
  await assert.rejects(endClient(client, { sessionExpiryInterval: 5 }), /refused/);
  assert.deepEqual(calls, [{ timeoutMs: 10_000, properties: { sessionExpiryInterval: 5 } }, { force: true }]);
});
