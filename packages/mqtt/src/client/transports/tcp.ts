// mqtt:// over TCP. Nagle is off: without it a QoS 1 round trip waits ~40 ms on delayed ACKs.
import { connect } from 'node:net';
import type { TransportFactory } from '../transport.js';
import { socketTransport, whenConnected } from './socket.js';

// Every TCP connection of this thread reads into this one buffer (Node's `onread`): a read and its callback run
// together on this thread, so no other socket can overwrite it before the bytes are copied out. Without it Node
// allocates a 64 KiB ArrayBuffer per read, shrinks it, wraps it and leaves it to the GC: when PUBACKs come one per
// read (a server's Receive Maximum keeping the window small), that was a large part of each read's cost.
const READ_BUFFER_BYTES = 64 * 1024;
let readBuffer: Buffer | undefined;

export const tcpTransport: TransportFactory = async (target, handlers) => {
  readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
  // Bytes a server sent before the client holds its transport (it should not speak first): delivered in order
  // once it does, as a 'data' listener attached at the end would have seen them.
  let early: Uint8Array[] | undefined = [];
  const socket = connect({
    host: target.host,
    port: target.port,
    onread: {
      buffer: readBuffer,
      callback: (length: number, buffer: Uint8Array) => {
        // The decoder keeps views into what it is given (payloads, a partial packet): it gets its own copy, from
        // Node's Buffer pool under 4 KiB (a kept payload then holds its 8 KiB pool slice, as any small Buffer does)
        // and of its exact size above.
        const chunk = Buffer.allocUnsafe(length);
        chunk.set(length === buffer.length ? buffer : buffer.subarray(0, length));
        if (early === undefined) handlers.data(chunk);
        else early.push(chunk);
        return true;
      },
    },
  });
  socket.setNoDelay(true);
  await whenConnected(socket, 'connect', target.signal);
  socket.removeAllListeners('error');
  const transport = socketTransport(socket, handlers, { dataViaOnread: true });
  const held = early;
  process.nextTick(() => {
    early = undefined;
    for (const chunk of held) handlers.data(chunk);
  });
  return transport;
};
