import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { ListenerOptions } from '../options.js';
import { boundHandshakes, certificateCommonName, closeServer, listen, tlsServerOptions } from './common.js';
import type { ListenerHandle, StreamHandler } from './index.js';
import { tlsContextSwap } from './tls-context.js';

export async function startWsListener(
  options: ListenerOptions,
  onStream: StreamHandler,
  handshakeTimeoutMs: number,
  maxPacketSize: number,
): Promise<ListenerHandle> {
  const secure = options.protocol === 'wss';
  const timeouts = {
    headersTimeout: handshakeTimeoutMs,
    requestTimeout: handshakeTimeoutMs,
    // Node checks those timeouts on this interval (30 s by default): check often enough to honour them.
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(handshakeTimeoutMs / 2))),
  };
  const https = secure
    ? createHttpsServer({ ...tlsServerOptions(options), ...timeouts, handshakeTimeout: handshakeTimeoutMs })
    : undefined;
  const server: Server = https ?? createHttpServer(timeouts);
  server.on('request', (_request, response) => {
    response.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
  });
  const wss = new WebSocketServer({
    server,
    path: options.path,
    perMessageDeflate: false,
    // ws buffers a whole message (100 MiB by default) before the broker sees a byte of it: a message holds one MQTT
    // packet, or a few, so twice the largest packet (1 MiB at least) bounds it; beyond, ws closes with 1009.
    maxPayload: Math.max(2 * maxPacketSize, 1 << 20),
    // MQTT over WebSocket: subprotocol "mqtt" (also the legacy "mqttv3.1"). A client offering only others is refused
    // (400) before the upgrade: handleProtocols returning false upgrades it with no subprotocol at all. One offering
    // none is taken, as small embedded clients do that.
    verifyClient: (info, done) => {
      const offered = info.req.headers['sec-websocket-protocol'];
      if (offered === undefined) return done(true);
      const names = new Set(offered.split(',').map((name) => name.trim()));
      if (chooseSubprotocol(names) !== false) done(true);
      else done(false, 400, 'subprotocol mqtt required');
    },
    handleProtocols: chooseSubprotocol,
  });
  const handshakeDone = boundHandshakes(server, handshakeTimeoutMs);
  wss.on('connection', (socket, request) => {
    const raw = request.socket;
    handshakeDone(raw);
    raw.setNoDelay(true);
    const stream = createWebSocketStream(socket);
    // The send timeout reads the write queue of the TCP connection under the stream (send-watch.ts).
    (stream as { tcpSocket?: unknown }).tcpSocket = raw;
    // MQTT over WebSocket is binary only: a text frame closes the connection unread [MQTT-6.0.0-1]. The stream's own
    // 'message' listener is wrapped so that it never sees one.
    const forward = socket.listeners('message') as Array<(data: unknown, isBinary: boolean) => void>;
    if (forward.length === 1) {
      socket.off('message', forward[0]!);
      socket.on('message', (data, isBinary) => {
        if (isBinary) forward[0]!.call(socket, data, isBinary);
        else socket.terminate();
      });
    }
    onStream(stream, {
      protocol: options.protocol,
      remoteAddress: raw.remoteAddress,
      certificateIdentity: secure ? certificateCommonName(raw as TLSSocket) : undefined,
      identityFromCertificate: options.tls?.identityFromCertificate ?? false,
    });
  });
  const { host, port } = await listen(server, options);
  return {
    protocol: options.protocol,
    host,
    port,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await closeServer(server);
    },
    prepareTls: https === undefined ? undefined : (next: ListenerOptions) => tlsContextSwap(https, next),
  };
}

/** The MQTT subprotocol to answer an offer with, by preference; false: none offered. */
function chooseSubprotocol(offered: ReadonlySet<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt';
  if (offered.has('mqttv3.1')) return 'mqttv3.1';
  return false;
}
