// A broker in its own process for black-box tests, and for tests that need a process limit of their own (a low
// open-file limit set by the parent): options as JSON in argv[2] (the listener's protocol, limits, allowAnonymous,
// the $SYS interval), prints `{"port":N}` on stdout once listening, closes gracefully on SIGTERM.
import { pino } from 'pino';
import { createBroker } from '../../src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}') as {
  protocol?: 'mqtt' | 'ws';
  allowAnonymous?: boolean;
  limits?: Record<string, number>;
  sysIntervalSeconds?: number;
};
const broker = createBroker({
  listeners: [{ protocol: config.protocol ?? 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: config.allowAnonymous ?? true,
  limits: config.limits,
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: config.sysIntervalSeconds ?? 1,
});
await broker.listen();
process.stdout.write(`${JSON.stringify({ port: broker.addresses()[0]!.port })}\n`);
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0));
});
