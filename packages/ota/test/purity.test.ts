// The OTA package is pure except crypto-node.ts: no Node built-in may creep into the other modules, so the agent
// on a small device, the dashboard in a browser and the tests with a fake clock can all use them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const src = new URL('../src/', import.meta.url);
const NODE_ONLY = new Set(['crypto-node.ts']);

test('only crypto-node.ts imports Node built-ins', () => {
  const violations: string[] = [];
  for (const name of readdirSync(src)) {
    if (!name.endsWith('.ts') || NODE_ONLY.has(name)) continue;
    const text = readFileSync(new URL(name, src), 'utf8');
    for (const m of text.matchAll(
      /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g,
    )) {
      const spec = (m[1] ?? m[2] ?? m[3]) as string;
      if (spec.startsWith('node:') || spec === './crypto-node.js') violations.push(`${name} imports ${spec}`);
    }
    // Globals that exist only in Node.
    if (/\b(Buffer|process|require)\b\s*[.(]/.test(text)) violations.push(`${name} uses a Node global`);
  }
  assert.deepEqual(violations, []);
});

test('the main entry does not re-export crypto-node.ts (it is the ./node entry)', () => {
  const text = readFileSync(new URL('index.ts', src), 'utf8');
  assert.ok(!/from\s+['"]\.\/crypto-node\.js['"]/.test(text));
});
