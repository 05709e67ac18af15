// The session queue's FIFO: order, length and iteration across its compactions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fifo } from '../src/fifo.js';

test('Fifo keeps order, length and iteration through compactions and a refill after emptying', () => {
  const fifo = new Fifo<number>();
  let next = 0;
  let expected = 0;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3000 * (round + 1); i++) fifo.push(next++);
    for (let i = 0; i < 2500 * (round + 1); i++) assert.equal(fifo.shift(), expected++);
    assert.equal(fifo.length, next - expected);
    assert.equal(fifo.peek(), expected);
    assert.deepEqual(
      [...fifo],
      Array.from({ length: next - expected }, (_, i) => expected + i),
    );
  }
  while (fifo.length > 0) assert.equal(fifo.shift(), expected++);
  assert.equal(fifo.shift(), undefined);
  assert.equal(fifo.peek(), undefined);
  fifo.push(7);
  fifo.clear();
  assert.equal(fifo.length, 0);
  fifo.push(8);
  assert.deepEqual([...fifo], [8]);
});
