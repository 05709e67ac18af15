// `-D <command> <property> <value>`: how the groups leave argv, what they map to, and the error for each mistake.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePropertyArgs, preparseArgs } from '../src/commands/mqtt-properties.js';
import { UsageError } from '../src/commands/usage.js';

function usageError(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && e.message === message, message);
}

test('the -D / --property groups leave argv in order; user-property takes five tokens; -- ends the search', () => {
  const { rest, groups } = preparseArgs([
    '-t',
    'a',
    '-D',
    'publish',
    'user-property',
    'k',
    'v',
    '-m',
    'x',
    '--property',
    'publish',
    'content-type',
    '-text-',
    '--',
    '-D',
  ]);
  assert.deepEqual(groups, [
    ['-D', 'publish', 'user-property', 'k', 'v'],
    ['--property', 'publish', 'content-type', '-text-'],
  ]);
  assert.deepEqual(rest, ['-t', 'a', '-m', 'x', '--', '-D']);
});

test('-x joins its value, so that mosquitto\'s "-x -1" reaches parseArgs as a value', () => {
  assert.deepEqual(preparseArgs(['-x', '-1', '-x']).rest, ['--session-expiry=-1', '-x']);
});

test('a group missing tokens names what it lacks', () => {
  usageError(
    () => preparseArgs(['-D', 'publish']),
    '-D publish: needs a command, a property and a value (-D publish content-type text/plain)',
  );
  usageError(() => preparseArgs(['-D', 'publish', 'content-type']), '-D publish content-type: needs a value');
  usageError(
    () => preparseArgs(['--property', 'connect', 'user-property', 'k']),
    '--property connect user-property k: needs a key and a value',
  );
});

test("names map to the client's property fields, by packet; user properties keep their order and repeats", () => {
  const groups = preparseArgs([
    '-D',
    'publish',
    'content-type',
    'text/plain',
    '-D',
    'publish',
    'correlation-data',
    'id-1',
    '-D',
    'PUBLISH',
    'Message-Expiry-Interval',
    '60',
    '-D',
    'publish',
    'user-property',
    'k',
    'v1',
    '-D',
    'publish',
    'user-property',
    'k',
    'v2',
    '-D',
    'publish',
    'payload-format-indicator',
    '1',
    '-D',
    'publish',
    'response-topic',
    'replies/1',
    '-D',
    'publish',
    'topic-alias',
    '3',
    '-D',
    'connect',
    'receive-maximum',
    '10',
    '-D',
    'connect',
    'maximum-packet-size',
    '2048',
    '-D',
    'connect',
    'topic-alias-maximum',
    '0',
    '-D',
    'connect',
    'request-problem-information',
    '0',
    '-D',
    'connect',
    'request-response-information',
    '1',
    '-D',
    'connect',
    'session-expiry-interval',
    '4294967295',
    '-D',
    'will',
    'will-delay-interval',
    '5',
    '-D',
    'will',
    'user-property',
    'w',
    'x',
  ]).groups;
  const props = parsePropertyArgs(groups, 'pub');
  assert.deepEqual(props.publish, {
    contentType: 'text/plain',
    correlationData: new TextEncoder().encode('id-1'),
    messageExpiryInterval: 60,
    userProperties: [
      ['k', 'v1'],
      ['k', 'v2'],
    ],
    payloadFormatIndicator: 1,
    responseTopic: 'replies/1',
    topicAlias: 3,
  });
  assert.deepEqual(props.connect, {
    receiveMaximum: 10,
    maximumPacketSize: 2048,
    topicAliasMaximum: 0,
    requestProblemInformation: 0,
    requestResponseInformation: 1,
    sessionExpiryInterval: 4294967295,
  });
  assert.deepEqual(props.will, { willDelayInterval: 5, userProperties: [['w', 'x']] });
  assert.equal(props.first, '-D publish content-type text/plain');
  assert.deepEqual(parsePropertyArgs([], 'pub'), {});
});

test('sub takes subscribe and unsubscribe properties; a SUBSCRIBE carries one identifier', () => {
  const { groups } = preparseArgs([
    '-D',
    'subscribe',
    'subscription-identifier',
    '268435455',
    '-D',
    'unsubscribe',
    'user-property',
    'why',
    'done',
  ]);
  const props = parsePropertyArgs(groups, 'sub');
  assert.deepEqual(props.subscribe, { subscriptionIdentifiers: [268435455] });
  assert.deepEqual(props.unsubscribe, { userProperties: [['why', 'done']] });
});

test('-D disconnect: a session expiry and user properties for the DISCONNECT that ends the run', () => {
  const { groups } = preparseArgs([
    '-D',
    'disconnect',
    'session-expiry-interval',
    '600',
    '-D',
    'disconnect',
    'user-property',
    'reason',
    'done',
  ]);
  for (const tool of ['pub', 'sub'] as const) {
    assert.deepEqual(parsePropertyArgs(groups, tool).disconnect, {
      sessionExpiryInterval: 600,
      userProperties: [['reason', 'done']],
    });
  }
});

test('each mistake is a usage error naming its group', () => {
  const cases: Array<[string[], 'pub' | 'sub', string]> = [
    [
      ['publix', 'content-type', 'x'],
      'pub',
      '-D publix: unknown command for otalink pub (connect, publish, disconnect, will)',
    ],
    [
      ['subscribe', 'user-property', 'k', 'v'],
      'pub',
      '-D subscribe: unknown command for otalink pub (connect, publish, disconnect, will)',
    ],
    [
      ['publish', 'content-type', 'x'],
      'sub',
      '-D publish: unknown command for otalink sub (connect, subscribe, unsubscribe, disconnect, will)',
    ],
    [
      ['disconnect', 'content-type', 'x'],
      'pub',
      '-D disconnect content-type: not allowed for disconnect (only for publish, will)',
    ],
    [['publish', 'content-typo', 'x'], 'pub', '-D publish content-typo: unknown property'],
    [
      ['connect', 'authentication-method', 'SCRAM'],
      'sub',
      '-D connect authentication-method: not supported (no enhanced authentication from the command line)',
    ],
    [
      ['connect', 'will-delay-interval', '3'],
      'pub',
      '-D connect will-delay-interval: not allowed for connect (only for will)',
    ],
    [['will', 'topic-alias', '1'], 'pub', '-D will topic-alias: not allowed for will (only for publish)'],
    [['publish', 'payload-format-indicator', '2'], 'pub', '-D publish payload-format-indicator must be 0..1, got "2"'],
    [
      ['publish', 'message-expiry-interval', '4294967296'],
      'pub',
      '-D publish message-expiry-interval must be 0..4294967295, got "4294967296"',
    ],
    [
      ['publish', 'message-expiry-interval', '-1'],
      'pub',
      '-D publish message-expiry-interval must be 0..4294967295, got "-1"',
    ],
    [['publish', 'topic-alias', '0'], 'pub', '-D publish topic-alias must be 1..65535, got "0"'],
    [['connect', 'receive-maximum', '65536'], 'pub', '-D connect receive-maximum must be 1..65535, got "65536"'],
    [['connect', 'maximum-packet-size', '0'], 'sub', '-D connect maximum-packet-size must be 1..4294967295, got "0"'],
    [['connect', 'topic-alias-maximum', 'ten'], 'sub', '-D connect topic-alias-maximum must be 0..65535, got "ten"'],
    [
      ['subscribe', 'subscription-identifier', '268435456'],
      'sub',
      '-D subscribe subscription-identifier must be 1..268435455, got "268435456"',
    ],
  ];
  for (const [group, tool, message] of cases) usageError(() => parsePropertyArgs([['-D', ...group]], tool), message);
  usageError(
    () =>
      parsePropertyArgs(
        [
          ['-D', 'publish', 'content-type', 'a'],
          ['-D', 'publish', 'content-type', 'b'],
        ],
        'pub',
      ),
    '-D publish content-type: given twice',
  );
});
