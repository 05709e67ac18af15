// mqtt:// over TCP. Nagle is off: without it a QoS 1 round trip waits ~40 ms on delayed ACKs.
import { connect } from 'node:net';
import type { TransportFactory } from '../transport.js';
import { socketTransport, whenConnected } from './socket.js';

export const tcpTransport: TransportFactory = async (target, handlers) => {
  const socket = connect({ host: target.host, port: target.port });
  socket.setNoDelay(true);
  await whenConnected(socket, 'connect', target.signal);
  socket.removeAllListeners('error');
  return socketTransport(socket, handlers);
};
