// The module hooks the `otalink` command runs the sources with (bin/ts-hooks.js): what they resolve, that their
// cache never serves a file's old text nor grows with every edit, and that stack traces point into the TypeScript
// source.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

const loader = new URL('../bin/ts-loader.js', import.meta.url).pathname;
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'otalink-ts-hooks-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `entry` (in the temporary folder) through the hooks; resolves with stdout, rejects with the failure. */
async function run(entry: string, env: NodeJS.ProcessEnv = process.env): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ['--import', loader, join(dir, entry)], { timeout: 30_000, env });
}

test('a .ts file importing ./x.js gets ./x.ts; types, type-only imports and class fields as tsc means them', async () => {
  await writeFile(
    join(dir, 'shape.ts'),
    `export interface Shape { area(): number }
export class Square implements Shape {
  side: number;
  label = 'square';
  constructor(side: number) { this.side = side; }
  area(): number { return this.side ** 2; }
}
`,
  );
  await writeFile(
    join(dir, 'main.ts'),
    `import { type Shape, Square } from './shape.js';
import type { Shape as Again } from './shape.js';
const shapes: Shape[] = [new Square(3)];
const again: Again = shapes[0]!;
// A declared field is defined on the instance (useDefineForClassFields), in declaration order.
console.log(again.area(), Object.keys(shapes[0]!).join(','));
`,
  );
  const { stdout } = await run('main.ts');
  assert.equal(stdout.trim(), '9 side,label');
});

test('an edited file runs as edited: the cache is keyed by its text', async () => {
  await writeFile(join(dir, 'value.ts'), 'export const value: number = 1;\n');
  await writeFile(join(dir, 'print.ts'), "import { value } from './value.js';\nconsole.log(value);\n");
  assert.equal((await run('print.ts')).stdout.trim(), '1');
  await writeFile(join(dir, 'value.ts'), 'export const value: number = 2;\n');
  assert.equal((await run('print.ts')).stdout.trim(), '2');
});

test('the cache keeps one entry per source file: an edit replaces the entry, it does not add one', async () => {
  const cache = join(dir, 'cache');
  const env = { ...process.env, OTALINK_TS_CACHE: cache };
  await writeFile(join(dir, 'counter.ts'), "import { count } from './count.js';\nconsole.log(count);\n");
  for (const count of [1, 2, 3, 2]) {
    await writeFile(join(dir, 'count.ts'), `export const count: number = ${count};\n`);
    assert.equal((await run('counter.ts', env)).stdout.trim(), String(count));
  }
  assert.equal((await readdir(cache)).length, 2, 'count.ts and counter.ts, one entry each');
});

test('an error thrown in a .ts file names the .ts file and its line', async () => {
  await writeFile(
    join(dir, 'throws.ts'),
    `type Reason = string;

function fail(reason: Reason): never {
  throw new Error(reason);
}
fail('from line 4');
`,
  );
  await assert.rejects(run('throws.ts'), (error: { stderr: string }) => {
    assert.match(error.stderr, /throws\.ts:4/);
    assert.match(error.stderr, /from line 4/);
    return true;
  });
});
