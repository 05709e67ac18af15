// Listeners accept sockets (TCP, TLS, WebSocket, WSS) and hand each one, as a duplex byte stream, to the broker.
import type { Duplex } from 'node:stream';
import type { TransportInfo } from '../connection.js';
import type { ListenerOptions, ListenerProtocol } from '../options.js';
import { startTcpListener } from './tcp.js';
import { startTlsListener } from './tls.js';
import { startWsListener } from './ws.js';

export type StreamHandler = (stream: Duplex, info: TransportInfo) => void;

export interface ListenerHandle {
  protocol: ListenerProtocol;
  host: string;
  port: number;
  /** Stops accepting; resolves when the server is closed (the broker closes the connections). */
  close(): Promise<void>;
}

/**
 * `handshakeTimeoutMs` bounds the TLS handshake and the WebSocket upgrade (the CONNECT timeout), so a slow-loris
 * socket cannot sit in a transport handshake where the broker's own CONNECT deadline does not yet apply.
 */
export function startListener(
  options: ListenerOptions,
  onStream: StreamHandler,
  handshakeTimeoutMs: number,
): Promise<ListenerHandle> {
  switch (options.protocol) {
    case 'mqtt':
      return startTcpListener(options, onStream);
    case 'mqtts':
      return startTlsListener(options, onStream, handshakeTimeoutMs);
    case 'ws':
    case 'wss':
      return startWsListener(options, onStream, handshakeTimeoutMs);
  }
}
