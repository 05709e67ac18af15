// The Range / If-Range / If-None-Match decisions of the artifact download, as a table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideRange, ifNoneMatchHits, ifRangeAllows, type RangeDecision } from '../src/http/range.js';

const SIZE = 1000;
const rows: Array<[string | undefined, RangeDecision]> = [
  [undefined, { kind: 'whole' }],
  ['bytes=0-99', { kind: 'partial', start: 0, end: 99 }],
  ['bytes=500-599', { kind: 'partial', start: 500, end: 599 }],
  ['bytes=900-', { kind: 'partial', start: 900, end: 999 }],
  ['bytes=-100', { kind: 'partial', start: 900, end: 999 }],
  ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
  ['bytes=990-5000', { kind: 'partial', start: 990, end: 999 }],
  ['bytes=999-999', { kind: 'partial', start: 999, end: 999 }],
  ['BYTES = 0-0', { kind: 'partial', start: 0, end: 0 }],
  ['bytes=1000-', { kind: 'unsatisfiable' }],
  ['bytes=1000-1001', { kind: 'unsatisfiable' }],
  ['bytes=-0', { kind: 'unsatisfiable' }],
  // Ignored, whole representation: multiple ranges, malformed, other units, reversed.
  ['bytes=0-9,20-29', { kind: 'whole' }],
  ['bytes=0-9,', { kind: 'partial', start: 0, end: 9 }],
  ['bytes=abc', { kind: 'whole' }],
  ['bytes=-', { kind: 'whole' }],
  ['items=0-9', { kind: 'whole' }],
  ['bytes=9-0', { kind: 'whole' }],
  ['bytes 0-9', { kind: 'whole' }],
  ['bytes=99999999999999999999-', { kind: 'whole' }],
];

for (const [header, expected] of rows) {
  test(`Range ${JSON.stringify(header)} on ${SIZE} bytes → ${JSON.stringify(expected)}`, () => {
    assert.deepEqual(decideRange(header, SIZE), expected);
  });
}

test('an empty artifact satisfies no range', () => {
  assert.deepEqual(decideRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  assert.deepEqual(decideRange('bytes=-1', 0), { kind: 'unsatisfiable' });
});

test('If-Range applies the range only for the same strong ETag', () => {
  assert.equal(ifRangeAllows(undefined, '"abc"'), true);
  assert.equal(ifRangeAllows('"abc"', '"abc"'), true);
  assert.equal(ifRangeAllows('"abd"', '"abc"'), false);
  assert.equal(ifRangeAllows('W/"abc"', '"abc"'), false);
  assert.equal(ifRangeAllows('Sun, 22 Nov 2026 07:00:00 GMT', '"abc"'), false);
});

test('If-None-Match matches by weak comparison, lists and *', () => {
  assert.equal(ifNoneMatchHits(undefined, '"abc"'), false);
  assert.equal(ifNoneMatchHits('"abc"', '"abc"'), true);
  assert.equal(ifNoneMatchHits('W/"abc"', '"abc"'), true);
  assert.equal(ifNoneMatchHits('"x", "abc"', '"abc"'), true);
  assert.equal(ifNoneMatchHits('*', '"abc"'), true);
  assert.equal(ifNoneMatchHits('"x"', '"abc"'), false);
});
