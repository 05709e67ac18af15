// A broker in its own process for black-box tests: options as JSON in argv[2] (limits, allowAnonymous), prints
// `{"port":N}` on stdout once listening, closes gracefully on SIGTERM.
import { pino } from 'pino';
import { createBroker } from '../../src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}') as { allowAnonymous?: boolean; limits?: Record<string, number> };
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: config.allowAnonymous ?? true,
  limits: config.limits,
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 1,
});
await broker.listen();
process.stdout.write(`${JSON.stringify({ port: broker.addresses()[0]!.port })}\n`);
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0));
});
