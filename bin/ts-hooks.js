// Module hooks that run the TypeScript sources (registered by ts-loader.js; on Node 20 they run in Node's loader
// thread). They do what this project needs of a TypeScript loader and no more: a relative `./x.js` import from a
// .ts file resolves to `./x.ts`, and a .ts file loads as an ES module transformed by esbuild (types stripped, nothing
// else lowered for Node 20) with an inline source map for stack traces.
//
// Why not tsx, which the tests and benchmarks still use: tsx loads esbuild and its own resolver into the loader
// thread at every start, ~110 ms of each `otalink` command before any of our code runs (0.34 → 0.23 s for
// `otalink --version`). Here a module whose text was transformed before is read from a cache (one entry per source
// file, named by its URL and holding the hash of the text it was made from), and esbuild is loaded only on a miss.
// esbuild also runs without tsx's `keepNames`, which wraps every named function expression in a call that redefines
// its `name` (~0.25 KB per closure made; docs/architecture.md).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const esbuildVersion = require('esbuild/package.json').version;

/** esbuild's options: also part of every cache key, so a change here never reads a stale entry. */
const TRANSFORM = {
  loader: 'ts',
  format: 'esm',
  target: 'node20',
  sourcemap: 'inline',
  // As tsconfig.json says (esbuild reads no tsconfig in a transform): imports are kept as written, class fields
  // are defined (ES2022 semantics).
  tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } },
};
const SALT = `${esbuildVersion}\0${JSON.stringify(TRANSFORM)}\0`;

/**
 * node_modules/.cache/otalink-ts, or a folder under the temporary directory where node_modules is read-only
 * ($OTALINK_TS_CACHE first when set: the tests point it at a folder of their own).
 */
function cacheDirectory() {
  for (const dir of [
    ...(process.env.OTALINK_TS_CACHE ? [process.env.OTALINK_TS_CACHE] : []),
    fileURLToPath(new URL('../node_modules/.cache/otalink-ts', import.meta.url)),
    join(tmpdir(), `otalink-ts-${process.getuid?.() ?? 'user'}`),
  ]) {
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      // Not writable: try the next.
    }
  }
  return undefined;
}

const cache = cacheDirectory();
let esbuild;

export function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (
    parent?.endsWith('.ts') &&
    specifier.endsWith('.js') &&
    (specifier.startsWith('./') || specifier.startsWith('../'))
  ) {
    const url = new URL(`${specifier.slice(0, -3)}.ts`, parent);
    if (existsSync(url)) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const text = readFileSync(path, 'utf8');
  // The entry's first line is the hash of what it was made from (esbuild, its options, the text): an edited file
  // replaces its entry rather than adding one, so the cache holds one entry per source file however often it changes.
  const file = cache && join(cache, createHash('sha1').update(url).digest('hex'));
  const header = `// ${createHash('sha1').update(SALT).update(text).digest('hex')}\n`;
  let source;
  if (file !== undefined) {
    try {
      const entry = readFileSync(file, 'utf8');
      if (entry.startsWith(header)) source = entry.slice(header.length);
    } catch {
      // Not transformed yet.
    }
  }
  if (source === undefined) {
    esbuild ??= require('esbuild');
    source = esbuild.transformSync(text, { ...TRANSFORM, sourcefile: path }).code;
    if (file !== undefined) {
      try {
        // Written aside and renamed: a process reading the entry never sees half of it.
        const partial = `${file}.${process.pid}.tmp`;
        writeFileSync(partial, header + source);
        renameSync(partial, file);
      } catch {
        // A full or read-only disk: the next start transforms again.
      }
    }
  }
  return { format: 'module', source, shortCircuit: true };
}
