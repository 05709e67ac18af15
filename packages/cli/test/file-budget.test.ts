// `otalink up` runs the broker and every simulated vehicle in one process: a fleet that cannot get the open files
// it needs is refused at start with the numbers, before anything is started.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { up } from '../src/commands/up.js';
import { fleetTooLarge, openFilesLimit, upFilesNeeded } from '../src/stack/file-budget.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
`;

test('the limit is read from /proc/self/limits ("unlimited" or a missing line: no check)', () => {
  assert.equal(openFilesLimit(LIMITS), 20000);
  assert.equal(openFilesLimit(LIMITS.replace(/20000 {16}20000/, 'unlimited            unlimited')), undefined);
  assert.equal(openFilesLimit('Limit  Soft Limit\n'), undefined);
});

test('both ends of every MQTT connection and the open journals count; the default 100 vehicles fit anywhere', () => {
  assert.equal(upFilesNeeded(100), 2 * 100 + 100 + 512);
  // Past the fleet's own journal budget its journals share the agent's default cap.
  assert.ok(upFilesNeeded(12_000) < 2 * 12_000 + 12_000);
  assert.equal(fleetTooLarge(100, 4096), undefined);
  assert.equal(fleetTooLarge(12_000, 1_048_576), undefined, 'a high limit: no refusal');
  assert.match(
    fleetTooLarge(12_000, 20_000) ?? '',
    /--vehicles 12000: .* need about \d+ open files, more than the 20000/,
  );
});

test('otalink up --vehicles beyond the limit exits 2 before starting anything', async (t) => {
  const vehicles = 100_000;
  if (fleetTooLarge(vehicles) === undefined)
    return t.skip('this machine allows enough open files for 100 000 vehicles');
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => {
    written.push(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    assert.equal(await up.run(['--vehicles', String(vehicles)]), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(written.join(''), /open files, more than the \d+ it may hold \(ulimit -n\)/);
});
