import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MqttError } from '../../src/codec/errors.js';
import { SubscriptionTrie, topicMatches } from '../../src/topic/index.js';
import { prng } from '../support/prng.js';

/** Sorted "key filter=value" lines for one topic, failing on any (key, filter) pair visited twice. */
function matches<V>(trie: SubscriptionTrie<string, V>, topic: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  trie.match(topic, (key, value, filter) => {
    const pair = `${key} ${filter}`;
    assert.ok(!seen.has(pair), `${pair} visited twice for ${JSON.stringify(topic)}`);
    seen.add(pair);
    out.push(`${pair}=${String(value)}`);
  });
  return out.sort();
}

test('add reports new pairs and replaces the value of an existing one', () => {
  const trie = new SubscriptionTrie<string, number>();
  assert.equal(trie.add('a/b', 'c1', 0), true);
  assert.equal(trie.add('a/b', 'c1', 1), false);
  assert.equal(trie.add('a/b', 'c2', 2), true);
  assert.equal(trie.add('a/+', 'c1', 0), true);
  assert.equal(trie.add('a/+', 'c1', 2), false);
  assert.equal(trie.size, 3);
  assert.equal(trie.get('a/b', 'c1'), 1);
  assert.equal(trie.get('a/+', 'c1'), 2);
  assert.equal(trie.has('a/+', 'c2'), false);
  assert.deepEqual(matches(trie, 'a/b'), ['c1 a/+=2', 'c1 a/b=1', 'c2 a/b=2']);
});

test('remove reports whether the pair existed and forgets empty filters', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('a/b', 'c1', 0);
  trie.add('a/#', 'c1', 0);
  assert.equal(trie.remove('a/b', 'c2'), false);
  assert.equal(trie.remove('x', 'c1'), false);
  assert.equal(trie.remove('a/b', 'c1'), true);
  assert.equal(trie.remove('a/b', 'c1'), false);
  assert.deepEqual([...trie.filters()], ['a/#']);
  assert.equal(trie.remove('a/#', 'c1'), true);
  assert.equal(trie.size, 0);
  assert.deepEqual([...trie.filters()], []);
  assert.equal(trie.nodeCount(), 0);
  assert.deepEqual(matches(trie, 'a/b'), []);
});

test('one key matching through several filters is visited once per filter', () => {
  const trie = new SubscriptionTrie<string, string>();
  for (const filter of ['#', 'a/#', 'a/b/#', '+/b/c', 'a/+/c', 'a/b/c', '+/+/+', 'a/b/+', 'a/b/c/#']) {
    trie.add(filter, 'k', filter);
  }
  trie.add('a/b/c/d', 'k', 'no');
  trie.add('a/b', 'k', 'no');
  const got = matches(trie, 'a/b/c').map((line) => line.split(' ')[1]!.split('=')[0]!);
  assert.deepEqual(got.sort(), ['#', '+/+/+', '+/b/c', 'a/#', 'a/+/c', 'a/b/#', 'a/b/+', 'a/b/c', 'a/b/c/#'].sort());
});

test('topics starting with $ skip filters whose first level is a wildcard', () => {
  const trie = new SubscriptionTrie<string, number>();
  for (const filter of ['#', '+/monitor/Clients', '+/#', '$SYS/#', '$SYS/monitor/+', '$SYS/monitor/Clients']) {
    trie.add(filter, filter, 0);
  }
  assert.deepEqual(
    matches(trie, '$SYS/monitor/Clients').map((line) => line.split(' ')[0]),
    ['$SYS/#', '$SYS/monitor/+', '$SYS/monitor/Clients'],
  );
  assert.deepEqual(
    matches(trie, 'x/monitor/Clients').map((line) => line.split(' ')[0]),
    ['#', '+/#', '+/monitor/Clients'],
  );
  assert.deepEqual(
    matches(trie, '$SYS').map((line) => line.split(' ')[0]),
    ['$SYS/#'],
  );
});

test('# includes the parent level and + needs a level', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('sport/#', 'hash', 0);
  trie.add('sport/+', 'plus', 0);
  assert.deepEqual(matches(trie, 'sport'), ['hash sport/#=0']);
  assert.deepEqual(matches(trie, 'sport/'), ['hash sport/#=0', 'plus sport/+=0']);
  assert.deepEqual(matches(trie, 'sports'), []);
});

test('empty levels are levels', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('/+', 'a', 0);
  trie.add('+/+', 'b', 0);
  trie.add('+', 'c', 0);
  trie.add('//', 'd', 0);
  trie.add('a//b', 'e', 0);
  assert.deepEqual(matches(trie, '/finance'), ['a /+=0', 'b +/+=0']);
  assert.deepEqual(matches(trie, 'finance'), ['c +=0']);
  assert.deepEqual(matches(trie, '//'), ['d //=0']);
  assert.deepEqual(matches(trie, 'a//b'), ['e a//b=0']);
  assert.deepEqual(matches(trie, 'a/b'), ['b +/+=0']);
});

test('exact filters never touch the trie', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('vehicles/v1/ota/cmd', 'v1', 1);
  trie.add('vehicles/v2/ota/cmd', 'v2', 1);
  assert.equal(trie.nodeCount(), 0);
  assert.deepEqual(matches(trie, 'vehicles/v1/ota/cmd'), ['v1 vehicles/v1/ota/cmd=1']);
  assert.deepEqual(matches(trie, 'vehicles/v3/ota/cmd'), []);
  trie.add('vehicles/+/ota/cmd', 'ops', 2);
  assert.equal(trie.nodeCount(), 4);
  assert.deepEqual(matches(trie, 'vehicles/v1/ota/cmd'), ['ops vehicles/+/ota/cmd=2', 'v1 vehicles/v1/ota/cmd=1']);
});

test('a topic spelled like a wildcard filter is matched by the trie only, not also as an exact filter', () => {
  // Not a valid topic name (the broker refuses it before routing); the trie still reports each pair once.
  const trie = new SubscriptionTrie<string, number>();
  trie.add('a/+', 'k', 1);
  trie.add('a/#', 'k', 2);
  assert.deepEqual(matches(trie, 'a/+'), ['k a/#=2', 'k a/+=1']);
  assert.deepEqual(matches(trie, 'a/#'), ['k a/#=2', 'k a/+=1']);
});

test('removing one filter keeps the nodes another still uses', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('a/+/c', 'k', 0);
  trie.add('a/+/d', 'k', 0);
  trie.add('a/#', 'k', 0);
  assert.equal(trie.nodeCount(), 4); // a, +, c, d
  trie.remove('a/+/c', 'k');
  assert.equal(trie.nodeCount(), 3);
  trie.remove('a/+/d', 'k');
  assert.equal(trie.nodeCount(), 1); // a still carries a/#
  assert.deepEqual(matches(trie, 'a/x/d'), ['k a/#=0']);
  trie.remove('a/#', 'k');
  assert.equal(trie.nodeCount(), 0);
});

test('clear empties everything', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('a/+', 'k', 0);
  trie.add('a/b', 'k', 0);
  trie.add('#', 'k', 0);
  trie.clear();
  assert.equal(trie.size, 0);
  assert.equal(trie.nodeCount(), 0);
  assert.deepEqual([...trie.filters()], []);
  assert.deepEqual(matches(trie, 'a/b'), []);
  assert.equal(trie.add('a/+', 'k', 1), true);
  assert.deepEqual(matches(trie, 'a/b'), ['k a/+=1']);
});

test('add rejects invalid filters and leaves the trie unchanged', () => {
  const trie = new SubscriptionTrie<string, number>();
  assert.throws(
    () => trie.add('', 'k', 0),
    (err: unknown) => err instanceof MqttError && err.code === 'MQTT_ERR_EMPTY_TOPIC_FILTER' && err.reasonCode === 0x81,
  );
  for (const filter of ['a/#/b', 'a#', 'a/+b', '#/', 'a\0']) {
    assert.throws(
      () => trie.add(filter, 'k', 0),
      (err: unknown) =>
        err instanceof MqttError && err.code === 'MQTT_ERR_INVALID_TOPIC_FILTER' && err.reasonCode === 0x8f,
      filter,
    );
  }
  assert.equal(trie.size, 0);
  assert.equal(trie.nodeCount(), 0);
});

test('a $share prefix is taken literally (the broker strips it)', () => {
  const trie = new SubscriptionTrie<string, number>();
  trie.add('$share/g/a/+', 'k', 0);
  assert.deepEqual(matches(trie, 'a/b'), []);
  assert.deepEqual(matches(trie, '$share/g/a/b'), ['k $share/g/a/+=0']);
});

test('randomized: the trie agrees with topicMatches over every filter, through removals', () => {
  const random = prng(20240611);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const levels = ['', 'a', 'b', 'c', '$x', '$SYS'];
  const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
  // Empty names and filters are invalid, so the generators retry instead of producing them.
  const topicOf = (): string =>
    Array.from({ length: 1 + Math.floor(random() * 5) }, () => pick(levels)).join('/') || topicOf();
  const filterOf = (): string => {
    const n = 1 + Math.floor(random() * 5);
    const parts = Array.from({ length: n }, () => (random() < 0.25 ? '+' : pick(levels)));
    if (random() < 0.25) parts[n - 1] = '#';
    return parts.join('/') || filterOf();
  };

  const trie = new SubscriptionTrie<string, number>();
  // The model: filter -> key -> value.
  const model = new Map<string, Map<string, number>>();
  const add = (filter: string, key: string, value: number): void => {
    const entries = model.get(filter) ?? new Map<string, number>();
    model.set(filter, entries);
    const isNew = !entries.has(key);
    entries.set(key, value);
    assert.equal(trie.add(filter, key, value), isNew);
  };
  const remove = (filter: string, key: string): void => {
    const entries = model.get(filter);
    const existed = entries?.delete(key) ?? false;
    if (entries !== undefined && entries.size === 0) model.delete(filter);
    assert.equal(trie.remove(filter, key), existed);
  };
  const modelSize = (): number => [...model.values()].reduce((n, entries) => n + entries.size, 0);
  const check = (rounds: number): number => {
    assert.equal(trie.size, modelSize());
    assert.deepEqual([...trie.filters()].sort(), [...model.keys()].sort());
    let hits = 0;
    for (let i = 0; i < rounds; i++) {
      const topic = topicOf();
      const expected: string[] = [];
      for (const [filter, entries] of model) {
        if (!topicMatches(filter, topic)) continue;
        for (const [key, value] of entries) expected.push(`${key} ${filter}=${value}`);
      }
      expected.sort();
      hits += expected.length;
      assert.deepEqual(matches(trie, topic), expected, JSON.stringify(topic));
    }
    return hits;
  };

  for (let i = 0; i < 1500; i++) add(filterOf(), pick(keys), i);
  assert.ok(check(3000) > 3000, 'the generator should produce plenty of matches');

  // Random removals, some of pairs that do not exist, interleaved with re-adds.
  for (let i = 0; i < 1500; i++) {
    if (random() < 0.8) {
      const filters = [...model.keys()];
      if (random() < 0.9 && filters.length > 0) {
        const filter = pick(filters);
        remove(filter, pick([...model.get(filter)!.keys()]));
      } else {
        remove(filterOf(), pick(keys));
      }
    } else {
      add(filterOf(), pick(keys), -i);
    }
  }
  check(3000);

  // Everything out: no node may survive the churn.
  for (const [filter, entries] of [...model]) for (const key of [...entries.keys()]) remove(filter, key);
  assert.equal(trie.size, 0);
  assert.equal(trie.nodeCount(), 0);
  assert.deepEqual([...trie.filters()], []);
  check(200);
});

test('a filter goes from one subscriber to many and back, keeping their order and values', () => {
  const trie = new SubscriptionTrie<string, number>();
  const order = (topic: string) => {
    const out: string[] = [];
    trie.match(topic, (key, value) => out.push(`${key}=${value}`));
    return out;
  };
  for (const filter of ['d/1', 'd/+']) {
    assert.equal(trie.add(filter, 'a', 1), true);
    assert.equal(trie.add(filter, 'a', 2), false, 'replacing the only subscriber');
    assert.equal(trie.get(filter, 'a'), 2);
    assert.equal(trie.has(filter, 'b'), false);
    assert.equal(trie.get(filter, 'b'), undefined);
    assert.equal(trie.remove(filter, 'b'), false);
    assert.equal(trie.add(filter, 'b', 3), true);
    assert.equal(trie.add(filter, 'c', 4), true);
    assert.equal(trie.add(filter, 'b', 5), false);
    assert.deepEqual(order(filter === 'd/1' ? 'd/1' : 'd/x'), ['a=2', 'b=5', 'c=4']);
    assert.equal(trie.remove(filter, 'a'), true);
    assert.equal(trie.remove(filter, 'c'), true);
    assert.equal(trie.get(filter, 'b'), 5, 'the one left keeps its value');
    assert.equal(trie.add(filter, 'e', 6), true);
    assert.deepEqual(order(filter === 'd/1' ? 'd/1' : 'd/x'), ['b=5', 'e=6']);
    assert.equal(trie.remove(filter, 'b'), true);
    assert.equal(trie.remove(filter, 'e'), true);
    assert.equal(trie.remove(filter, 'e'), false);
    assert.deepEqual(order(filter === 'd/1' ? 'd/1' : 'd/x'), []);
  }
  assert.equal(trie.size, 0);
  assert.deepEqual([...trie.filters()], []);
  assert.equal(trie.nodeCount(), 0);
});
