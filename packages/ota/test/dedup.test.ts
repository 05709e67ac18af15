import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeenMessageIds } from '../src/dedup.js';

const T0 = 1_780_000_000_000;

test('the same msgId is acted on once', () => {
  const seen = new SeenMessageIds();
  assert.equal(seen.add('a', T0), true);
  assert.equal(seen.add('a', T0 + 1), false);
  assert.equal(seen.has('a', T0 + 2), true);
  assert.equal(seen.has('b', T0 + 2), false);
});

test('bounded: the oldest ids are forgotten first', () => {
  const seen = new SeenMessageIds({ capacity: 3 });
  for (const [i, id] of ['a', 'b', 'c', 'd'].entries()) seen.add(id, T0 + i);
  assert.equal(seen.size, 3);
  assert.equal(seen.has('a', T0 + 10), false);
  assert.equal(seen.has('d', T0 + 10), true);
});

test('expiry: an id is forgotten ttlMs after it was acted on', () => {
  const seen = new SeenMessageIds({ ttlMs: 1000 });
  seen.add('a', T0);
  seen.add('b', T0 + 500);
  assert.equal(seen.has('a', T0 + 999), true);
  assert.equal(seen.has('a', T0 + 1000), false);
  assert.equal(seen.has('b', T0 + 1000), true);
  assert.equal(seen.size, 1);
  assert.equal(seen.add('a', T0 + 1000), true, 'an expired id may be acted on again');
});

test('survives a restart through its snapshot (JSON round trip)', () => {
  const seen = new SeenMessageIds({ capacity: 10, ttlMs: 1000 });
  seen.add('a', T0);
  seen.add('b', T0 + 1);
  const restored = new SeenMessageIds({ capacity: 10, ttlMs: 1000 }, JSON.parse(JSON.stringify(seen.snapshot())));
  assert.equal(restored.add('a', T0 + 2), false);
  assert.equal(restored.add('c', T0 + 2), true);
  assert.deepEqual(
    restored.snapshot().entries.map(([id]) => id),
    ['a', 'b', 'c'],
  );
  // A snapshot larger than a smaller capacity keeps the newest.
  const small = new SeenMessageIds({ capacity: 1 }, restored.snapshot());
  assert.deepEqual(small.snapshot().entries, [['c', T0 + 2]]);
});

test('refuses nonsensical limits', () => {
  assert.throws(() => new SeenMessageIds({ capacity: 0 }), RangeError);
  assert.throws(() => new SeenMessageIds({ ttlMs: 0 }), RangeError);
});
