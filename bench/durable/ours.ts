// Our broker with a data directory, as a benchmark child: argv[2] = JSON { dataDir, sync }. Prints `PORT n` once
// listening; SIGTERM closes gracefully (flushing the store).
import { pino } from 'pino';
import type { createBroker as createBrokerFunction } from '../../packages/broker/src/index.js';

// BROKER_MODULE=path/to/broker/src/index.ts runs another version of the broker (e.g. a checkout of an older commit).
const other = process.env.BROKER_MODULE;
const { createBroker } = (
  other === undefined ? await import('../../packages/broker/src/index.js') : await import(other)
) as { createBroker: typeof createBrokerFunction };

const { dataDir, sync } = JSON.parse(process.argv[2] ?? '{}') as { dataDir: string; sync: 'batch' | 'none' };
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  logger: pino({ level: 'warn' }, pino.destination(2)),
  sysIntervalSeconds: 0,
  dataDir,
  storeOptions: { sync },
  limits: { maxQueuedMessages: 10_000_000, maxConnections: 100_000 },
});
const started = performance.now();
await broker.listen();
// How long loading the store took, apart from starting Node and compiling TypeScript.
process.stdout.write(`PORT ${broker.addresses()[0]!.port} ${Math.round(performance.now() - started)}\n`);
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0));
});
