// Our broker in its own process for the client benchmark: options as JSON in argv[2] ({ receiveMaximum }), prints
// `{"port":N}` once listening, exits on SIGTERM or when the runner's stdin pipe closes (a killed run leaves nothing).
import { createBroker } from '@otalink/broker';
import { pino } from 'pino';

const config = JSON.parse(process.argv[2] ?? '{}') as { receiveMaximum?: number };
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  // The case's window: announced to 5.0 clients as Receive Maximum (as Mosquitto's max_inflight_messages).
  limits: config.receiveMaximum === undefined ? undefined : { receiveMaximum: config.receiveMaximum },
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 0,
});
await broker.listen();
const address = broker.addresses()[0];
if (address === undefined) throw new Error('the broker has no listener');
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
const stop = () => {
  void broker.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.stdin.on('close', stop);
process.stdin.resume();
