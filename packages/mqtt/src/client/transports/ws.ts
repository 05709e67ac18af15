// ws:// and wss://: the platform WebSocket where there is one (browsers), else the `ws` package, which also takes
// TLS options and headers. Subprotocol "mqtt" as MQTT over WebSockets requires.
import type { Transport, TransportFactory } from '../transport.js';

/**
 * Bytes a WebSocket may hold unsent before write() says the line is backed up (a net.Socket's default high-water
 * mark is 16 KiB; frames add a little). Neither WebSocket has a drain event: while backed up, bufferedAmount is
 * polled every DRAIN_POLL_MS until it is back under the mark.
 */
const WS_HIGH_WATER = 64 * 1024;
const DRAIN_POLL_MS = 5;
/** How long end() waits for the server's side of the close handshake before it drops the socket. */
const END_LIMIT_MS = 2000;

interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes sent but not yet handed to the network (both WebSockets have it). */
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  /** The `ws` package's (Node): stop and start reading the socket, and close it without a handshake. */
  pause?(): void;
  resume?(): void;
  terminate?(): void;
}

type WebSocketCtor = new (url: string, protocols: string[], options?: object) => WebSocketLike;

export const wsTransport: TransportFactory = async (target, handlers) => {
  const url = `${target.protocol}://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}${target.path}`;
  const needsNodeOptions = target.tls !== undefined || target.wsHeaders !== undefined;
  const platform = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  let socket: WebSocketLike;
  if (platform !== undefined && !needsNodeOptions) {
    socket = new platform(url, ['mqtt']);
  } else {
    const { default: WS } = await import('ws');
    const t = target.tls ?? {};
    socket = new (WS as unknown as WebSocketCtor)(url, ['mqtt'], {
      headers: target.wsHeaders,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      passphrase: t.passphrase,
      servername: t.servername,
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      // ws hands its options to tls.connect: the chain is still verified, the host name not.
      ...(t.checkHostname === false ? { checkServerIdentity: () => undefined } : {}),
    });
  }
  socket.binaryType = 'arraybuffer';
  // Frames that come with the upgrade response are emitted at once, before this function's caller holds the
  // transport: kept here and handed on after it does, so none is lost. A close that comes meanwhile waits for them:
  // a refusing CONNACK followed by the server's close must reach the client as the refusal, not as a lost line.
  let early: Uint8Array[] | undefined = [];
  let lastError: Error | undefined;
  let closeWaiting = false;
  let closed = false;
  let endLimit: ReturnType<typeof setTimeout> | undefined;
  let drainPoll: ReturnType<typeof setInterval> | undefined;
  const stopPolling = () => {
    if (drainPoll === undefined) return;
    clearInterval(drainPoll);
    drainPoll = undefined;
  };
  /** Reports the end once, whichever comes first: the close event, an error, a write on a closing socket, end()'s limit. */
  const finish = () => {
    if (closed) return;
    if (early !== undefined) {
      closeWaiting = true;
      return;
    }
    closed = true;
    stopPolling();
    clearTimeout(endLimit);
    handlers.close(lastError);
  };
  /** Closes at once: `ws` without a handshake; a platform WebSocket has only close(). */
  const drop = () => (socket.terminate === undefined ? socket.close() : socket.terminate());
  /** The line is unusable (a protocol error, a close begun by the server): drop it now, not after ws's 30 s. */
  const lost = (error: Error) => {
    lastError ??= error;
    drop();
    finish();
  };
  socket.onmessage = (ev) => {
    const chunk = bytesOf(ev.data);
    // MQTT over WebSockets is binary frames only; a text frame closes the connection [MQTT-6.0.0-1].
    if (chunk === undefined) {
      const error = new Error(`the server sent a text frame on ${url}, not MQTT`);
      if (early === undefined) lost(error);
      else lastError ??= error;
      return;
    }
    if (early !== undefined) early.push(chunk);
    else handlers.data(chunk);
  };
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      socket.close();
      reject(target.signal.reason instanceof Error ? target.signal.reason : new Error('connect aborted'));
    };
    socket.onopen = () => {
      target.signal.removeEventListener('abort', onAbort);
      resolve();
    };
    socket.onerror = (ev) => {
      target.signal.removeEventListener('abort', onAbort);
      reject(errorOf(ev, url));
    };
    // Aborted while `ws` was being imported (end(), a short connect timeout): the event has already fired. (After
    // onerror is set: closing a WebSocket still connecting reports an error.)
    if (target.signal.aborted) {
      onAbort();
      return;
    }
    target.signal.addEventListener('abort', onAbort, { once: true });
  });
  setTimeout(() => {
    const held = early ?? [];
    early = undefined;
    for (const chunk of held) handlers.data(chunk);
    if (lastError !== undefined && !closeWaiting) lost(lastError);
    else if (closeWaiting) finish();
  }, 0);
  socket.onerror = (ev) => {
    // `ws` reports a bad frame at once, then waits up to 30 s for the close handshake: the line is lost now.
    lost(errorOf(ev, url));
  };
  socket.onclose = (ev) => {
    // A close frame with a code that says why (1002 protocol error, 1009 too big, a proxy's 4xxx): kept for the
    // report. 1000 (normal), 1005 (no code) and 1006 (no close frame: TCP went) say nothing more than the close.
    const { code, reason } = (ev ?? {}) as { code?: unknown; reason?: unknown };
    if (lastError === undefined && typeof code === 'number' && code !== 1000 && code !== 1005 && code !== 1006) {
      const why = typeof reason === 'string' && reason !== '' ? `: ${reason}` : '';
      lastError = Object.assign(new Error(`the server closed the WebSocket with code ${code}${why}`), {
        code: 'WS_CLOSE',
        closeCode: code,
      });
    }
    finish();
  };
  const transport: Transport = {
    write: (chunk) => {
      if (closed) return true;
      // Closing (the server began it, or end() did): what is written now never goes. The line is reported lost at
      // once, not when `ws` gives up on the close handshake 30 s later; a QoS 0 message goes as over a dying TCP
      // socket (at most once), a QoS 1/2 one is sent again on the next connection.
      if (socket.readyState !== 1) {
        lost(new Error(`the WebSocket to ${url} is closing`));
        return true;
      }
      socket.send(chunk);
      if (socket.bufferedAmount <= WS_HIGH_WATER) return true;
      // Backed up: the client holds QoS 0 publishers until handlers.drained().
      drainPoll ??= setInterval(() => {
        if (socket.readyState === 1 && socket.bufferedAmount > WS_HIGH_WATER) return;
        stopPolling();
        if (socket.readyState === 1) handlers.drained?.();
      }, DRAIN_POLL_MS);
      return false;
    },
    end: () => {
      socket.close(1000);
      // A server that never answers the close handshake must not keep us waiting (`ws` gives it 30 s, a platform
      // WebSocket may give it longer): as over TCP, 2 s.
      endLimit ??= setTimeout(() => {
        drop();
        finish();
      }, END_LIMIT_MS);
      (endLimit as { unref?: () => void }).unref?.();
    },
    // A dead line has no one to answer a close handshake: with `ws`, drop the socket at once.
    destroy: drop,
  };
  if (socket.pause !== undefined && socket.resume !== undefined) {
    // With `ws`, a consumer at its high-water mark stops the reads and TCP pushes back on the server, as over
    // mqtt://; a browser's WebSocket cannot pause: the client then reads on, holding acks and dropping QoS 0 for a
    // consumer behind.
    transport.pause = () => socket.pause!();
    transport.resume = () => socket.resume!();
  }
  return transport;
};

function bytesOf(d: unknown): Uint8Array | undefined {
  if (d instanceof ArrayBuffer) return new Uint8Array(d);
  if (d instanceof Uint8Array) return d;
  return undefined;
}

function errorOf(ev: unknown, url: string): Error {
  const inner = (ev as { error?: unknown }).error;
  return inner instanceof Error ? inner : new Error(`WebSocket error on ${url}`);
}
