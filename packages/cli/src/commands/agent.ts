// `otalink agent`: being written (helper H3); this placeholder only keeps the command table compiling.
import type { Command } from './command.js';

export const agent: Command = {
  summary: 'agent: not available yet',
  async run() {
    process.stderr.write('otalink agent: not available yet\n');
    return 1;
  },
};
