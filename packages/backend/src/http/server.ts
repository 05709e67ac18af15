// Listens: HTTPS with the given certificate (plain HTTP when none is given, for development), and optionally a
// second plain-HTTP listener serving the same routes (vehicles behind a TLS-terminating proxy, local tools).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type BuildAppOptions, buildBackendApp } from './app.js';

export interface StartHttpServerOptions extends Omit<BuildAppOptions, 'https'> {
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** Port; 0 picks a free one (default 8443). */
  port?: number;
  /** PEM certificate chain and key; without them the main listener speaks plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** An additional plain-HTTP listener on this address. */
  plainHttp?: { host?: string; port: number };
}

export interface RunningHttpServer {
  app: FastifyInstance;
  /** The main listener's base URL, e.g. https://127.0.0.1:8443 (IPv6 hosts in brackets). */
  url: string;
  /** The plain-HTTP listener's base URL when one was asked for. */
  plainUrl: string | undefined;
  /** Ends SSE streams, stops both listeners and waits for them. */
  close(): Promise<void>;
}

function baseUrl(protocol: 'http' | 'https', address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${protocol}://${host}:${address.port}`;
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export async function startHttpServer(options: StartHttpServerOptions): Promise<RunningHttpServer> {
  const { host = '127.0.0.1', port = 8443, tls, plainHttp, ...appOptions } = options;
  const { app } = await buildBackendApp(tls === undefined ? appOptions : { ...appOptions, https: tls });
  // A fleet starting its downloads at once overflows Node's default accept queue (511); TCP then retries the
  // dropped handshakes after seconds. The kernel caps this at net.core.somaxconn.
  await app.listen({ host, port, backlog: 4096 });
  const main = app.server.address() as AddressInfo;
  let plain: Server | undefined;
  let plainUrl: string | undefined;
  if (plainHttp !== undefined) {
    // The same routes, hooks and error handler: fastify's router takes raw requests from any server.
    plain = createServer((req, res) => app.routing(req, res));
    try {
      plainUrl = baseUrl('http', await listen(plain, plainHttp.host ?? host, plainHttp.port));
    } catch (error) {
      await app.close();
      throw error;
    }
  }
  let closing: Promise<void> | undefined;
  return {
    app,
    url: baseUrl(tls === undefined ? 'http' : 'https', main),
    plainUrl,
    close() {
      closing ??= (async () => {
        const plainClosed =
          plain === undefined
            ? Promise.resolve()
            : new Promise<void>((resolve) => {
                plain?.close(() => resolve());
                plain?.closeIdleConnections();
              });
        await app.close();
        plain?.closeAllConnections();
        await plainClosed;
      })();
      return closing;
    },
  };
}
