// `otalink up`: the whole stack in one process (npm start).
import type { Command } from './command.js';

export const up: Command = {
  summary: 'start the whole stack: broker, backend, dashboard and a simulated fleet (npm start)',
  async run() {
    process.stdout.write(
      'otalink up: nothing to run yet. The broker, backend and simulated fleet land with the OTA work;\n' +
        'today the MQTT codec is in place (see README.md, "Status").\n',
    );
    return 0;
  },
};
