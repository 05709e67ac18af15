// Shared by tcp and tls: adapts a connected node:net Socket to the Transport interface.
import type { Socket } from 'node:net';
import type { Transport, TransportHandlers } from '../transport.js';

export interface SocketTransportOptions {
  /** The socket was created with `onread`, which hands the bytes to `handlers.data` itself (no 'data' events). */
  dataViaOnread?: boolean;
}

export function socketTransport(
  socket: Socket,
  handlers: TransportHandlers,
  options: SocketTransportOptions = {},
): Transport {
  let lastError: Error | undefined;
  if (options.dataViaOnread !== true) socket.on('data', (chunk: Buffer) => handlers.data(chunk));
  socket.on('error', (err) => {
    lastError = err;
  });
  socket.on('close', () => handlers.close(lastError));
  return {
    write: (chunk) => {
      if (!socket.destroyed) socket.write(chunk);
    },
    end: () => {
      socket.end();
      // A peer that never closes its side must not keep us waiting.
      setTimeout(() => socket.destroy(), 2000).unref();
    },
    destroy: () => socket.destroy(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
}

/** Resolves when `event` fires on the socket; rejects on error or abort (destroying the socket). */
export function whenConnected(socket: Socket, event: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error('connect aborted'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    });
    socket.once(event, () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
