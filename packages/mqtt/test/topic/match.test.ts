import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topicMatches } from '../../src/topic/index.js';
import { prng } from '../support/prng.js';

// [filter, topic, expected]: the examples of MQTT 3.1.1 4.7 and MQTT 5.0 4.7 first, then edge cases.
const table: Array<[string, string, boolean]> = [
  // Multi-level wildcard (3.1.1 4.7.1.2, 5.0 4.7.1.2).
  ['sport/tennis/player1/#', 'sport/tennis/player1', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
  ['sport/tennis/player1/#', 'sport/tennis/player2', false],
  ['sport/tennis/player1/#', 'sport/tennis', false],
  ['sport/#', 'sport', true],
  ['sport/#', 'sport/', true],
  ['sport/#', 'sports', false],
  ['#', 'sport/tennis/player1', true],
  ['#', '/', true],
  ['#', 'a', true],
  // Single-level wildcard (4.7.1.3).
  ['sport/tennis/+', 'sport/tennis/player1', true],
  ['sport/tennis/+', 'sport/tennis/player2', true],
  ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
  ['sport/+', 'sport', false],
  ['sport/+', 'sport/', true],
  ['sport/+/player1', 'sport/tennis/player1', true],
  ['sport/+/player1', 'sport/tennis/player2', false],
  ['+/tennis/#', 'sport/tennis/player1', true],
  ['+/tennis/#', 'sport/tennis', true],
  ['+/tennis/#', 'sport/golf', false],
  ['+/+', '/finance', true],
  ['/+', '/finance', true],
  ['+', '/finance', false],
  ['+', 'finance', true],
  ['+', '/', false],
  ['+/+', '/', true],
  // Topics beginning with $ (4.7.2).
  ['#', '$SYS/monitor/Clients', false],
  ['#', '$SYS', false],
  ['+/monitor/Clients', '$SYS/monitor/Clients', false],
  ['+', '$SYS', false],
  ['+/#', '$SYS/x', false],
  ['$SYS/#', '$SYS/monitor/Clients', true],
  ['$SYS/#', '$SYS', true],
  ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
  ['$SYS/+/Clients', '$SYS/monitor/Clients', true],
  ['a/+', 'a/$SYS', true],
  ['a/#', 'a/$SYS/x', true],
  ['+/$x', 'a/$x', true],
  // Case and characters are significant (4.7.3).
  ['ACCOUNTS', 'Accounts', false],
  ['Accounts payable', 'Accounts payable', true],
  ['Accounts', 'Accounts payable', false],
  ['/', '/', true],
  // Empty levels are levels.
  ['a//b', 'a//b', true],
  ['a/+/b', 'a//b', true],
  ['a/+/b', 'a/b', false],
  ['a/#', 'a//', true],
  ['a/+', 'a//', false],
  ['a/+/+', 'a//', true],
  ['//#', '//', true],
  ['//#', '/', true],
  ['/a/#', '/', false],
  ['/#', '/', true],
  ['/#', 'a', false],
  ['+/#', '/', true],
  ['a/b', 'a/b/', false],
  ['a/b/', 'a/b', false],
  ['a/b/#', 'a/b', true],
  ['a/b/#', 'a/bc', false],
  ['a/b/#', 'a', false],
  ['a/bc', 'a/b', false],
  ['a/b', 'a/bc', false],
  // $share is not interpreted: strip it first.
  ['$share/g/a', 'a', false],
  ['$share/g/#', 'a', false],
  // Multi-byte characters compare by UTF-16 unit like everything else.
  ['caf\u00e9/+', 'caf\u00e9/\u{1f697}', true],
  ['caf\u00e9/+', 'cafe/x', false],
];

test('topicMatches: specification examples and edge cases', () => {
  for (const [filter, topic, expected] of table) {
    assert.equal(topicMatches(filter, topic), expected, `${JSON.stringify(filter)} ~ ${JSON.stringify(topic)}`);
  }
});

test('topicMatches: an empty filter matches nothing', () => {
  assert.equal(topicMatches('', 'a'), false);
  assert.equal(topicMatches('', ''), false);
});

/** Straightforward split-based definition, to check the index walk against. */
function reference(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0]!.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

test('topicMatches agrees with a split-based reference on random inputs', () => {
  const random = prng(0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const levels = ['', 'a', 'b', 'ab', '$x', '$'];
  // Empty names and filters are invalid, so the generators retry instead of producing them.
  const topicOf = (): string =>
    Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(levels)).join('/') || topicOf();
  const filterOf = (): string => {
    const n = 1 + Math.floor(random() * 4);
    const parts = Array.from({ length: n }, () => (random() < 0.3 ? '+' : pick(levels)));
    if (random() < 0.3) parts[n - 1] = '#';
    return parts.join('/') || filterOf();
  };
  let matches = 0;
  for (let i = 0; i < 20_000; i++) {
    const filter = filterOf();
    const topic = topicOf();
    const expected = reference(filter, topic);
    if (expected) matches++;
    assert.equal(topicMatches(filter, topic), expected, `${JSON.stringify(filter)} ~ ${JSON.stringify(topic)}`);
  }
  // Guard against a generator that only ever produces non-matches.
  assert.ok(matches > 1000, `only ${matches} matches`);
});
