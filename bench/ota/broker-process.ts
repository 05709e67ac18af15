// The bench's broker in its own process, so the backend process's memory and CPU are the backend's alone.
// Prints `port <n>` once listening; closes on SIGTERM or when its parent's IPC channel goes away.
import { createBroker } from '@otalink/broker';
import { pino } from 'pino';

const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 0,
});
await broker.listen();
process.stdout.write(`port ${broker.addresses()[0]?.port}\n`);
let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  void broker.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
