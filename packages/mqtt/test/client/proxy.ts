// A loopback TCP proxy that can impair the link. `mode`, for every connection while it is set: pass, stall (nothing
// forwarded, both sockets left open) or half-open (client → server flows, server → client vanishes); bytes dropped
// that way are lost, which shows whether a client notices a broken line. And faults a real link has, for the
// connections open at the time: drop (reset), blackhole (silent both ways for good) and pause (bytes held, then
// delivered in order), which never lose bytes from the middle of a live stream (the client model run's faults).
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type LinkMode = 'pass' | 'stall' | 'half-open';

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

export class ImpairingProxy {
  mode: LinkMode = 'pass';
  connections = 0;
  private readonly pairs = new Set<Pair>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  private constructor(private readonly server: Server) {}

  static async start(upstreamPort: number): Promise<ImpairingProxy> {
    const server = createServer();
    const proxy = new ImpairingProxy(server);
    server.on('connection', (client) => {
      proxy.connections++;
      const pair = new Pair(client, connect({ host: '127.0.0.1', port: upstreamPort }));
      proxy.pairs.add(pair);
      client.on('data', (d: Buffer) => {
        if (proxy.mode !== 'stall') pair.forward(pair.upstream, d);
      });
      pair.upstream.on('data', (d: Buffer) => {
        if (proxy.mode === 'pass') pair.forward(pair.client, d);
      });
      for (const s of [pair.client, pair.upstream]) {
        s.on('error', () => pair.destroy());
        s.on('close', () => {
          pair.destroy();
          proxy.pairs.delete(pair);
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

  /** Connections silenced by blackhole() that neither end has closed yet. */
  get silencedLinks(): number {
    let n = 0;
    for (const pair of this.pairs) if (pair.state === 'dead') n++;
    return n;
  }

  /** Resets every connection. */
  drop(): void {
    for (const pair of this.pairs) pair.destroy();
    this.pairs.clear();
  }

  /** The connections open now go silent both ways for good; new ones pass. */
  blackhole(): void {
    for (const pair of this.pairs) pair.state = 'dead';
  }

  /** The connections open now hold their bytes for `ms`, then deliver them in order. */
  pause(ms: number): void {
    for (const pair of this.pairs) {
      if (pair.state !== 'pass') continue;
      pair.state = 'paused';
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        pair.resume();
      }, ms);
      this.timers.add(timer);
    }
  }

  /** Passes everything again and delivers what pause() holds. */
  heal(): void {
    this.mode = 'pass';
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const pair of this.pairs) pair.resume();
  }

  async close(): Promise<void> {
    this.heal();
    this.drop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
