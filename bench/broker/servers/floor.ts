// The cheapest "broker" on net.Socket, for the connects/s, idle and round-trip rows: accept; answer CONNECT with a
// fixed CONNACK and SUBSCRIBE with a SUBACK granting QoS 0; echo a PUBLISH back to its sender (a PUBACK for QoS 1,
// then the same frame, as if the sender subscribed to its own topic, which is what the round-trip row does); close
// on DISCONNECT or when the peer closes. Frames are only cut out, never decoded, and there is no session. It shows
// the load generator's ceiling and the floor of a net.Socket's own cost (CPU per connect, RSS per idle connection,
// the latency of one read and one write), against which ours is judged (ours reads plain TCP without net.Socket).
import { createServer } from 'node:net';
import { answerYoungGenerationRequests } from './young-generation.js';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const port = Number(process.argv[2] ?? '0');
const server = createServer({ noDelay: true }, (socket) => {
  let pending: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    let buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    pending = undefined;
    const out: Buffer[] = [];
    for (;;) {
      // Fixed header: type byte, then the remaining length (1–4 bytes, 7 bits each).
      let length = 0;
      let multiplier = 1;
      let at = 1;
      let complete = false;
      while (at < buf.length && at <= 4) {
        const byte = buf[at++] ?? 0;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || buf.length < at + length) {
        if (buf.length > 0) pending = Buffer.from(buf);
        break;
      }
      const frame = buf.subarray(0, at + length);
      const type = (buf[0] ?? 0) >> 4;
      if (type === 1) out.push(CONNACK);
      else if (type === 8) out.push(Buffer.from([0x90, 0x03, buf[at] ?? 0, buf[at + 1] ?? 0, 0x00]));
      else if (type === 3) {
        const qos = ((buf[0] ?? 0) >> 1) & 3;
        if (qos === 1) {
          const idAt = at + 2 + (((buf[at] ?? 0) << 8) | (buf[at + 1] ?? 0));
          out.push(Buffer.from([0x40, 0x02, buf[idAt] ?? 0, buf[idAt + 1] ?? 0]));
        }
        out.push(Buffer.from(frame));
      } else if (type === 14) {
        socket.destroy();
        return;
      }
      buf = buf.subarray(at + length);
    }
    if (out.length > 0) socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
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
answerYoungGenerationRequests();
process.stdin.resume();
