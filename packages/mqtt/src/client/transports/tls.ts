// mqtts:// over TLS; resolves after the handshake so the connect timeout covers it.
import { connect } from 'node:tls';
import type { TransportFactory } from '../transport.js';
import { SocketTransport } from './socket.js';

export const tlsTransport: TransportFactory = async (target, handlers) => {
  const t = target.tls ?? {};
  const socket = connect({
    host: target.host,
    port: target.port,
    servername: t.servername ?? (isIp(target.host) ? undefined : target.host),
    ca: t.ca as string | Buffer | Array<string | Buffer> | undefined,
    cert: t.cert as string | Buffer | undefined,
    key: t.key as string | Buffer | undefined,
    passphrase: t.passphrase,
    rejectUnauthorized: t.rejectUnauthorized ?? true,
    ALPNProtocols: t.alpnProtocols,
  });
  socket.setNoDelay(true);
  return new SocketTransport(socket, handlers).connected('secureConnect', target.signal, true);
};

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
