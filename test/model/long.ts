// A long model run from the command line: many seeds, many steps, one broker each, against ours (in memory or on
// its durable store, restarted now and then) or Mosquitto. Prints one line per seed and the failures with the
// operations that led there. `--client` runs the client's model run instead (client-run.ts), with `--steps`
// operations; Mosquitto then keeps its state in a file so that it can restart too.
//   npm run test:model -- [--client] --broker ours|durable|ws|timed|timed-durable|mosquitto --seeds 1-500 --steps 500 [--trace]
import { parseArgs } from 'node:util';
import { findProgram } from '../support/system.js';
import { type ModelBroker, mosquittoBroker, ourBroker, ourBrokerOnVirtualTime, ourWebSocketBroker } from './brokers.js';
import { runClientModel } from './client-run.js';
import { MOSQUITTO_2_0, OURS } from './profiles.js';
import { ModelDivergence, runModel } from './run.js';

const { values } = parseArgs({
  options: {
    broker: { type: 'string', default: 'ours' },
    seeds: { type: 'string', default: '1-20' },
    steps: { type: 'string', default: '500' },
    trace: { type: 'boolean', default: false },
    client: { type: 'boolean', default: false },
  },
});
const [first, last] = values.seeds.split('-').map(Number) as [number, number | undefined];
const steps = Number(values.steps);
if (
  !['ours', 'durable', 'ws', 'timed', 'timed-durable', 'mosquitto'].includes(values.broker) ||
  !Number.isInteger(first) ||
  !(steps > 0)
) {
  console.error(
    'usage: long.ts [--client] --broker ours|durable|ws|timed|timed-durable|mosquitto --seeds N[-M] --steps N [--trace]',
  );
  process.exit(2);
}
if (values.client && (values.broker === 'ws' || values.broker.startsWith('timed'))) {
  console.error(
    'long.ts: the client run goes through TCP proxies on real time; use --broker ours, durable or mosquitto',
  );
  process.exit(2);
}
if (values.trace) process.env.MODEL_TRACE = 'all';

async function open(): Promise<ModelBroker> {
  if (values.broker === 'ws') return ourWebSocketBroker();
  if (values.broker.startsWith('timed')) return ourBrokerOnVirtualTime(values.broker === 'timed-durable');
  if (values.broker !== 'mosquitto') return ourBroker(values.broker === 'durable');
  const binary = findProgram('mosquitto');
  if (binary === undefined) throw new Error('mosquitto is not installed');
  return mosquittoBroker(binary, values.client);
}

const profile = values.broker === 'mosquitto' ? MOSQUITTO_2_0 : OURS;
const transport = values.broker === 'ws' ? 'ws' : 'tcp';
let failures = 0;
let total = 0;
for (let seed = first; seed <= (last ?? first); seed++) {
  const broker = await open();
  try {
    const { deliveries, serverResends = [] }: { deliveries: number; serverResends?: string[] } = values.client
      ? await runClientModel({ broker, seed, operations: steps })
      : await runModel({
          port: broker.port,
          restart: broker.restart,
          clock: broker.clock,
          seed,
          steps,
          profile,
          transport,
        });
    total += deliveries;
    const resent = serverResends.length === 0 ? '' : `; the broker resent after PUBREL: ${serverResends.join(', ')}`;
    console.log(`seed ${seed}: ok, ${deliveries} deliveries checked${resent}`);
  } catch (error) {
    if (!(error instanceof ModelDivergence)) throw error;
    failures++;
    console.log(error.message);
  } finally {
    await broker.close();
  }
}
console.log(`${failures} of ${(last ?? first) - first + 1} seeds failed; ${total} deliveries checked in the others`);
process.exit(failures > 0 ? 1 : 0);
