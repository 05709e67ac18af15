// Shared by tcp and tls: adapts a node:net Socket (connecting) to the Transport interface.
import type { Socket } from 'node:net';
import type { Transport, TransportHandlers } from '../transport.js';

const TRANSPORT = Symbol('socketTransport');
type OwnedSocket = Socket & { [TRANSPORT]?: SocketTransport };

interface Connecting {
  resolve(): void;
  reject(error: Error): void;
  signal: AbortSignal;
  onAbort(): void;
}

/**
 * What an idle connection keeps is what every vehicle of a simulated fleet keeps, so this holds no closures: its
 * methods are on the prototype and the socket's listeners are this module's functions, which find the transport
 * through the socket. Under tsx (how otalink runs) each named closure also gets its `name` redefined (esbuild's
 * keepNames), a ~0.25 KB property table each: a closure per method and listener was ~3 KB of every idle client.
 * Listeners are never removed either: removing one (once() does) deletes a key of the socket's `_events`, which
 * turns that object into a ~0.45 KB dictionary for the socket's life.
 */
export class SocketTransport implements Transport {
  readonly #socket: Socket;
  readonly #handlers: TransportHandlers;
  #lastError: Error | undefined = undefined;
  #connecting: Connecting | undefined = undefined;
  #failed = false;
  /** Reads before the client holds this transport, delivered once it does (see connected). */
  #early: Uint8Array[] | undefined = [];
  /** end()'s limit on the wait for the peer's FIN: cleared on close, or it keeps the whole client reachable 2 s. */
  #endLimit: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(socket: Socket, handlers: TransportHandlers) {
    this.#socket = socket;
    this.#handlers = handlers;
    (socket as OwnedSocket)[TRANSPORT] = this;
  }

  /**
   * Resolves once `readyEvent` fires ('connect', or 'secureConnect' after the TLS handshake). Reads that came with
   * the connection reach the client on the next tick, once it holds this transport (a server should not speak
   * first); later reads go to it directly.
   */
  async connected(readyEvent: string, signal: AbortSignal, dataEvents: boolean): Promise<this> {
    const socket = this.#socket;
    if (dataEvents) socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('drain', onDrain);
    socket.on(readyEvent, onReady);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#fail(signal.reason instanceof Error ? signal.reason : new Error('connect aborted'));
      };
      this.#connecting = { resolve, reject, signal, onAbort };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    // Queued from this continuation, the tick runs after the promise jobs that hand the transport to the client.
    process.nextTick(() => this.#release());
    return this;
  }

  #release(): void {
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const chunk of early) this.#handlers.data(chunk);
  }

  read(chunk: Uint8Array): void {
    if (this.#early === undefined) this.#handlers.data(chunk);
    else this.#early.push(chunk);
  }

  write(chunk: Uint8Array): boolean {
    return this.#socket.destroyed || this.#socket.write(chunk);
  }

  drained(): void {
    this.#handlers.drained?.();
  }

  end(): void {
    this.#socket.end();
    // A peer that never closes its side must not keep us waiting.
    this.#endLimit ??= setTimeout(destroySocket, 2000, this.#socket).unref();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  ready(): void {
    const connecting = this.#settle();
    connecting?.resolve();
  }

  failed(error: Error): void {
    if (this.#connecting === undefined) this.#lastError = error;
    else this.#fail(error);
  }

  closed(): void {
    clearTimeout(this.#endLimit);
    this.#endLimit = undefined;
    // A failed attempt is reported by its rejection alone: the client never held this transport.
    if (this.#connecting !== undefined) this.#fail(this.#lastError ?? new Error('the connection closed'));
    else if (!this.#failed) this.#handlers.close(this.#lastError);
  }

  #fail(error: Error): void {
    const connecting = this.#settle();
    if (connecting === undefined) return;
    this.#failed = true;
    this.#socket.destroy();
    connecting.reject(error);
  }

  #settle(): Connecting | undefined {
    const connecting = this.#connecting;
    this.#connecting = undefined;
    connecting?.signal.removeEventListener('abort', connecting.onAbort);
    return connecting;
  }
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

function onData(this: OwnedSocket, chunk: Buffer): void {
  this[TRANSPORT]?.read(chunk);
}

function onError(this: OwnedSocket, error: Error): void {
  this[TRANSPORT]?.failed(error);
}

function onClose(this: OwnedSocket): void {
  this[TRANSPORT]?.closed();
}

function onDrain(this: OwnedSocket): void {
  this[TRANSPORT]?.drained();
}

function onReady(this: OwnedSocket): void {
  this[TRANSPORT]?.ready();
}

/** The transport of `socket`, if it has one (for an `onread` callback, called with the socket as `this`). */
export function transportOf(socket: Socket): SocketTransport | undefined {
  return (socket as OwnedSocket)[TRANSPORT];
}
