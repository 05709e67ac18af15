// The send timeout (EMQX's send_timeout): a connection whose output makes no progress for `send_timeout` is
// ended. Keepalive does not cover it: a client that stopped reading but still sends (a hung reader thread, a
// bug) keeps its keepalive alive, one with keepalive 0 has none, and either would hold its backlog, its socket
// and its session's window for good. A watch is armed only when a write leaves bytes the kernel did not take,
// and judged by the broker's one deadline ticker, so a connection whose output flows costs nothing.
import type { DeadlineTicker, Timed } from './keepalive.js';

/** What the watch needs of its connection. */
export interface SendWatched {
  /** Bytes written to the socket and not yet taken by the kernel. */
  readonly outputLeft: number;
  /** Still open and sending (not closing or closed). */
  readonly sending: boolean;
  /** No progress for the whole timeout with `left` bytes waiting: the connection ends. */
  sendTimedOut(left: number, timeoutMs: number): void;
}

export class SendWatch implements Timed {
  deadline = 0;
  armed = false;
  /** Bytes written since it was armed. */
  written = 0;
  /** What the socket held when armed. */
  #held = 0;
  /** Bytes the kernel had taken (since armed) at the last check. */
  #taken = 0;

  constructor(
    private readonly connection: SendWatched,
    private readonly ticker: DeadlineTicker,
    private readonly timeoutMs: number,
  ) {}

  /** A write left `held` bytes in the socket: progress is judged from now. */
  arm(held: number, now: number): void {
    this.armed = true;
    this.written = 0;
    this.#held = held;
    this.#taken = 0;
    this.deadline = now + this.timeoutMs;
    this.ticker.add(this);
  }

  disarm(): void {
    this.armed = false;
    this.ticker.delete(this);
  }

  expire(now: number): void {
    const connection = this.connection;
    const left = connection.outputLeft;
    if (!connection.sending || left === 0) {
      // Drained (or ending anyway): the next backlog arms it again.
      this.armed = false;
      return;
    }
    const taken = this.#held + this.written - left;
    if (taken > this.#taken) {
      // A slow line that takes its output is alive, however long its backlog lasts.
      this.#taken = taken;
      this.deadline = now + this.timeoutMs;
      this.ticker.add(this);
      return;
    }
    this.armed = false;
    connection.sendTimedOut(left, this.timeoutMs);
  }
}
