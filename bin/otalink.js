#!/usr/bin/env node
// Entry point of the `otalink` command: registers the TypeScript loader, then runs the CLI from source.
import './ts-loader.js';

const { main } = await import('../packages/cli/src/main.ts');
process.exitCode = await main(process.argv.slice(2));
