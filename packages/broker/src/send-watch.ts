// The send timeout (EMQX's send_timeout): a connection whose output makes no progress for `send_timeout` is
// ended. Keepalive does not cover it: a client that stopped reading but still sends (a hung reader thread, a
// bug) keeps its keepalive alive, one with keepalive 0 has none, and either would hold its backlog, its socket
// and its session's window for good. A watch is armed only when a write leaves bytes the kernel did not take,
// and judged by the broker's one deadline ticker, so a connection whose output flows costs nothing.
//
// Progress is any byte the kernel takes, not a whole write completing: a vehicle on a slow line may take a
// minute for one large write, and must not be cut while it takes it. Two measures, either is enough:
// - `outputLeft`: what the stream holds; with what was written since, a drop shows bytes taken. Byte-exact on
//   plain TCP (libuv's write queue); on TLS and WebSocket it drops only when a write completes.
// - `tcpWriteQueue`: libuv's write queue of the TCP connection under a TLS or WebSocket stream. Only our writes
//   make it grow, so any drop between two checks is the kernel taking bytes; growth (a PINGRESP to a client that
//   sends but does not read) is never taken for progress.
import type { DeadlineTicker, Timed } from './keepalive.js';

/** What the watch needs of its connection. */
export interface SendWatched {
  /** Bytes written to the stream that the kernel has not taken (see above for how exact). */
  readonly outputLeft: number;
  /** libuv's write queue of the TCP connection under a layered stream; undefined where there is none to read. */
  readonly tcpWriteQueue: number | undefined;
  /** Still open and sending (not closing or closed). */
  readonly sending: boolean;
  /** No progress for the whole timeout with `left` bytes waiting: the connection ends. */
  sendTimedOut(left: number, timeoutMs: number): void;
}

/** Checks per timeout: a line that stops taking bytes is cut between 1 and 1.25 timeouts later (plus a tick). */
const CHECKS_PER_TIMEOUT = 4;

export class SendWatch implements Timed {
  deadline = 0;
  armed = false;
  /** Bytes written since it was armed. */
  written = 0;
  /** What the stream held when armed. */
  #held = 0;
  /** Bytes taken (since armed) at the last check. */
  #taken = 0;
  #tcpQueue: number | undefined;
  #progressAt = 0;

  constructor(
    private readonly connection: SendWatched,
    private readonly ticker: DeadlineTicker,
    private readonly timeoutMs: number,
  ) {}

  /** A write left `held` bytes in the stream: progress is judged from now. */
  arm(held: number, now: number): void {
    this.armed = true;
    this.written = 0;
    this.#held = held;
    this.#taken = 0;
    this.#tcpQueue = this.connection.tcpWriteQueue;
    this.#progressAt = now;
    this.deadline = now + this.timeoutMs / CHECKS_PER_TIMEOUT;
    this.ticker.add(this);
  }

  disarm(): void {
    this.armed = false;
    this.ticker.delete(this);
  }

  expire(now: number): void {
    const connection = this.connection;
    const left = connection.sending ? connection.outputLeft : 0;
    if (left === 0) {
      // Drained (or ending anyway): the next backlog arms it again.
      this.armed = false;
      return;
    }
    const taken = this.#held + this.written - left;
    const tcpQueue = connection.tcpWriteQueue;
    const tcpTook = tcpQueue !== undefined && this.#tcpQueue !== undefined && tcpQueue < this.#tcpQueue;
    this.#tcpQueue = tcpQueue;
    if (taken > this.#taken || tcpTook) {
      this.#taken = Math.max(taken, this.#taken);
      this.#progressAt = now;
    } else if (now - this.#progressAt >= this.timeoutMs) {
      this.armed = false;
      connection.sendTimedOut(left, this.timeoutMs);
      return;
    }
    this.deadline = now + this.timeoutMs / CHECKS_PER_TIMEOUT;
    this.ticker.add(this);
  }
}

/**
 * libuv's write queue of the TCP connection under `stream`, read from Node's handles: a TLS socket's raw socket
 * (`_parent`), a net.Socket's own handle, or the socket a WebSocket stream names as `tcpSocket` (listeners/ws.ts).
 */
export function tcpWriteQueueOf(stream: object): number | undefined {
  type Handled = { _handle?: { writeQueueSize?: unknown } | null; _parent?: Handled | null; tcpSocket?: Handled };
  let s = stream as Handled;
  if (s.tcpSocket !== undefined) s = s.tcpSocket;
  const size = (s._parent ?? s)._handle?.writeQueueSize;
  return typeof size === 'number' ? size : undefined;
}
