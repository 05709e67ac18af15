import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type InflightEntry, InflightTable } from '../../src/session/inflight-table.js';
import { prng } from '../support/prng.js';

interface Entry extends InflightEntry {
  name: string;
}

const entry = (packetId: number): Entry => ({
  packetId,
  name: `m${packetId}`,
  sentBefore: undefined,
  sentAfter: undefined,
});

/** Checks the table against a Map (insertion-ordered) holding what it should hold. */
function assertSame(table: InflightTable<Entry>, model: Map<number, Entry>, probe: readonly number[]): void {
  assert.equal(table.size, model.size);
  assert.deepEqual(
    table.inSendOrder().map((e) => e.packetId),
    [...model.keys()],
  );
  for (const id of probe) {
    assert.equal(table.get(id), model.get(id), `get(${id})`);
    assert.equal(table.has(id), model.has(id), `has(${id})`);
  }
}

test('ids handed out round-robin with a window: every lookup, removal and the send order match a Map', () => {
  const random = prng(7);
  const table = new InflightTable<Entry>();
  const model = new Map<number, Entry>();
  let next = 1;
  for (let step = 0; step < 200_000; step++) {
    // A window of up to 40 in flight; acks mostly in order, sometimes one from the middle (QoS 2 mixed with QoS 1).
    if (model.size < 40 && random() < 0.55) {
      while (model.has(next)) next = next === 0xffff ? 1 : next + 1;
      const e = entry(next);
      table.add(e);
      model.set(next, e);
      next = next === 0xffff ? 1 : next + 1;
    } else if (model.size > 0) {
      const ids = [...model.keys()];
      const id = random() < 0.8 ? (ids[0] as number) : (ids[Math.floor(random() * ids.length)] as number);
      assert.equal(table.delete(id), model.get(id));
      model.delete(id);
    }
    if (step % 997 === 0) assertSame(table, model, [...model.keys(), next, next + 1, 1, 0xffff]);
  }
  assertSame(table, model, [...model.keys()]);
});

test('ids that share their low bits (a restored session, a long-held id) get slots of their own and survive removals', () => {
  const random = prng(11);
  const table = new InflightTable<Entry>();
  const model = new Map<number, Entry>();
  for (let step = 0; step < 50_000; step++) {
    // Ids from a few residues modulo every table size: the table doubles until each has its own slot.
    const id = ((Math.floor(random() * 64) * 64 + (random() < 0.5 ? 15 : 0)) % 0xffff) + 1;
    if (!model.has(id) && random() < 0.6) {
      const e = entry(id);
      table.add(e);
      model.set(id, e);
    } else {
      assert.equal(table.delete(id), model.get(id));
      model.delete(id);
    }
    if (step % 101 === 0) assertSame(table, model, [id, id + 64, id - 64, ...model.keys()]);
  }
});

test('grows past thousands in flight, gives the room back once empty, and unlinks what it lets go', () => {
  const table = new InflightTable<Entry>();
  const unused = new InflightTable<Entry>();
  assert.equal(unused.get(1), undefined);
  assert.equal(unused.delete(1), undefined);
  assert.ok(unused.fits(1));
  assert.equal(
    (unused as unknown as { slots: unknown[] }).slots,
    (table as unknown as { slots: unknown[] }).slots,
    'a table that never held anything shares its (empty) slots',
  );
  const entries = Array.from({ length: 20_000 }, (_, i) => entry(i + 1));
  for (const e of entries) table.add(e);
  assert.equal(table.size, 20_000);
  assert.equal(table.get(12_345)?.name, 'm12345');
  for (const e of entries.slice(0, 19_999)) table.delete(e.packetId as number);
  assert.deepEqual(
    table.inSendOrder().map((e) => e.name),
    ['m20000'],
  );
  table.delete(20_000);
  assert.equal(table.size, 0);
  assert.equal((table as unknown as { slots: unknown[] }).slots.length, 16);
  assert.equal(table.delete(20_000), undefined);
  // clear() forgets everything, links included, so a cleared entry can be added again.
  const a = entry(5);
  const b = entry(6);
  table.add(a);
  table.add(b);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal((table as unknown as { slots: unknown[] }).slots.length, 1, 'back to the shared empty slots');
  assert.equal(a.sentAfter, undefined);
  assert.equal(b.sentBefore, undefined);
  assert.equal(table.get(5), undefined);
  table.add(b);
  assert.deepEqual(table.inSendOrder(), [b]);
});

test('two ids that select one slot get the table doubled until each has its own; fits() tells which ids would not', () => {
  const table = new InflightTable<Entry>();
  const slots = () => (table as unknown as { slots: unknown[] }).slots.length;
  table.add(entry(1));
  assert.equal(table.fits(17), false, '17 & 15 is 1, taken');
  assert.equal(table.fits(2), true);
  table.add(entry(17));
  assert.equal(slots(), 32);
  // 1 + 65 536 / 2 collides with 1 up to 32 768 slots: the table goes to the size where every id is apart.
  table.add(entry(1 + 0x8000));
  assert.equal(slots(), 0x10000);
  assert.deepEqual(
    [1, 17, 1 + 0x8000, 2, 33].map((id) => table.get(id)?.name),
    ['m1', 'm17', 'm32769', undefined, undefined],
  );
  table.delete(17);
  assert.equal(table.get(1)?.name, 'm1');
  assert.equal(table.get(1 + 0x8000)?.name, 'm32769');
});
