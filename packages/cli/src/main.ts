// The `otalink` command: dispatches to the sub-commands listed in commands/index.ts.
import { readFileSync } from 'node:fs';
import { commands } from './commands/index.js';

export type { Command, CommandEntry } from './commands/command.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    `otalink ${version()}: over-the-air updates for vehicle fleets, over MQTT`,
    '',
    'Usage: otalink <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `otalink <command> --help` for the options of one command.',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`otalink: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}
