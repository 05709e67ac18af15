// The otalink broker in its own process, so a test can SIGKILL it and start it again on the same port:
// options as JSON in argv[2] ({ port?, limits? }), prints `{"port":N}` on stdout once listening, closes
// gracefully on SIGTERM and exits when the parent's stdin pipe closes (a killed test run leaves nothing behind).
import { createBroker } from '@otalink/broker';
import { pino } from 'pino';

const config = JSON.parse(process.argv[2] ?? '{}') as { port?: number; limits?: Record<string, number> };
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: config.port ?? 0 }],
  allowAnonymous: true,
  limits: config.limits,
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 0,
});
await broker.listen();
const address = broker.addresses()[0];
if (address === undefined) throw new Error('the broker has no listener');
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
const stop = () => {
  broker.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.stdin.on('close', stop);
process.stdin.resume();
