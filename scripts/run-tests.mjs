#!/usr/bin/env node
// Runs every *.test.ts under packages/, test/ and bench/ with Node's test runner and the tsx loader.
// Node 20's --test takes no globs, so the files are listed here. Arguments narrow the set by substring.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = ['packages', 'test'];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.ts')) files.push(relative(root, path));
  }
}
for (const r of roots) walk(join(root, r));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const selected = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (selected.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
selected.sort();
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// Clients given a client id open a default file store (see ClientOptions.store): in a directory of this run's own,
// not in the checkout, and never a store an earlier run left.
const storeDir = mkdtempSync(join(tmpdir(), 'otalink-test-stores-'));
const result = spawnSync(
  process.execPath,
  // A hung test fails after 5 minutes instead of holding CI until its own limit.
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...flags, ...selected],
  { cwd: root, stdio: 'inherit', env: { ...process.env, OTALINK_MQTT_STORE_DIR: storeDir } },
);
rmSync(storeDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
