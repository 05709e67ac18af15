// The options `otalink pub` and `otalink sub` share, as mosquitto's clients read them: the protocol version -D implies,
// -x, -I, -L's topic, -d, and the usage errors of the new flags (all decided before any connection is attempted).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { parsePropertyArgs, preparseArgs } from '../src/commands/mqtt-properties.js';
import { clientOptions, runPub, splitUrl } from '../src/commands/pub.js';
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
