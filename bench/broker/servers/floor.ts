// The cheapest "broker" Node can be, for the connects/s row: accept, answer the first bytes with CONNACK, close on
// the next (DISCONNECT) or when the peer closes. No parsing, no session. It shows the load generator's ceiling and
// the floor of a Node socket's own cost, against which ours is judged.
import { createServer } from 'node:net';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const port = Number(process.argv[2] ?? '0');
const server = createServer({ noDelay: true }, (socket) => {
  let answered = false;
  socket.on('data', () => {
    if (answered) socket.destroy();
    else {
      answered = true;
      socket.write(CONNACK);
    }
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
