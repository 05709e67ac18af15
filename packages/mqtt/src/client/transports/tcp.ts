// mqtt:// over TCP. Nagle is off: without it a QoS 1 round trip waits ~40 ms on delayed ACKs.
import { connect, type Socket } from 'node:net';
import type { TransportFactory } from '../transport.js';
import { SocketTransport, transportOf } from './socket.js';

// Every TCP connection of this thread reads into this one buffer (Node's `onread`): a read and its callback run
// together on this thread, so no other socket can overwrite it before the bytes are copied out. Without it Node
// allocates a 64 KiB ArrayBuffer per read, shrinks it, wraps it and leaves it to the GC: when PUBACKs come one per
// read (a server's Receive Maximum keeping the window small), that was a large part of each read's cost.
const READ_BUFFER_BYTES = 64 * 1024;
let readBuffer: Buffer | undefined;

/** `onread`'s callback, one for all sockets (called with the socket as `this`). */
function onRead(this: Socket, length: number, buffer: Uint8Array): boolean {
  // The decoder keeps views into what it is given (payloads, a partial packet): it gets its own copy, from
  // Node's Buffer pool under 4 KiB (a kept payload then holds its 8 KiB pool slice, as any small Buffer does)
  // and of its exact size above.
  const chunk = Buffer.allocUnsafe(length);
  chunk.set(length === buffer.length ? buffer : buffer.subarray(0, length));
  transportOf(this)?.read(chunk);
  return true;
}

export const tcpTransport: TransportFactory = async (target, handlers) => {
  readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
  const socket = connect({ host: target.host, port: target.port, onread: { buffer: readBuffer, callback: onRead } });
  socket.setNoDelay(true);
  return new SocketTransport(socket, handlers).connected('connect', target.signal, false);
};
