// A loopback TCP proxy that can impair the link: pass, stall (nothing forwarded, both sockets left open),
// half-open (client → server flows, server → client vanishes), or drop every connection.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type LinkMode = 'pass' | 'stall' | 'half-open';

export class ImpairingProxy {
  mode: LinkMode = 'pass';
  connections = 0;
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(private readonly server: Server) {}

  static async start(upstreamPort: number): Promise<ImpairingProxy> {
    const server = createServer();
    const proxy = new ImpairingProxy(server);
    server.on('connection', (client) => {
      proxy.connections++;
      const upstream = connect({ host: '127.0.0.1', port: upstreamPort });
      const pair: [Socket, Socket] = [client, upstream];
      proxy.pairs.add(pair);
      const closeBoth = () => {
        client.destroy();
        upstream.destroy();
        proxy.pairs.delete(pair);
      };
      client.on('data', (d) => {
        if (proxy.mode !== 'stall') upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (proxy.mode === 'pass') client.write(d);
      });
      for (const s of pair) {
        s.on('error', closeBoth);
        s.on('close', closeBoth);
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  drop(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
