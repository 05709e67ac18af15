// A broker with a data directory in its own process, for crash tests: options as JSON in argv[2]
// ({ dataDir, sync?, limits? }), prints `{"port":N}` once listening, closes gracefully on SIGTERM. Tests SIGKILL it.
import { pino } from 'pino';
import { createBroker } from '../../src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}') as {
  dataDir: string;
  sync?: 'batch' | 'none';
  limits?: Record<string, number>;
};
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  limits: config.limits,
  logger: pino({ level: 'warn' }, pino.destination(2)),
  sysIntervalSeconds: 0,
  dataDir: config.dataDir,
  storeOptions: { sync: config.sync ?? 'batch' },
});
await broker.listen();
process.stdout.write(`${JSON.stringify({ port: broker.addresses()[0]!.port })}\n`);
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0));
});
