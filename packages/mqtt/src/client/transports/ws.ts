// ws:// and wss://: the platform WebSocket where there is one (browsers), else the `ws` package, which also takes
// TLS options and headers. Subprotocol "mqtt" as MQTT over WebSockets requires.
import type { Transport, TransportFactory } from '../transport.js';

interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
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
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      socket.close();
      reject(target.signal.reason instanceof Error ? target.signal.reason : new Error('connect aborted'));
    };
    target.signal.addEventListener('abort', onAbort, { once: true });
    socket.onopen = () => {
      target.signal.removeEventListener('abort', onAbort);
      resolve();
    };
    socket.onerror = (ev) => {
      target.signal.removeEventListener('abort', onAbort);
      reject(errorOf(ev, url));
    };
  });
  let lastError: Error | undefined;
  socket.onmessage = (ev) => {
    const d = ev.data;
    if (d instanceof ArrayBuffer) handlers.data(new Uint8Array(d));
    else if (d instanceof Uint8Array) handlers.data(d);
  };
  socket.onerror = (ev) => {
    lastError = errorOf(ev, url);
  };
  socket.onclose = () => handlers.close(lastError);
  const transport: Transport = {
    write: (chunk) => {
      if (socket.readyState === 1) socket.send(chunk);
    },
    end: () => socket.close(1000),
    destroy: () => socket.close(),
  };
  return transport;
};

function errorOf(ev: unknown, url: string): Error {
  const inner = (ev as { error?: unknown }).error;
  return inner instanceof Error ? inner : new Error(`WebSocket error on ${url}`);
}
