// The list of open connections, linked through its items: adding, removing from any place, removing what is not
// in the list, and removing the item being visited while iterating (shutdown closes connections as it walks).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Linked, LinkedList } from '../src/connection-list.js';

class Item implements Linked<Item> {
  listPrev: Item | undefined = undefined;
  listNext: Item | undefined = undefined;
  constructor(readonly name: string) {}
}

const names = (list: LinkedList<Item>) => [...list].map((item) => item.name);

describe('LinkedList', () => {
  test('adds newest first and removes from the head, the middle and the tail', () => {
    const list = new LinkedList<Item>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Item(n)) as [Item, Item, Item, Item];
    for (const item of [a, b, c, d]) list.add(item);
    assert.deepEqual(names(list), ['d', 'c', 'b', 'a']);
    assert.equal(list.delete(c), true);
    assert.deepEqual(names(list), ['d', 'b', 'a']);
    assert.equal(list.delete(d), true);
    assert.deepEqual(names(list), ['b', 'a']);
    assert.equal(list.delete(a), true);
    assert.deepEqual(names(list), ['b']);
    assert.equal(list.size, 1);
    // Not in the list (any more, or never): nothing changes.
    assert.equal(list.delete(a), false);
    assert.equal(list.delete(new Item('x')), false);
    assert.deepEqual(names(list), ['b']);
    assert.equal(list.delete(b), true);
    assert.deepEqual(names(list), []);
    assert.equal(list.size, 0);
    list.add(a);
    assert.deepEqual(names(list), ['a']);
  });

  test('the item being visited can be removed', () => {
    const list = new LinkedList<Item>();
    for (const n of ['a', 'b', 'c']) list.add(new Item(n));
    const visited: string[] = [];
    for (const item of list) {
      visited.push(item.name);
      list.delete(item);
    }
    assert.deepEqual(visited, ['c', 'b', 'a']);
    assert.equal(list.size, 0);
  });
});
