// The vehicle's network link, which a test or the simulator can cut: while it is down, MQTT connection attempts
// fail and downloads wait; cutting it destroys the live MQTT socket without a DISCONNECT (the broker then publishes
// the will), as a tunnel or a dead cell would.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Transport, TransportFactory } from '@otalink/mqtt';
import type { Scheduler } from './scheduler.js';

export class Link {
  private downUntil = 0;
  private waiters: Array<() => void> = [];
  private readonly sockets = new Set<Socket>();
  private readonly cutListeners = new Set<() => void>();
  private cancelWake: (() => void) | undefined;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly now: () => number = Date.now,
  ) {}

  isUp(): boolean {
    return this.now() >= this.downUntil;
  }

  whenUp(): Promise<void> {
    if (this.isUp()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops every connection now and refuses new ones for `durationMs`. */
  cut(durationMs: number): void {
    this.downUntil = Math.max(this.downUntil, this.now() + durationMs);
    for (const socket of this.sockets) socket.destroy();
    for (const listener of [...this.cutListeners]) listener();
    this.cancelWake?.();
    this.cancelWake = this.scheduler.at(this.downUntil, () => this.wake());
  }

  /** Called at every cut (downloads drop their request); returns the unsubscribe function. */
  onCut(listener: () => void): () => void {
    this.cutListeners.add(listener);
    return () => this.cutListeners.delete(listener);
  }

  /** Releases waiters (also used on close, so nothing waits forever). */
  wake(): void {
    this.downUntil = Math.min(this.downUntil, this.now());
    this.cancelWake?.();
    this.cancelWake = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** An MQTT transport for mqtt:// and mqtts:// that honours the link. */
  readonly transport: TransportFactory = async (target, handlers) => {
    if (!this.isUp()) throw new Error('link down');
    if (target.protocol !== 'mqtt' && target.protocol !== 'mqtts') {
      throw new Error(`the simulated link carries mqtt and mqtts, not ${target.protocol}`);
    }
    const t = target.tls ?? {};
    const socket =
      target.protocol === 'mqtts'
        ? tlsConnect({
            host: target.host,
            port: target.port,
            servername: t.servername ?? (/^[\d.]+$/.test(target.host) || target.host.includes(':') ? '' : target.host),
            ca: t.ca as string | Buffer | Array<string | Buffer> | undefined,
            cert: t.cert as string | Buffer | undefined,
            key: t.key as string | Buffer | undefined,
            passphrase: t.passphrase,
            rejectUnauthorized: t.rejectUnauthorized ?? true,
          })
        : netConnect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        socket.destroy();
        reject(new Error('connect aborted'));
      };
      if (target.signal.aborted) return onAbort();
      target.signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', (err) => {
        target.signal.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(err);
      });
      socket.once(target.protocol === 'mqtts' ? 'secureConnect' : 'connect', () => {
        target.signal.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve();
      });
    });
    this.sockets.add(socket);
    let lastError: Error | undefined;
    socket.on('data', (chunk: Buffer) => handlers.data(chunk));
    socket.on('error', (err) => {
      lastError = err;
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      handlers.close(lastError);
    });
    const transport: Transport = {
      write: (chunk) => {
        if (!socket.destroyed) socket.write(chunk);
      },
      end: () => {
        socket.end();
        setTimeout(() => socket.destroy(), 2000).unref();
      },
      destroy: () => socket.destroy(),
    };
    return transport;
  };
}
