// `otalink sim`: being written (helper H3); this placeholder only keeps the command table compiling.
import type { Command } from './command.js';

export const sim: Command = {
  summary: 'sim: not available yet',
  async run() {
    process.stderr.write('otalink sim: not available yet\n');
    return 1;
  },
};
