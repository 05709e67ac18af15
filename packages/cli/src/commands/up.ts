// `otalink up`: the whole stack in one process (npm start). Until the OTA backend and fleet simulator exist it
// says so plainly instead of starting half a stack that looks like the real thing.
import type { Command } from './command.js';

export const up: Command = {
  summary: 'start the whole stack: broker, backend, dashboard and a simulated fleet (npm start)',
  async run() {
    process.stdout.write(
      [
        'otalink up: nothing to run yet. The OTA backend, dashboard and simulated fleet are not built yet',
        '(see README.md, "Status"). What runs today:',
        '  npx otalink broker --port 1883 --allow-anonymous    an MQTT 3.1.1/5.0 broker',
        "  npx otalink sub -t 'ota/#' -v                        subscribe, as mosquitto_sub",
        '  npx otalink pub -t ota/test -m hello                 publish, as mosquitto_pub',
        '',
      ].join('\n'),
    );
    return 0;
  },
};
