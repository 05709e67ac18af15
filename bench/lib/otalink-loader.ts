// How a benchmark starts our broker in its own process: through bin/ts-loader.js, as the `otalink` command runs the
// sources, so that the rows measure what users run (not tsx, which the benchmark processes themselves use).
import { fileURLToPath } from 'node:url';

export const OTALINK_EXEC_ARGV: readonly string[] = [
  '--import',
  fileURLToPath(new URL('../../bin/ts-loader.js', import.meta.url)),
];
