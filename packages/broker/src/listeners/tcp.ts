import { createServer } from 'node:net';
import type { TransportInfo } from '../connection.js';
import type { ListenerOptions } from '../options.js';
import { closeServer, listen } from './common.js';
import type { ListenerHandle, StreamHandler } from './index.js';
import { adoptConnections } from './raw-tcp.js';

export async function startTcpListener(options: ListenerOptions, onStream: StreamHandler): Promise<ListenerHandle> {
  // noDelay: without it a QoS 1 round trip waits on Nagle plus delayed ACK. The server sets it on each accepted
  // handle; socket.setNoDelay(true) here would not know and make a second setsockopt call per connection.
  // pauseOnConnect: the connection starts reading itself, after choosing how (see direct-read.ts).
  // One TransportInfo for every socket: the peer's address is not read here (a getpeername syscall, and an object
  // and a string every idle connection would keep) but by the connection, when something can see it.
  const transport: TransportInfo = {
    protocol: 'mqtt',
    remoteAddress: undefined,
    certificateIdentity: undefined,
    identityFromCertificate: false,
  };
  const server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => onStream(socket, transport));
  const { host, port } = await listen(server, options, false);
  // Accepted connections skip net.Socket where this Node allows (raw-tcp.ts); elsewhere the callback above takes them.
  adoptConnections(server, (socket) => onStream(socket, transport));
  return { protocol: 'mqtt', host, port, close: () => closeServer(server) };
}
