import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../../src/session/backoff.js';
import { prng } from '../support/prng.js';

test('ceilings grow 1 s → 60 s (Paho defaults) without jitter', () => {
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, { jitter: 'none' }));
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
});

test('1000 clients that lost the broker together spread their reconnects', () => {
  const random = prng(42);
  const clients = 1000;
  // Each client's schedule: the absolute times of its first 8 attempts.
  const firstAttempt: number[] = [];
  const cappedAttempt: number[] = [];
  const eighthAttemptAt: number[] = [];
  for (let c = 0; c < clients; c++) {
    let t = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      const d = backoffDelay(attempt, {}, random);
      assert.ok(d >= 0 && d <= Math.min(60_000, 1000 * 2 ** attempt));
      t += d;
      if (attempt === 0) firstAttempt.push(d);
      if (attempt === 7) cappedAttempt.push(d);
    }
    eighthAttemptAt.push(t);
  }
  // Full jitter: uniform over [0, ceiling]. Ten equal buckets each hold 10 % ± 4 %; nobody shares a millisecond
  // with more than a handful of others.
  for (const [delays, ceiling] of [
    [firstAttempt, 1000],
    [cappedAttempt, 60_000],
  ] as const) {
    const buckets = new Array<number>(10).fill(0);
    for (const d of delays) buckets[Math.min(9, Math.floor((d / ceiling) * 10))]!++;
    for (const b of buckets) assert.ok(b > 60 && b < 140, `bucket of ${b} in ${buckets.join(',')}`);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `mean ${mean}`);
    const perMs = new Map<number, number>();
    for (const d of delays) perMs.set(Math.floor(d), (perMs.get(Math.floor(d)) ?? 0) + 1);
    assert.ok(Math.max(...perMs.values()) <= 5);
  }
  // The eighth attempts land anywhere in a window of minutes, not on one instant.
  const sorted = [...eighthAttemptAt].sort((a, b) => a - b);
  assert.ok(sorted[899]! - sorted[99]! > 30_000, `80 % of attempts span ${sorted[899]! - sorted[99]!} ms`);
  assert.ok(new Set(sorted.map((x) => Math.floor(x / 100))).size > 500, 'few clients share a 100 ms slot');
  // Without jitter the whole fleet would reconnect in the same millisecond.
  const unjittered = new Set(Array.from({ length: clients }, () => backoffDelay(0, { jitter: 'none' }, random)));
  assert.equal(unjittered.size, 1);
});

test('equal jitter keeps at least half the ceiling', () => {
  const random = prng(7);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(3, { jitter: 'equal' }, random);
    assert.ok(d >= 4000 && d <= 8000);
  }
});

test('an option given as undefined takes its default, as one left out does (no NaN delay, no tight loop)', () => {
  const random = () => 1;
  const given = { initialDelayMs: undefined, maxDelayMs: undefined, multiplier: undefined, jitter: undefined };
  for (let attempt = 0; attempt < 8; attempt++) {
    assert.equal(backoffDelay(attempt, given, random), backoffDelay(attempt, {}, random));
  }
  assert.equal(backoffDelay(0, given, random), 1000);
});
