// A session's subscriptions: one kept in a field, a Map from the second on and back to the field at one, read like a
// Map in every state (size, get, has, keys, values, entries, insertion order, replacing in place).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SubscriptionEntry } from '../src/session.js';
import { type SubscriptionHolder, Subscriptions } from '../src/subscriptions.js';

const entry = (filter: string, qos: 0 | 1 | 2 = 0): SubscriptionEntry => ({
  filter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
  subscriptionId: undefined,
});

/** What a Map with the same operations would hold, in its order. */
function seen(subscriptions: Subscriptions): Array<[string, number]> {
  const fromEntries = [...subscriptions].map(([filter, e]) => [filter, e.qos] as [string, number]);
  assert.deepEqual(
    [...subscriptions.keys()],
    fromEntries.map(([filter]) => filter),
  );
  assert.deepEqual(
    [...subscriptions.values()].map((e) => [e.filter, e.qos]),
    fromEntries,
  );
  assert.equal(subscriptions.size, fromEntries.length);
  for (const [filter, qos] of fromEntries) {
    assert.equal(subscriptions.has(filter), true);
    assert.equal(subscriptions.get(filter)?.qos, qos);
  }
  return fromEntries;
}

describe('Subscriptions', () => {
  test('empty, one, replaced in place, many, back to one and to none', () => {
    const s = new Subscriptions();
    assert.deepEqual(seen(s), []);
    assert.equal(s.has('a'), false);
    assert.equal(s.delete('a'), false);

    s.add(entry('a'));
    assert.deepEqual(seen(s), [['a', 0]]);
    assert.equal(s.get('b'), undefined);
    assert.equal(s.delete('b'), false);
    s.add(entry('a', 1));
    assert.deepEqual(seen(s), [['a', 1]]);

    s.add(entry('b'));
    s.add(entry('c', 2));
    s.add(entry('a', 2));
    assert.deepEqual(seen(s), [
      ['a', 2],
      ['b', 0],
      ['c', 2],
    ]);
    assert.equal(s.delete('a'), true);
    assert.equal(s.delete('a'), false);
    assert.deepEqual(seen(s), [
      ['b', 0],
      ['c', 2],
    ]);
    assert.equal(s.delete('b'), true);
    assert.deepEqual(seen(s), [['c', 2]]);
    s.add(entry('d'));
    assert.deepEqual(seen(s), [
      ['c', 2],
      ['d', 0],
    ]);
    assert.equal(s.delete('d'), true);
    assert.equal(s.delete('c'), true);
    assert.deepEqual(seen(s), []);
  });

  test('clear empties one or many', () => {
    const s = new Subscriptions();
    s.add(entry('a'));
    s.clear();
    assert.deepEqual(seen(s), []);
    s.add(entry('a'));
    s.add(entry('b'));
    s.clear();
    assert.deepEqual(seen(s), []);
    s.add(entry('c'));
    assert.deepEqual(seen(s), [['c', 0]]);
  });

  test('views of one holder share its field, which keeps a lone subscription as it is', () => {
    const holder: SubscriptionHolder = { subscribed: undefined };
    const first = new Subscriptions(holder);
    const a = entry('a', 1);
    first.add(a);
    assert.equal(holder.subscribed, a, 'one subscription: the entry itself, no object around it');
    const second = new Subscriptions(holder);
    assert.deepEqual(seen(second), [['a', 1]]);
    second.add(entry('b'));
    assert.ok(holder.subscribed instanceof Map);
    assert.deepEqual(seen(first), [
      ['a', 1],
      ['b', 0],
    ]);
    assert.equal(first.held, holder.subscribed);
    first.delete('b');
    assert.equal(holder.subscribed, a, 'back to one: the Map goes');
    second.clear();
    assert.equal(holder.subscribed, undefined);
    assert.deepEqual(seen(first), []);
  });
});
