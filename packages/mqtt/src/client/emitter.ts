// A small typed event emitter: the client core may not import node:events (it must run in a browser).

// biome-ignore lint/suspicious/noExplicitAny: listener parameter lists vary per event; the map constrains them.
type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let called = false;
    const wrapped = ((...args: unknown[]) => {
      if (called) return;
      called = true;
      this.off(event, wrapped as Events[K]);
      listener(...args);
    }) as Events[K];
    return this.on(event, wrapped);
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** Whether `listener` (as given to `on`, or the wrapper `once` registered) is still registered for `event`. */
  protected has<K extends keyof Events>(event: K, listener: Events[K]): boolean {
    return this.listeners.get(event)?.has(listener) ?? false;
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /**
   * Calls every listener. One that throws neither stops the others nor unwinds the caller (the client, midway
   * through a read: the packets behind would wait for the next one, and state it was changing would be left half
   * done): its error goes to the 'error' listeners, or, with none, is thrown again from a microtask, uncaught as
   * it would have been.
   */
  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) this.call(event, listener, args);
  }

  /** Calls one listener of `event` as `emit` does: what it throws is reported, not thrown at the caller. */
  protected call<K extends keyof Events>(event: K, listener: Listener, args: Parameters<Events[K]>): void {
    try {
      listener(...args);
    } catch (err) {
      this.listenerFailed(event, err);
    }
  }

  /** Reports an error a listener threw (see `emit`). */
  private listenerFailed(event: keyof Events, err: unknown): void {
    const errors = event === 'error' ? undefined : this.listeners.get('error' as keyof Events);
    if (errors !== undefined && errors.size > 0) {
      this.emit('error' as keyof Events, ...([err] as Parameters<Events[keyof Events]>));
    } else {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
