// The byte pipe under the client. Each transport (tcp, tls, ws, in-memory) opens one connection and reports
// bytes and the close; the client never sees sockets. Connect timeouts abort through `signal`.

export interface TlsOptions {
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  passphrase?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
  /**
   * false: the certificate's host name is not checked, its chain still is (mosquitto's `--insecure`). Default true.
   * Node only; rejectUnauthorized false drops both checks.
   */
  checkHostname?: boolean;
  alpnProtocols?: string[];
}

export interface TransportTarget {
  protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'memory';
  host: string;
  port: number;
  /** WebSocket path (with query). */
  path: string;
  tls?: TlsOptions;
  /** Extra headers for the WebSocket upgrade (Node only). */
  wsHeaders?: Record<string, string>;
  signal: AbortSignal;
}

/** Call these as methods (`handlers.data(chunk)`): the client passes an object whose methods use `this`. */
export interface TransportHandlers {
  data(chunk: Uint8Array): void;
  close(error?: Error): void;
  /** What write() held once it said false has gone out (see Transport.write). */
  drained?(): void;
}

export interface Transport {
  /**
   * Queues `chunk`. False when the transport now holds more than it should (a slow line): the client then waits
   * for `handlers.drained()` before it tells a QoS 0 publisher its message is gone. Optional: void never waits.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: transports written before this returned void, and may still
  write(chunk: Uint8Array): boolean | void;
  /** Graceful close: flushes what was written, then closes. */
  end(): void;
  /** Immediate close. */
  destroy(): void;
  /**
   * Stop reading from the connection (backpressure: the TCP window then pushes back on the server) until
   * `resume()`. Optional: without it the client reads on, and a consumer behind is bounded as while an answer is
   * awaited (ClientOptions.highWaterMark): QoS 1/2 acks held until read, QoS 0 messages dropped.
   */
  pause?(): void;
  resume?(): void;
}

/** Opens one connection; resolves once bytes can flow (after the TLS handshake for TLS). */
export type TransportFactory = (target: TransportTarget, handlers: TransportHandlers) => Promise<Transport>;
