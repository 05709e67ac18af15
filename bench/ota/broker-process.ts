// The bench's broker in its own process, so the backend process's memory and CPU are the backend's alone.
// Prints `port <n>` once listening; closes on SIGTERM or when its parent's IPC channel goes away.
import { createBroker } from '@otalink/broker';
import { pino } from 'pino';
import { OTA_BROKER_LIMITS } from '../../packages/cli/src/stack/broker.js';
import { cpuSecondsSince } from './cpu.js';

const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  // As the OTA stack's broker (BROKER_LIMITS=default measures the broker's default queue bound instead).
  ...(process.env.BROKER_LIMITS === 'default' ? {} : { limits: OTA_BROKER_LIMITS }),
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
// The parent marks the campaign's start, and asks at its end how many messages the broker dropped (a full session
// queue) and how much CPU it used since the mark.
let cpuMark = process.cpuUsage();
process.on('message', (m: unknown) => {
  const type = typeof m === 'object' && m !== null ? (m as { type?: string }).type : undefined;
  if (type === 'cpu-mark') cpuMark = process.cpuUsage();
  if (type === 'stats') {
    process.send?.({ type: 'stats', droppedQueueFull: broker.stats.droppedQueueFull, cpuS: cpuSecondsSince(cpuMark) });
  }
});
process.on('disconnect', stop);
