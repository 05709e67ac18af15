// The sessions' queue (client and broker): order, length and iteration across its compactions; what it lets go.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Fifo } from '../../src/session/fifo.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

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

test('Fifo puts a resend back at the head and pops the newest', () => {
  const fifo = new Fifo<string>();
  fifo.push('c');
  fifo.push('d');
  assert.equal(fifo.shift(), 'c');
  fifo.unshiftAll(['a', 'b']);
  assert.deepEqual([...fifo], ['a', 'b', 'd']);
  assert.equal(fifo.pop(), 'd');
  assert.equal(fifo.pop(), 'b');
  assert.equal(fifo.shift(), 'a');
  assert.equal(fifo.pop(), undefined);
  assert.equal(fifo.length, 0);
  fifo.push('e');
  assert.deepEqual([...fifo], ['e']);
});

test('Fifo lets a shifted item go at once, while newer ones still wait', async () => {
  // The client's queue kept every sent message (with its payload) reachable behind its head until it compacted,
  // past 1 024 of them: a vehicle that queues a log upload at each loss of coverage held hundreds of them.
  const fifo = new Fifo<{ payload: Uint8Array }>();
  const sent = (): WeakRef<object> => {
    const message = { payload: new Uint8Array(1024) };
    fifo.push(message);
    fifo.push({ payload: new Uint8Array(1) });
    assert.equal(fifo.shift(), message);
    return new WeakRef(message);
  };
  const ref = sent();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  assert.equal(ref.deref(), undefined);
  assert.equal(fifo.length, 1);
});

test('removeWhere takes out what it picks, in order, behind a shifted head, and keeps the rest in order', () => {
  const fifo = new Fifo<number>();
  for (let i = 0; i < 10; i++) fifo.push(i);
  fifo.shift();
  fifo.shift();
  assert.deepEqual(
    fifo.removeWhere((n) => n % 3 === 0),
    [3, 6, 9],
  );
  assert.deepEqual([...fifo], [2, 4, 5, 7, 8]);
  assert.equal(fifo.length, 5);
  assert.deepEqual(
    fifo.removeWhere(() => false),
    [],
  );
  fifo.push(10);
  assert.deepEqual([fifo.shift(), fifo.pop(), fifo.length], [2, 10, 4]);
});

test('removeWhere whose predicate throws leaves the queue as it was', () => {
  const q = new Fifo<number>();
  for (let i = 0; i < 10; i++) q.push(i);
  q.shift();
  assert.throws(() =>
    q.removeWhere((n) => {
      if (n === 5) throw new Error('an authorize hook failed');
      return n % 2 === 1;
    }),
  );
  assert.deepEqual([...q], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(
    q.removeWhere((n) => n % 2 === 1),
    [1, 3, 5, 7, 9],
  );
  assert.deepEqual([...q], [2, 4, 6, 8]);
});
