// The shared command-line value parsers: what they accept, and the one-line usage error for what they do not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePercent, UsageError } from '../src/commands/usage.js';

test('parsePercent takes 0..100 with or without %, and names the flag otherwise', () => {
  assert.equal(parsePercent('0', '--x'), 0);
  assert.equal(parsePercent('12.5', '--x'), 12.5);
  assert.equal(parsePercent('100%', '--x'), 100);
  for (const bad of ['', ' ', 'ten', '-1', '101', '50%%', 'NaN', 'Infinity']) {
    assert.throws(
      () => parsePercent(bad, '--install-fail'),
      (e: unknown) =>
        e instanceof UsageError && e.message === `--install-fail must be a percentage 0..100, got "${bad}"`,
      bad,
    );
  }
});
