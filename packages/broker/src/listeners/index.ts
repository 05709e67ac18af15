// Listeners accept sockets (TCP, TLS, WebSocket, WSS) and hand each one, as a byte stream, to the broker.
import type { ByteStream, TransportInfo } from '../connection.js';
import type { ListenerOptions, ListenerProtocol } from '../options.js';
import { startTcpListener } from './tcp.js';

export type StreamHandler = (stream: ByteStream, info: TransportInfo) => void;

export interface ListenerHandle {
  protocol: ListenerProtocol;
  host: string;
  port: number;
  /** Stops accepting; resolves when the server is closed (the broker closes the connections). */
  close(): Promise<void>;
  /**
   * mqtts/wss: checks the certificate, key and client CA of `options.tls` (throws if they cannot be used) and returns
   * what makes new handshakes use them.
   */
  prepareTls?(options: ListenerOptions): () => void;
}

/**
 * TLS and WebSocket listeners are imported when one is configured: node:tls, node:http(s) and the ws package cost a
 * plain MQTT broker a good part of its start-up otherwise.
 * `handshakeTimeoutMs` bounds the TLS handshake and the WebSocket upgrade (the CONNECT timeout), so a slow-loris
 * socket cannot sit in a transport handshake where the broker's own CONNECT deadline does not yet apply.
 * `maxPacketSize` bounds what a WebSocket message may hold before the broker sees any of it.
 */
export async function startListener(
  options: ListenerOptions,
  onStream: StreamHandler,
  handshakeTimeoutMs: number,
  maxPacketSize: number,
): Promise<ListenerHandle> {
  switch (options.protocol) {
    case 'mqtt':
      return startTcpListener(options, onStream);
    case 'mqtts':
      return (await import('./tls.js')).startTlsListener(options, onStream, handshakeTimeoutMs);
    case 'ws':
    case 'wss':
      return (await import('./ws.js')).startWsListener(options, onStream, handshakeTimeoutMs, maxPacketSize);
  }
}
