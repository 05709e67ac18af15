import { constants as cryptoConstants } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { BrokerError } from '../errors.js';
import type { ListenerOptions } from '../options.js';

/** Every raw socket a listener accepted and that is still open, so that closing can end the stragglers. */
const openSockets = new WeakMap<Server, Set<Socket>>();

/**
 * Connections the kernel queues for accept() (it caps this at net.core.somaxconn). Node's default, 511, overflows
 * when thousands of clients connect at once (a fleet reconnecting after an outage, or restarting after an update):
 * the dropped handshakes are retried by TCP after 1, 3, 7, 15... seconds, which stalls those clients for minutes.
 */
export const LISTEN_BACKLOG = 4096;

/** How long closing a listener waits for its sockets to end by themselves before it destroys them. */
const CLOSE_LIMIT_MS = 5000;

/**
 * `trackSockets` false: every accepted socket is handed to the broker at once (plain TCP), which ends it itself on
 * close, so the listener need not keep its own set (a Set entry and a second 'close' listener per connection, and
 * their cost on every connect). TLS and WebSocket sockets spend a handshake in the listener first.
 */
export function listen(
  server: Server,
  options: ListenerOptions,
  trackSockets = true,
): Promise<{ host: string; port: number }> {
  const host = options.host ?? '0.0.0.0';
  if (trackSockets) {
    const sockets = new Set<Socket>();
    openSockets.set(server, sockets);
    // One listener for all sockets (the socket is `this`): a closure and a once() wrapper per socket would be ~0.2 KB
    // of every idle connection.
    const untrack = function (this: Socket): void {
      sockets.delete(this);
    };
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', untrack);
    });
  }
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new BrokerError(
          'BROKER_ERR_LISTEN',
          `cannot listen on ${options.protocol}://${host}:${options.port}: ${listenProblem(error)}`,
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ port: options.port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError);
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : options.port;
      resolve({ host, port });
    });
  });
}

/**
 * Stops accepting and resolves once every accepted socket has ended. The broker ends its connections itself; a
 * socket it never got (a transport handshake in progress) or one that does not let go is destroyed after
 * CLOSE_LIMIT_MS, so that a shutdown is bounded.
 */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      for (const socket of openSockets.get(server) ?? []) socket.destroy();
    }, CLOSE_LIMIT_MS);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The subject CN of a client certificate the TLS layer verified, if any. */
export function certificateCommonName(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const subject = socket.getPeerCertificate()?.subject as { CN?: string | string[] } | undefined;
  const raw = subject?.CN;
  const cn = Array.isArray(raw) ? raw[0] : raw;
  // An empty CN, or one holding U+0000 (which no MQTT string may carry, so no CONNACK could name it), names nobody:
  // refused as a certificate without a CN is. Taken as it was, every empty-CN vehicle shared the session of client
  // id "", and a 5.0 client got DISCONNECT 0x81 for the broker's own Assigned Client Identifier.
  return cn === undefined || cn === '' || cn.includes('\u0000') ? undefined : cn;
}

/** TLS server options for mqtts/wss. */
function pem(value: string | Uint8Array): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value);
}

export function tlsServerOptions(options: ListenerOptions): {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer | undefined;
  secureOptions: number;
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  const tls = options.tls;
  if (tls === undefined) {
    throw new BrokerError('BROKER_ERR_INVALID_OPTION', `a ${options.protocol} listener needs tls.cert and tls.key`);
  }
  const requireCert = tls.requireClientCertificate ?? false;
  return {
    ...tlsContextOptions(options),
    requestCert: requireCert || tls.ca !== undefined,
    rejectUnauthorized: requireCert,
  };
}

/**
 * The listener's certificate, key and client CA: what `setSecureContext` replaces while the server runs, so that
 * renewed certificates take effect for new handshakes without closing the connections already made.
 */
export function tlsContextOptions(options: ListenerOptions): {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer | undefined;
  secureOptions: number;
} {
  const tls = options.tls;
  if (tls === undefined) {
    throw new BrokerError('BROKER_ERR_INVALID_OPTION', `a ${options.protocol} listener needs tls.cert and tls.key`);
  }
  return {
    cert: pem(tls.cert),
    key: pem(tls.key),
    ca: tls.ca === undefined ? undefined : pem(tls.ca),
    // TLS 1.2 renegotiation asked by a client costs the server a handshake each time (Node allows 3 per 10 minutes):
    // refused outright, as it is part of the context, also after a certificate reload.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
}

/**
 * Bounds the transport handshake (TLS, WebSocket upgrade): a raw socket that has not finished it within `ms` is
 * destroyed. Returns the function to call once a socket is through; it is matched by remote address and port,
 * since the TLS socket handed over later wraps the raw one.
 */
export function boundHandshakes(server: Server, ms: number): (socket: Socket) => void {
  const pending = new Map<string, NodeJS.Timeout>();
  const key = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
  server.on('connection', (raw: Socket) => {
    const id = key(raw);
    const timer = setTimeout(() => {
      pending.delete(id);
      raw.destroy();
    }, ms);
    pending.set(id, timer);
    raw.once('close', () => {
      if (pending.get(id) !== timer) return;
      clearTimeout(timer);
      pending.delete(id);
    });
  });
  return (socket) => {
    const id = key(socket);
    const timer = pending.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    pending.delete(id);
  };
}

/** Why a bind failed, in words, with the system's code (the error itself stays the BrokerError's cause). */
export function listenProblem(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const words =
    code === 'EADDRINUSE'
      ? 'the port is in use: another process, or another listener of this broker, listens on it'
      : code === 'EACCES'
        ? 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE'
        : code === 'EADDRNOTAVAIL'
          ? 'this machine has no such address'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'host name not found'
            : error.message;
  return code === undefined || words === error.message ? words : `${words} (${code})`;
}
