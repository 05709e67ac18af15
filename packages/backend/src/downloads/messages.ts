// What the main thread and the download worker tell each other (structured-clone messages, no functions).

export interface DownloadWorkerData {
  /** The artifact directory: files named by their SHA-256 (artifacts/files.ts). */
  artifactDir: string;
  /** The HMAC secret of the download URLs (artifacts/signed-url.ts). */
  urlSecret: Uint8Array;
  tls: { cert: string | Buffer; key: string | Buffer } | undefined;
  host: string;
  port: number;
  hotFileMaxBytes: number | undefined;
  hotTotalMaxBytes: number | undefined;
  /** pino level of the worker's own logs, which it sends to the main thread. */
  logLevel: string;
}

export type ToWorker =
  /** The artifact's file was removed: stop serving it from memory. */
  | { type: 'forget'; sha256: string; id: number }
  /** Stop listening, end the connections, exit. */
  | { type: 'close' };

export type FromWorker =
  | { type: 'listening'; address: string; family: string; port: number }
  /** Listening failed (the worker then exits): the error's code (EADDRINUSE…) and message. */
  | { type: 'listen-failed'; code: string | undefined; message: string }
  /** The forget with this id is done: the next request no longer gets those bytes. */
  | { type: 'forgotten'; id: number }
  /** One pino record, as the JSON line pino wrote. */
  | { type: 'log'; line: string };
