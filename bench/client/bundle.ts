// Browser bundle sizes, minified and gzipped. Ours: an esbuild bundle of the package entry for the browser, built
// as an app would build it (nothing marked external): the package's "browser" field swaps the TCP and TLS
// transports and the file store, which need Node, for stubs that refuse with a clear error, and drops `ws` (the ws
// transport uses the platform WebSocket). test/e2e/client-browser.test.ts runs such a bundle in Chromium.
// MQTT.js: the browser bundle it ships (dist/mqtt.min.js, built by its authors with esbuild and polyfills);
// bundling `mqtt` ourselves would need those Node polyfills (buffer, process, events, stream) supplied by hand.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export interface BundleSize {
  what: string;
  minified: number;
  gzipped: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function esbuildSize(what: string, contents: string): Promise<BundleSize> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    stdin: { contents, resolveDir: ROOT, loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { what, minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

export async function bundleSizes(): Promise<{ ours: BundleSize; oursConnect: BundleSize; mqttjs: BundleSize }> {
  const ours = await esbuildSize(
    'esbuild of packages/mqtt/src/index.ts (everything exported)',
    "export * from './packages/mqtt/src/index.ts';",
  );
  const oursConnect = await esbuildSize(
    'esbuild of an app importing only connect()',
    "import { connect } from './packages/mqtt/src/index.ts'; (globalThis as Record<string, unknown>).connect = connect;",
  );
  const require = createRequire(join(ROOT, 'package.json'));
  const mqttDir = dirname(require.resolve('mqtt'));
  const distPath = findDist(mqttDir);
  const code = readFileSync(distPath);
  const mqttjs = {
    what: 'mqtt/dist/mqtt.min.js as shipped',
    minified: code.length,
    gzipped: gzipSync(code, { level: 9 }).length,
  };
  return { ours, oursConnect, mqttjs };
}

function findDist(from: string): string {
  // require.resolve lands in build/; dist/ sits next to it in the package root.
  let dir = from;
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'dist', 'mqtt.min.js');
    try {
      readFileSync(candidate, { flag: 'r' }).length;
      return candidate;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('mqtt/dist/mqtt.min.js not found');
}
