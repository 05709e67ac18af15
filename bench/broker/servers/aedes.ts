// Aedes (npm dev dependency) on a node:net server in its own process, for the benchmark: prints `PORT <n>` once
// listening. TCP_NODELAY is set on every socket, as ours and Mosquitto do, so no row measures Nagle.
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { answerYoungGenerationRequests } from './young-generation.js';

const port = Number(process.argv[2] ?? '0');

async function main(): Promise<void> {
  const aedes = await Aedes.createBroker();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`PORT ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
  });
  const stop = () => {
    server.close();
    aedes.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The runner holds our stdin: if it dies without cleaning up (SIGKILL), stdin ends and so do we.
  process.stdin.on('end', stop);
  answerYoungGenerationRequests();
  process.stdin.resume();
}

void main();
