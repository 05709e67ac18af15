import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MqttError } from '../../src/codec/errors.js';
import {
  isValidTopicFilter,
  isValidTopicName,
  parseSharedSubscription,
  topicFilterProblem,
  topicNameProblem,
  validateTopicFilter,
  validateTopicName,
} from '../../src/topic/index.js';

function assertMqttError(fn: () => unknown, code: string, reasonCode: number, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof MqttError, `${label}: not an MqttError`);
      assert.equal(err.code, code, label);
      assert.equal(err.reasonCode, reasonCode, label);
      return true;
    },
    label,
  );
}

const validNames = [
  'a',
  '/',
  '//',
  'a/b/c',
  '/finance',
  'sport/tennis/player1',
  'Accounts payable',
  ' ',
  'a//b',
  '$SYS/broker/uptime',
  '$share/g/a',
  'caf\u00e9/\u{1f697}',
];
const invalidNames = ['sport/+', '#', 'sport/tennis#', 'a+b', '+', 'a/#', 'a\0b'];

test('valid topic names', () => {
  for (const name of validNames) {
    assert.doesNotThrow(() => validateTopicName(name), name);
    assert.equal(isValidTopicName(name), true, name);
    assert.equal(topicNameProblem(name), undefined, name);
  }
});

test('invalid topic names throw MQTT_ERR_INVALID_TOPIC_NAME with 0x90', () => {
  for (const name of [...invalidNames, '']) {
    assertMqttError(() => validateTopicName(name), 'MQTT_ERR_INVALID_TOPIC_NAME', 0x90, JSON.stringify(name));
    assert.equal(isValidTopicName(name), false, name);
  }
  // An empty name is legal on the wire with a topic alias, so the problem function leaves it to the caller.
  assert.equal(topicNameProblem(''), undefined);
  for (const name of invalidNames) assert.equal(typeof topicNameProblem(name), 'string', name);
});

const validFilters = [
  '#',
  '+',
  '/',
  'a',
  'a/#',
  'a/+',
  '+/+',
  '/+',
  '+/#',
  'sport/tennis/player1/#',
  'sport/+/player1',
  '+/tennis/#',
  '$SYS/#',
  '$SYS/monitor/+',
  'a//b',
  '//#',
  '$share',
  '$sharex/+',
  '$share/g/a/#',
  '$share/g/#',
  '$share/g/+',
  '$share/g//',
  '$share/g/$SYS/#',
  '$share/group.1-x/a/b',
];

test('valid topic filters', () => {
  for (const filter of validFilters) {
    assert.doesNotThrow(() => validateTopicFilter(filter), filter);
    assert.equal(isValidTopicFilter(filter), true, filter);
  }
});

const invalidPlainFilters = [
  'sport/tennis#',
  'sport/tennis/#/ranking',
  'sport+',
  '+a',
  'a+/b',
  'a/+b',
  '#/a',
  'a/#/',
  '##',
  '++',
  'a#',
  'a\0',
];
const invalidSharedFilters = [
  '$share//a',
  '$share/',
  '$share/g',
  '$share/g/',
  '$share/g+/a',
  '$share/+/a',
  '$share/g#/a',
  '$share/#/a',
  '$share/g/a#',
  '$share/g/#/a',
  '$share/g/sport+',
  '$share/a\0b/x',
];

test('invalid topic filters throw MQTT_ERR_INVALID_TOPIC_FILTER with 0x8F', () => {
  for (const filter of [...invalidPlainFilters, ...invalidSharedFilters]) {
    assertMqttError(() => validateTopicFilter(filter), 'MQTT_ERR_INVALID_TOPIC_FILTER', 0x8f, JSON.stringify(filter));
    assert.equal(isValidTopicFilter(filter), false, filter);
  }
});

test('an empty topic filter throws MQTT_ERR_EMPTY_TOPIC_FILTER with 0x81', () => {
  assertMqttError(() => validateTopicFilter(''), 'MQTT_ERR_EMPTY_TOPIC_FILTER', 0x81, 'empty');
  assert.equal(isValidTopicFilter(''), false);
  assert.equal(typeof topicFilterProblem(''), 'string');
});

test('topicFilterProblem takes $share literally', () => {
  for (const filter of validFilters) assert.equal(topicFilterProblem(filter), undefined, filter);
  for (const filter of invalidPlainFilters) assert.equal(typeof topicFilterProblem(filter), 'string', filter);
  // Malformed as shared subscriptions, but well-formed literal filters (as MQTT 3.1.1 reads them).
  for (const filter of ['$share//a', '$share/g', '$share/g/', '$share/+/a']) {
    assert.equal(topicFilterProblem(filter), undefined, filter);
  }
});

test('parseSharedSubscription splits group and filter', () => {
  const cases: Array<[string, { group: string; filter: string } | undefined]> = [
    ['$share/g/a/#', { group: 'g', filter: 'a/#' }],
    ['$share/g/#', { group: 'g', filter: '#' }],
    ['$share/g//', { group: 'g', filter: '/' }],
    ['$share/g//a', { group: 'g', filter: '/a' }],
    ['$share/consumers/$SYS/+', { group: 'consumers', filter: '$SYS/+' }],
    ['$share/$share/a', { group: '$share', filter: 'a' }],
    ['a/b', undefined],
    ['#', undefined],
    ['$share', undefined],
    ['$SHARE/g/a', undefined],
    ['$sharex/g/a', undefined],
    ['a/$share/g/b', undefined],
  ];
  for (const [input, expected] of cases) assert.deepEqual(parseSharedSubscription(input), expected, input);
});

test('parseSharedSubscription rejects malformed shared filters', () => {
  for (const filter of invalidSharedFilters) {
    assertMqttError(
      () => parseSharedSubscription(filter),
      'MQTT_ERR_INVALID_TOPIC_FILTER',
      0x8f,
      JSON.stringify(filter),
    );
  }
});
