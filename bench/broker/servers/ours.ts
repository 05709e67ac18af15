// Our broker in its own process, for the benchmark: prints `PORT <n>` once listening, or `UNAVAILABLE <why>` and
// exits 3 when @otalink/broker cannot be loaded or started (it is being written alongside this benchmark).
import { pino } from 'pino';
import { answerYoungGenerationRequests } from './young-generation.js';

const port = Number(process.argv[2] ?? '0');

async function main(): Promise<void> {
  let createBroker: typeof import('@otalink/broker').createBroker;
  try {
    ({ createBroker } = await import('@otalink/broker'));
    if (typeof createBroker !== 'function') throw new Error('@otalink/broker exports no createBroker');
  } catch (error) {
    process.stdout.write(`UNAVAILABLE ${oneLine(error)}\n`);
    process.exit(3);
  }
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  try {
    await broker.listen();
  } catch (error) {
    process.stdout.write(`UNAVAILABLE ${oneLine(error)}\n`);
    process.exit(3);
  }
  const address = broker.addresses()[0];
  process.stdout.write(`PORT ${address?.port ?? 0}\n`);
  const stop = () => {
    void broker.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The runner holds our stdin: if it dies without cleaning up (SIGKILL), stdin ends and so do we.
  process.stdin.on('end', stop);
  answerYoungGenerationRequests();
  process.stdin.resume();
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 200);
}

void main();
