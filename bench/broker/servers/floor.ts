// The cheapest "broker" Node can be, for the connects/s and idle rows: accept, answer the first bytes with CONNACK,
// a SUBSCRIBE with a SUBACK granting QoS 0, and close on anything else (DISCONNECT) or when the peer closes. No
// parsing beyond the first byte, no session. It shows the load generator's ceiling and the floor of a Node socket's
// own cost (CPU per connect, RSS per idle connection), against which ours is judged.
import { createServer } from 'node:net';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const port = Number(process.argv[2] ?? '0');
const server = createServer({ noDelay: true }, (socket) => {
  let answered = false;
  socket.on('data', (chunk: Buffer) => {
    if (!answered) {
      answered = true;
      socket.write(CONNACK);
    } else if (chunk[0] === 0x82 && chunk.length >= 4) {
      // SUBSCRIBE whose remaining length fits one byte (the bench's): SUBACK with its packet id, QoS 0 granted.
      socket.write(Buffer.from([0x90, 0x03, chunk[2] ?? 0, chunk[3] ?? 0, 0x00]));
    } else socket.destroy();
  });
  socket.on('error', () => {});
  socket.on('end', () => socket.destroy());
});
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`PORT ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
