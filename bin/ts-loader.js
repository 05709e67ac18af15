// Registers the TypeScript hooks (ts-hooks.js) so that Node runs the sources (there is no build step). Imported
// first by bin/otalink.js; `node --import ./bin/ts-loader.js x.ts` runs any other entry (the benchmarks' broker) the
// same way. Stack traces point into the .ts files through the inline source maps.
import module from 'node:module';

process.setSourceMapsEnabled(true);
module.register('./ts-hooks.js', import.meta.url);
