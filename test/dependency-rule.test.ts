// Enforces the dependency rule of docs/architecture.md: imports between packages go one way only, and the
// mqtt package's core uses no Node built-ins outside client/transports (it must run in a browser).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const root = new URL('..', import.meta.url).pathname;

/** Which workspace packages each package may import. */
const allowed: Record<string, string[]> = {
  mqtt: [],
  broker: ['mqtt'],
  ota: ['mqtt'],
  backend: ['mqtt', 'ota', 'pki', 'dashboard'],
  agent: ['mqtt', 'ota'],
  sim: ['mqtt', 'ota', 'agent', 'pki'],
  pki: [],
  dashboard: ['ota'],
  cli: ['mqtt', 'broker', 'ota', 'backend', 'agent', 'sim', 'pki', 'dashboard'],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const importPattern = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(importPattern)].map((m) => (m[1] ?? m[2]) as string);
}

test('packages import only the packages the dependency rule allows', () => {
  const violations: string[] = [];
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', pkg, 'src');
    let files: string[];
    try {
      files = sources(src);
    } catch {
      continue;
    }
    const permitted = allowed[pkg];
    assert.ok(permitted, `packages/${pkg} is not in the dependency rule; add it to docs/architecture.md and here`);
    for (const file of files) {
      for (const spec of importsOf(file)) {
        const m = /^@otalink\/([a-z-]+)/.exec(spec);
        if (m && m[1] !== pkg && !permitted.includes(m[1] as string)) {
          violations.push(`${relative(root, file)} imports ${spec}`);
        }
        if (spec.startsWith('.') && spec.includes('/packages/')) {
          violations.push(`${relative(root, file)} reaches into another package by path: ${spec}`);
        }
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('the mqtt core imports no Node built-ins outside its Node-only adapters', () => {
  const src = join(root, 'packages', 'mqtt', 'src');
  const violations: string[] = [];
  for (const file of sources(src)) {
    const rel = relative(src, file);
    // Node-only adapters: socket transports and the file-backed message store.
    if (rel.startsWith('client/transports/') || /^client\/store\/file[^/]*\.ts$/.test(rel)) continue;
    for (const spec of importsOf(file)) {
      if (spec.startsWith('node:') || /^(fs|net|tls|path|os|crypto|events|stream)$/.test(spec)) {
        violations.push(`${rel} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
