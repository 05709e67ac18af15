// The dashboard's assets: all present, self-contained (no external origin), the script compiles as a classic
// browser script, and the page references only files of this directory.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Script } from 'node:vm';
import { dashboardDir, dashboardFiles } from '../src/index.js';

const read = (name: string) => readFileSync(join(dashboardDir, name), 'utf8');

test('every dashboard file exists in the exported directory', () => {
  for (const name of dashboardFiles) assert.ok(existsSync(join(dashboardDir, name)), name);
});

test('the page references only its own files, nothing from another origin', () => {
  const html = read('index.html');
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
  assert.deepEqual(refs.sort(), ['dashboard.css', 'dashboard.js']);
  for (const name of dashboardFiles) assert.doesNotMatch(read(name), /https?:\/\//, `${name} reaches another origin`);
});

test('the script compiles as a classic script and talks to the REST API and the event streams', () => {
  const js = read('dashboard.js');
  assert.doesNotThrow(() => new Script(js, { filename: 'dashboard.js' }));
  assert.match(js, /\/api\/v1/);
  assert.match(js, /new EventSource\(/);
  for (const event of ['snapshot', 'counts', 'campaign.state']) assert.ok(js.includes(`'${event}'`), event);
});
