// An in-memory transport pair for tests and for running client and broker in one process: the client side is a
// TransportFactory; each connection shows up on the server side as a MemoryConnection. Delivery is asynchronous
// (a microtask), as with sockets, so re-entrancy bugs show up here too.
import type { Transport, TransportFactory } from '../transport.js';

export interface MemoryConnection {
  write(chunk: Uint8Array): void;
  end(): void;
  onData(listener: (chunk: Uint8Array) => void): void;
  onClose(listener: () => void): void;
}

export function memoryTransport(accept: (connection: MemoryConnection) => void): TransportFactory {
  return async (target, handlers) => {
    if (target.signal.aborted) throw new Error('connect aborted');
    let open = true;
    const serverData: Array<(chunk: Uint8Array) => void> = [];
    const serverClose: Array<() => void> = [];
    const close = () => {
      if (!open) return;
      open = false;
      queueMicrotask(() => {
        handlers.close();
        for (const l of serverClose) l();
      });
    };
    const server: MemoryConnection = {
      write: (chunk) => {
        if (!open) return;
        const copy = chunk.slice();
        queueMicrotask(() => open && handlers.data(copy));
      },
      end: close,
      onData: (l) => serverData.push(l),
      onClose: (l) => serverClose.push(l),
    };
    accept(server);
    const client: Transport = {
      write: (chunk) => {
        if (!open) return;
        const copy = chunk.slice();
        queueMicrotask(() => {
          if (open) for (const l of serverData) l(copy);
        });
      },
      end: close,
      destroy: close,
    };
    return client;
  };
}
