// Registers tsx's loader so that Node runs the TypeScript sources (there is no build step). Imported first by
// bin/otalink.js; `node --import ./bin/ts-loader.js x.ts` runs any other entry (the benchmarks' broker) the same way.
import module from 'node:module';

if (typeof module.registerHooks === 'function') {
  // Node with in-thread loader hooks: tsx's own register() uses them when it supports that Node version.
  const { register } = await import('tsx/esm/api');
  register();
} else {
  // Node 20: the hooks run in a loader thread, which loads tsx and esbuild itself. register() from tsx/esm/api would
  // load them a second time in the main thread (~60–100 ms of every start) only to hand the thread the same entry
  // module; registering that entry (tsx's public `tsx/esm`) directly skips this. tsx's initialize() takes an object
  // (its options: none here, as with register()); tsx is pinned in package.json, and every CLI test starts here.
  process.setSourceMapsEnabled(true);
  module.register('tsx/esm', { parentURL: import.meta.url, data: {} });
}
