// The vehicle's network link, which a test or the simulator can cut: while it is down, MQTT connection attempts
// fail and downloads wait; cutting it destroys the live MQTT socket without a DISCONNECT (the broker then publishes
// the will), as a tunnel or a dead cell would.
import type { Transport, TransportFactory, TransportHandlers } from '@otalink/mqtt';
import { tcpTransport, tlsTransport } from '@otalink/mqtt/transports';
import type { Scheduler } from './scheduler.js';

export class Link {
  private downUntil = 0;
  private waiters: Array<() => void> = [];
  private readonly transports = new Set<Transport>();
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
    for (const transport of this.transports) transport.destroy();
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

  /** An MQTT transport for mqtt:// and mqtts:// that honours the link: the client's own, refused while it is down. */
  readonly transport: TransportFactory = async (target, handlers) => {
    if (!this.isUp()) throw new Error('link down');
    if (target.protocol !== 'mqtt' && target.protocol !== 'mqtts') {
      throw new Error(`the simulated link carries mqtt and mqtts, not ${target.protocol}`);
    }
    const tracked = new TrackedHandlers(this.transports, handlers);
    const transport = await (target.protocol === 'mqtts' ? tlsTransport : tcpTransport)(target, tracked);
    if (!this.isUp()) {
      // Cut while connecting: that connection would not have survived the cut either.
      transport.destroy();
      throw new Error('link down');
    }
    tracked.transport = transport;
    this.transports.add(transport);
    return transport;
  };
}

/**
 * Passes a connection's events on and forgets its transport once closed. An object rather than two closures: a
 * simulated fleet keeps one per vehicle (see @otalink/mqtt's transports/socket.ts on what closures cost there).
 */
class TrackedHandlers implements TransportHandlers {
  transport: Transport | undefined = undefined;

  constructor(
    private readonly live: Set<Transport>,
    private readonly inner: TransportHandlers,
  ) {}

  data(chunk: Uint8Array): void {
    this.inner.data(chunk);
  }

  close(error?: Error): void {
    if (this.transport !== undefined) this.live.delete(this.transport);
    this.inner.close(error);
  }
}
