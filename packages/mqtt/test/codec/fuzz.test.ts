// A bounded fuzz run in the normal suite (the long one is `npm run fuzz`). Seeds are fixed so a failure replays:
// the FuzzFinding message carries the seed, the recipe and the input hex.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder } from '../../src/codec/index.js';
import { hex } from './bytes.js';
import { FuzzFinding, fuzz, makeCase, runCase, runPacketCase } from './fuzz-engine.js';

// About 3 s on the shared 2-core machine; a count, not a time, so every run checks the same inputs.
const ITERATIONS = 6000;
const FIRST_SEED = 0x0c0dec;

test(`codec fuzz: ${ITERATIONS} seeded inputs, whole and split, both versions and roles`, { timeout: 120_000 }, () => {
  const stats = fuzz(FIRST_SEED, (s) => s.iterations < ITERATIONS);
  assert.equal(stats.iterations, ITERATIONS);
  // The inputs must reach past the fixed header: many decode, and the errors are spread over many checks.
  assert.ok(stats.packets > ITERATIONS / 10, `${stats.packets} packets decoded`);
  assert.ok(stats.errors.size >= 15, `errors reached: ${[...stats.errors.keys()].join(', ')}`);
});

test('structured fuzz: 20000 random packet objects, whatever encodes must decode and re-encode identically', () => {
  let encoded = 0;
  for (let seed = 1; seed <= 20000; seed++) if (runPacketCase(seed) === 'encoded') encoded++;
  // Both outcomes must be common, or the generator tests only one side.
  assert.ok(encoded > 2000 && encoded < 18000, `${encoded} encoded`);
});

test('a seed builds the same case every time', () => {
  const a = makeCase(12345);
  const b = makeCase(12345);
  assert.deepEqual(a, b);
});

test('the engine reports what it must catch', () => {
  // A decoder whose next() throws a TypeError stands in for a bug: runCase must turn it into a FuzzFinding.
  const original = Decoder.prototype.next;
  Decoder.prototype.next = function broken() {
    throw new TypeError('boom');
  };
  try {
    const c = { seed: 1, input: hex`c0 00`, options: { protocolVersion: 4 as const }, recipe: 'planted' };
    assert.throws(
      () => runCase(c),
      (e: unknown) => e instanceof FuzzFinding && /non-MqttError.*boom/.test(e.message),
    );
  } finally {
    Decoder.prototype.next = original;
  }
});
