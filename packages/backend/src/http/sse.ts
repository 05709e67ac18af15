// Server-sent events over a hijacked fastify reply. Every open stream is tracked so that closing the app ends them
// (otherwise server.close() would wait for clients that never hang up), and a comment line every heartbeat keeps
// proxies and idle timeouts from dropping a quiet stream.
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface EventStream {
  /** Sends one event; `data` is JSON-encoded on one line. Returns false once the stream is closed. */
  send(event: string, data: unknown, id?: string): boolean;
  /** Ends the stream from the server side. */
  close(): void;
  /** Resolves when the stream is closed by either side. */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
}

/** Bytes a stream may hold unsent before the client is deemed stuck and dropped (it reconnects to a snapshot). */
export const DEFAULT_SSE_MAX_BUFFERED_BYTES = 1024 * 1024;

export class EventStreams {
  readonly #open = new Set<EventStream>();
  readonly #heartbeatMs: number;
  readonly #maxBufferedBytes: number;

  constructor(heartbeatMs: number, maxBufferedBytes = DEFAULT_SSE_MAX_BUFFERED_BYTES) {
    this.#heartbeatMs = heartbeatMs;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  get size(): number {
    return this.#open.size;
  }

  open(request: FastifyRequest, reply: FastifyReply): EventStream {
    reply.hijack();
    const raw = reply.raw;
    const maxBufferedBytes = this.#maxBufferedBytes;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx buffers responses unless told otherwise; events must go out as they happen.
      'x-accel-buffering': 'no',
    });
    // Tell EventSource how long to wait before it reconnects.
    raw.write('retry: 3000\n\n');
    let isClosed = false;
    let resolveClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    const heartbeat = setInterval(() => {
      if (!isClosed) raw.write(': heartbeat\n\n');
    }, this.#heartbeatMs);
    heartbeat.unref();
    const finish = () => {
      if (isClosed) return;
      isClosed = true;
      clearInterval(heartbeat);
      this.#open.delete(stream);
      resolveClosed();
    };
    const stream: EventStream = {
      send(event, data, id) {
        if (isClosed) return false;
        const lines = [];
        if (id !== undefined) lines.push(`id: ${id}`);
        lines.push(`event: ${event}`, `data: ${JSON.stringify(data)}`);
        raw.write(`${lines.join('\n')}\n\n`);
        // A client that does not read would make the server buffer every event of a large campaign; since each
        // reconnect starts with a fresh snapshot, dropping it loses nothing.
        if (raw.writableLength > maxBufferedBytes) {
          stream.close();
          return false;
        }
        return true;
      },
      close() {
        if (isClosed) return;
        finish();
        raw.end();
      },
      closed,
      get isClosed() {
        return isClosed;
      },
    };
    this.#open.add(stream);
    request.raw.on('close', finish);
    raw.on('close', finish);
    raw.on('error', finish);
    return stream;
  }

  closeAll(): void {
    for (const stream of [...this.#open]) stream.close();
  }
}
