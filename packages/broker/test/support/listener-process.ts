// A broker in its own process with one listener of the protocol in argv[2] (mqtt, ws), for tests that need a process
// limit of their own (a low open-file limit set by the parent): prints `{"port":N}` once listening.
import { pino } from 'pino';
import { createBroker } from '../../src/index.js';

const protocol = (process.argv[2] ?? 'mqtt') as 'mqtt' | 'ws';
const broker = createBroker({
  listeners: [{ protocol, host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  limits: { connectTimeoutMs: 60_000 },
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 0,
});
await broker.listen();
process.stdout.write(`${JSON.stringify({ port: broker.addresses()[0]!.port })}\n`);
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0));
});
