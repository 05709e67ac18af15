// Plain TCP connections without net.Socket. A net.Socket is a Duplex stream: its readable and writable state, its
// listeners and bound callbacks kept ~0.7 KB of heap per idle connection, and what each connect allocates made V8
// grow its young generation by ~25 MB while thousands connected (10 000 idle connections: a bare net server's RSS
// grew 4.7 KB per connection, the same server on the handles alone 1.1 KB, Mosquitto 1.0 KB). The broker uses
// little of a stream (write, end, destroy, pause, resume, writableLength, 'data', 'end', 'error', 'close'), so an
// accepted TCP handle is wrapped in RawTcpSocket, which offers just that on Node's own handle (the one net.Socket
// wraps). It relies on Node internals (process.binding('stream_wrap'), a listening net.Server's handle; no warning
// on Node 20 unless --pending-deprecation, which prints DEP0111 once, and not used under --throw-deprecation):
// `adoptConnections` checks them all once and, where any is missing or different, says no and the listener keeps
// net.Socket (read as direct-read.ts says).
import type { Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { StreamHandlers } from '../connection.js';
import { READ_BUFFER, takeRead } from '../direct-read.js';

/** The TCP handle (Node's TCPWrap) as far as it is used here. */
interface TcpHandle {
  onread: ((this: TcpHandle, arrayBuffer: ArrayBuffer | undefined) => void) | undefined;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buffer: Uint8Array): void;
  writeBuffer(req: WriteRequest, data: Uint8Array): number;
  shutdown(req: ShutdownRequest): number;
  close(callback: (this: TcpHandle) => void): void;
  setNoDelay(on: boolean): number;
  /** libuv's bytes queued for writing, shrinking as the kernel takes part of a write. */
  readonly writeQueueSize: number;
  getpeername(out: { address?: string; port?: number }): number;
  [owner: symbol]: RawTcpSocket | null | undefined;
}

interface WriteRequest {
  handle: TcpHandle | undefined;
  oncomplete: (this: WriteRequest, status: number) => void;
  /** Set while the request is in use (a spare one keeps no socket alive). */
  socket: RawTcpSocket | undefined;
  bytes: number;
  /** Kept alive until the write is done. */
  buffer: Uint8Array | undefined;
}

/** A WriteWrap whose write completed at once, for the next write (see RawTcpSocket.write). */
let spareWrite: WriteRequest | undefined;

interface ShutdownRequest {
  handle: TcpHandle;
  oncomplete: (this: ShutdownRequest, status: number) => void;
  socket: RawTcpSocket;
}

interface StreamBinding {
  WriteWrap: new () => WriteRequest;
  ShutdownWrap: new () => ShutdownRequest;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

/**
 * The property of a handle that holds its socket: Node's own `owner_symbol` (a net.Socket keeps itself there), which
 * every TCP handle already has, found on the first handle wrapped. A property of our own would be a fourth one added
 * to each accepted handle and cost it an out-of-object property array (~64 B per connection).
 */
let OWNER: symbol | undefined;

function ownerProperty(handle: TcpHandle): symbol {
  OWNER ??=
    Object.getOwnPropertySymbols(handle).find((symbol) => symbol.description === 'owner_symbol') ??
    Symbol('rawTcpSocket');
  return OWNER;
}
/** libuv's end of stream, as the read callback reports it. */
const UV_EOF = -4095;

function loadBinding(): StreamBinding | undefined {
  // process.binding is deprecated (DEP0111, reported under --pending-deprecation): under --throw-deprecation that
  // report would be thrown later, out of reach of the catch below, so such a process keeps net.Socket.
  if (process.throwDeprecation === true) return undefined;
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
    if (typeof binding !== 'function' || getSystemErrorName(UV_EOF) !== 'EOF') return undefined;
    const stream = binding('stream_wrap') as Partial<StreamBinding>;
    if (
      typeof stream.WriteWrap !== 'function' ||
      typeof stream.ShutdownWrap !== 'function' ||
      !(stream.streamBaseState instanceof Int32Array) ||
      typeof stream.kReadBytesOrError !== 'number' ||
      typeof stream.kLastWriteWasAsync !== 'number'
    ) {
      return undefined;
    }
    return stream as StreamBinding;
  } catch {
    // No process.binding, or no such binding (a later Node).
    return undefined;
  }
}

let binding: StreamBinding | undefined | null = null;

/** Loaded on first use: a broker without a plain TCP listener never asks for it. */
function streamBinding(): StreamBinding | undefined {
  if (binding === null) binding = loadBinding();
  return binding;
}

const METHODS = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close', 'getpeername'] as const;

function isTcpHandle(handle: unknown): handle is TcpHandle {
  if (typeof handle !== 'object' || handle === null || !('onread' in handle)) return false;
  const record = handle as Record<string, unknown>;
  return METHODS.every((name) => typeof record[name] === 'function');
}

function systemError(status: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  const error: NodeJS.ErrnoException = new Error(`${syscall} ${code}`);
  error.code = code;
  error.errno = status;
  error.syscall = syscall;
  return error;
}

// Flags of a RawTcpSocket.
const READING = 1;
const PEER_ENDED = 2;
const ENDING = 4;
const SHUT_DOWN = 8;
const DESTROYED = 16;

type Listener = (this: never, ...args: never[]) => void;
type Listeners = Listener | Listener[] | undefined;
export type RawTcpEvent = 'data' | 'end' | 'error' | 'close';

/** Listeners added with on() or once(): made on first use; an owner with handlers never needs them. */
class Events {
  data: Listeners = undefined;
  end: Listeners = undefined;
  error: Listeners = undefined;
  close: Listeners = undefined;
}

function added(listeners: Listeners, listener: Listener): Listeners {
  if (listeners === undefined) return listener;
  return Array.isArray(listeners) ? [...listeners, listener] : [listeners, listener];
}

function removed(listeners: Listeners, listener: Listener): Listeners {
  if (listeners === listener) return undefined;
  if (!Array.isArray(listeners)) return listeners;
  const at = listeners.lastIndexOf(listener);
  if (at < 0) return listeners;
  const rest = listeners.filter((_, i) => i !== at);
  return rest.length === 1 ? rest[0] : rest;
}

/**
 * One accepted TCP connection on Node's handle, with the part of a net.Socket the broker uses. Reads go to the
 * data handler set by handleWith (or to 'data' listeners), each as a buffer of its own; write() queues in libuv, whose
 * pending bytes writableLength counts until they are written; end() shuts the sending side down after them; the
 * socket is destroyed once both sides have ended, on a read or write error ('error', then 'close') and by destroy().
 * A peer's FIN is reported by 'end' and nothing more: the owner ends its own side when it has answered (as a
 * net.Socket with allowHalfOpen would).
 * Its events are those four, each listener called with the socket as `this`. It is not an EventEmitter, whose
 * listener table would be ~0.2 KB of every idle connection: an owner of many sockets gives each the same handlers
 * (handleWith), and listeners added one by one get a small table of their own. Its helpers are TypeScript `private`,
 * not `#` methods, which would give every instance a slot for its class brand.
 */
export class RawTcpSocket {
  readonly #handle: TcpHandle;
  #flags = 0;
  #handlers: StreamHandlers | undefined = undefined;
  #events: Events | undefined = undefined;
  /** Bytes handed to libuv that it has not written yet. */
  writableLength = 0;

  constructor(handle: TcpHandle) {
    this.#handle = handle;
    handle[ownerProperty(handle)] = this;
    handle.onread = onRead;
    handle.useUserBuffer(READ_BUFFER);
  }

  on(event: RawTcpEvent, listener: Listener): this {
    this.setListeners(event, added(this.listenersOf(event), listener));
    return this;
  }

  once(event: RawTcpEvent, listener: Listener): this {
    const socket = this;
    const wrapped = function (this: never, ...args: never[]): void {
      socket.off(event, wrapped);
      listener.apply(this, args);
    };
    return this.on(event, wrapped);
  }

  off(event: RawTcpEvent, listener: Listener): this {
    this.setListeners(event, removed(this.listenersOf(event), listener));
    return this;
  }

  listenerCount(event: RawTcpEvent): number {
    const listeners = this.listenersOf(event);
    if (listeners === undefined) return 0;
    return Array.isArray(listeners) ? listeners.length : 1;
  }

  private listenersOf(event: RawTcpEvent): Listeners {
    if (event !== 'data' && event !== 'end' && event !== 'error' && event !== 'close') {
      throw new TypeError(`a raw TCP socket has no '${String(event)}' event`);
    }
    return this.#events?.[event];
  }

  private setListeners(event: RawTcpEvent, listeners: Listeners): void {
    this.#events ??= new Events();
    this.#events[event] = listeners;
  }

  /**
   * Calls the handler, then the listeners, with the socket as `this`; one that throws does not keep the others from
   * running.
   */
  private emit(handler: Listener | undefined, listeners: Listeners, arg?: unknown): void {
    if (listeners === undefined) {
      if (handler !== undefined) (handler as (this: RawTcpSocket, arg: unknown) => void).call(this, arg);
      return;
    }
    const all =
      handler === undefined ? listeners : Array.isArray(listeners) ? [handler, ...listeners] : [handler, listeners];
    if (!Array.isArray(all)) {
      (all as (this: RawTcpSocket, arg: unknown) => void).call(this, arg);
      return;
    }
    let failure: { error: unknown } | undefined;
    for (const listener of all) {
      try {
        (listener as (this: RawTcpSocket, arg: unknown) => void).call(this, arg);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }

  /** Bytes the kernel has not taken yet, byte-exact (libuv's write queue); 0 once destroyed. */
  get writeQueueSize(): number {
    if ((this.#flags & DESTROYED) !== 0) return 0;
    return this.#handle.writeQueueSize;
  }

  get destroyed(): boolean {
    return (this.#flags & DESTROYED) !== 0;
  }

  get remoteAddress(): string | undefined {
    return this.peer().address;
  }

  get remotePort(): number | undefined {
    return this.peer().port;
  }

  private peer(): { address?: string; port?: number } {
    const out: { address?: string; port?: number } = {};
    if (this.destroyed || this.#handle.getpeername(out) !== 0) return {};
    return out;
  }

  /** Sets the handlers of all four events (see StreamHandlers); each read goes to `data` instead of 'data'. */
  handleWith(handlers: StreamHandlers): void {
    this.#handlers = handlers;
  }

  /** Called by the handle's read callback. */
  read(length: number): void {
    if (length > 0) {
      const chunk = takeRead(length);
      const reader = this.#handlers?.data;
      if (reader !== undefined) reader.call(this as never, chunk);
      else this.emit(undefined, this.#events?.data, chunk);
      return;
    }
    if (length === 0) return;
    this.#flags &= ~READING;
    if (length !== UV_EOF) {
      this.destroy(systemError(length, 'read'));
      return;
    }
    this.#flags |= PEER_ENDED;
    this.emit(this.#handlers?.end, this.#events?.end);
    if ((this.#flags & SHUT_DOWN) !== 0) this.destroy();
  }

  isPaused(): boolean {
    return (this.#flags & READING) === 0;
  }

  pause(): this {
    if ((this.#flags & READING) !== 0) {
      this.#flags &= ~READING;
      this.#handle.readStop();
    }
    return this;
  }

  resume(): this {
    if ((this.#flags & (READING | PEER_ENDED | DESTROYED)) !== 0) return this;
    const status = this.#handle.readStart();
    if (status !== 0) this.destroy(systemError(status, 'read'));
    else this.#flags |= READING;
    return this;
  }

  /** Queues `bytes`; false once more than nothing waits in libuv. Bytes written after end() or destroy() are dropped. */
  write(bytes: Uint8Array): boolean {
    if ((this.#flags & (ENDING | DESTROYED)) !== 0) return false;
    const stream = streamBinding()!;
    // A write libuv completes at once (nearly all of them) leaves its request untouched, so the next write reuses it:
    // a new WriteWrap is an object made through V8's API (~110 B and a slow path) per write. One that has to wait
    // keeps its request until oncomplete; the write after it takes a new one.
    let req = spareWrite;
    spareWrite = undefined;
    if (req === undefined) {
      req = new stream.WriteWrap();
      req.oncomplete = afterWrite;
    }
    req.handle = this.#handle;
    req.socket = this;
    req.bytes = bytes.length;
    const status = this.#handle.writeBuffer(req, bytes);
    if (status !== 0) {
      this.destroy(systemError(status, 'write'));
      return false;
    }
    if (stream.streamBaseState[stream.kLastWriteWasAsync] === 0) {
      req.handle = undefined;
      req.socket = undefined;
      spareWrite = req;
      return this.writableLength === 0;
    }
    req.buffer = bytes;
    this.writableLength += bytes.length;
    return false;
  }

  /** Called when libuv has written (or failed to write) an asynchronous write's bytes. */
  written(req: WriteRequest, status: number): void {
    this.writableLength -= req.bytes;
    req.buffer = undefined;
    if (status < 0) this.destroy(systemError(status, 'write'));
  }

  /** Sends FIN once the queued bytes are written (libuv's shutdown waits for them). */
  end(): this {
    if ((this.#flags & (ENDING | DESTROYED)) !== 0) return this;
    this.#flags |= ENDING;
    const req = new (streamBinding()!.ShutdownWrap)();
    req.handle = this.#handle;
    req.oncomplete = afterShutdown;
    req.socket = this;
    const status = this.#handle.shutdown(req);
    // 1: done at once (Node's convention); ENOTCONN: the peer is gone, so is our side.
    if (status === 1 || (status < 0 && getSystemErrorName(status) === 'ENOTCONN')) this.shutDown(0);
    else if (status !== 0) this.destroy(systemError(status, 'shutdown'));
    return this;
  }

  /** Our side is shut down: the socket closes once the peer's side has ended too. */
  shutDown(status: number): void {
    if (this.destroyed) return;
    if (status < 0 && getSystemErrorName(status) !== 'ENOTCONN') {
      this.destroy(systemError(status, 'shutdown'));
      return;
    }
    this.#flags |= SHUT_DOWN;
    if ((this.#flags & PEER_ENDED) !== 0) this.destroy();
  }

  /**
   * Closes the handle; 'error' (if `error`) and 'close' follow once it is closed. Pending writes are cancelled. The
   * error waits in a closure of that rare close, not in a field every socket would carry.
   */
  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.#flags = (this.#flags | DESTROYED) & ~READING;
    this.#handle.close(
      error === undefined
        ? afterClose
        : function (this: TcpHandle): void {
            afterClose.call(this, error);
          },
    );
    return this;
  }

  /** Called once the handle is closed. */
  closed(error: Error | undefined): void {
    const handlers = this.#handlers;
    try {
      if (error !== undefined) this.emit(handlers?.error, this.#events?.error, error);
    } finally {
      this.emit(handlers?.close, this.#events?.close, error !== undefined);
    }
  }
}

// The handle and request callbacks: one of each for all sockets (`this` is the handle or request), no closures.
function onRead(this: TcpHandle): void {
  const stream = binding!;
  this[OWNER!]?.read(stream.streamBaseState[stream.kReadBytesOrError]!);
}

function afterWrite(this: WriteRequest, status: number): void {
  this.socket!.written(this, status);
}

function afterShutdown(this: ShutdownRequest, status: number): void {
  this.socket.shutDown(status);
}

function afterClose(this: TcpHandle, error?: Error): void {
  const socket = this[OWNER!];
  this[OWNER!] = null;
  socket?.closed(error);
}

/** The listening handle of a net.Server as far as it is used here. */
interface ListenHandle {
  onconnection: ((this: ListenHandle, status: number, handle: unknown) => void) | undefined;
}

/**
 * Takes over the connections `server` (a listening net.Server) accepts: each arrives as a RawTcpSocket, not reading
 * yet, with TCP_NODELAY set. Returns false, changing nothing, where this Node's internals are not as expected: the
 * server then accepts net.Sockets as before. `server.close()` still stops accepting; the connections are the
 * owner's to end (net.Server does not count them).
 */
export function adoptConnections(server: Server, onSocket: (socket: RawTcpSocket) => void): boolean {
  if (streamBinding() === undefined) return false;
  const handle = (server as unknown as { _handle?: ListenHandle | null })._handle;
  // The listening handle is a TCP handle too (the same class as those it accepts): it shows what they offer.
  if (handle == null || typeof handle.onconnection !== 'function' || !isTcpHandle(handle)) return false;
  handle.onconnection = (status: number, accepted: unknown): void => {
    // An accept that failed (the process is out of files): the kernel keeps the connection queued or drops it.
    if (status !== 0) return;
    const tcp = accepted as TcpHandle;
    tcp.setNoDelay(true);
    onSocket(new RawTcpSocket(tcp));
  };
  return true;
}
