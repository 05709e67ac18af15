import { createServer } from 'node:tls';
import type { ListenerOptions } from '../options.js';
import { boundHandshakes, certificateCommonName, closeServer, listen, tlsServerOptions } from './common.js';
import type { ListenerHandle, StreamHandler } from './index.js';
import { tlsContextSwap } from './tls-context.js';

export async function startTlsListener(
  options: ListenerOptions,
  onStream: StreamHandler,
  handshakeTimeoutMs: number,
): Promise<ListenerHandle> {
  const server = createServer({ ...tlsServerOptions(options), handshakeTimeout: handshakeTimeoutMs }, (socket) => {
    handshakeDone(socket);
    socket.setNoDelay(true);
    onStream(socket, {
      protocol: 'mqtts',
      remoteAddress: socket.remoteAddress,
      certificateIdentity: certificateCommonName(socket),
      identityFromCertificate: options.tls?.identityFromCertificate ?? false,
    });
  });
  const handshakeDone = boundHandshakes(server, handshakeTimeoutMs);
  // Handshake failures (no or bad client certificate) are the peer's problem; keep serving.
  server.on('tlsClientError', () => {});
  const { host, port } = await listen(server, options);
  return {
    protocol: 'mqtts',
    host,
    port,
    close: () => closeServer(server),
    prepareTls: (next) => tlsContextSwap(server, next),
  };
}
