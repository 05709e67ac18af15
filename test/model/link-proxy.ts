// A loopback proxy whose faults are ones a real link has: a connection reset, a path that goes silent for good
// (until keepalive notices), and a stall that delays bytes and then delivers them all, in order. It never loses
// bytes from the middle of a live stream, which no TCP connection does (the test proxy in packages/mqtt does, to
// check that a client notices a broken line).
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

class Pair {
  state: 'pass' | 'paused' | 'dead' = 'pass';
  readonly held: Array<[Socket, Buffer]> = [];

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
  ) {}

  forward(to: Socket, data: Buffer): void {
    if (this.state === 'dead') return;
    if (this.state === 'paused') this.held.push([to, data]);
    else to.write(data);
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.state = 'pass';
    for (const [to, data] of this.held.splice(0)) to.write(data);
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }
}

export class LinkProxy {
  connections = 0;
  readonly #pairs = new Set<Pair>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  private constructor(private readonly server: Server) {}

  static async start(upstreamPort: number): Promise<LinkProxy> {
    const server = createServer();
    const proxy = new LinkProxy(server);
    server.on('connection', (client) => {
      proxy.connections++;
      const pair = new Pair(client, connect({ host: '127.0.0.1', port: upstreamPort }));
      proxy.#pairs.add(pair);
      client.on('data', (d: Buffer) => pair.forward(pair.upstream, d));
      pair.upstream.on('data', (d: Buffer) => pair.forward(pair.client, d));
      for (const s of [pair.client, pair.upstream]) {
        s.on('error', () => pair.destroy());
        s.on('close', () => {
          pair.destroy();
          proxy.#pairs.delete(pair);
        });
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Resets every connection. */
  drop(): void {
    for (const pair of this.#pairs) pair.destroy();
  }

  /** The current connections go silent both ways for good; new ones pass. */
  blackhole(): void {
    for (const pair of this.#pairs) pair.state = 'dead';
  }

  /** The current connections hold their bytes for `ms`, then deliver them in order. */
  pause(ms: number): void {
    for (const pair of this.#pairs) {
      if (pair.state !== 'pass') continue;
      pair.state = 'paused';
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        pair.resume();
      }, ms);
      this.#timers.add(timer);
    }
  }

  /** Delivers whatever is held now (the links heal). */
  heal(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const pair of this.#pairs) pair.resume();
  }

  async close(): Promise<void> {
    this.heal();
    this.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
