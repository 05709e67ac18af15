// The main thread's side of the download worker: starts it, learns its address, tells it about removed artifacts,
// logs its records through the backend's logger, restarts it when it dies (on the port it had, so the URLs already
// in manifests stay valid), and stops it on close.
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import type { DownloadWorkerData, FromWorker, ToWorker } from './messages.js';

export interface DownloadListenerOptions {
  artifactDir: string;
  urlSecret: Uint8Array;
  /** PEM certificate chain and key (the API's); without them the listener speaks plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** Port; 0 picks a free one (default 0). */
  port?: number;
  hotFileMaxBytes?: number;
  hotTotalMaxBytes?: number;
  logger: Logger;
  /** Level of the worker's own records (default OTALINK_LOG_LEVEL or info). */
  logLevel?: string;
  /** The worker's script (default worker-entry.mjs; tests give one that dies). */
  workerEntry?: URL;
  /** First delay before restarting a worker that died, doubled on each death in a row up to 30 s (default 500 ms). */
  restartDelayMs?: number;
}

export interface DownloadListener {
  /** Base URL of the listener, e.g. https://127.0.0.1:8444 (IPv6 hosts in brackets): the origin of download URLs. */
  readonly url: string;
  /** Whether a worker is running and listening right now (false while it restarts). */
  readonly listening: boolean;
  /** How many times the worker was restarted after dying. */
  readonly restarts: number;
  /** The worker's thread id (changes on a restart; -1 while there is none); for tests and diagnostics. */
  readonly threadId: number;
  /** The artifact's file was removed: the worker stops serving it from memory (resolves once it has). */
  forget(sha256: string): Promise<void>;
  /** Stops the worker (ending its connections) and waits for it to exit. */
  close(): Promise<void>;
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const MAX_RESTART_DELAY_MS = 30_000;
/** How long close() waits for the worker to end its connections before terminating it. */
const CLOSE_GRACE_MS = 5_000;
const LEVELS: Record<number, keyof Logger> = {
  10: 'debug',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'error',
};

/** An error of the worker's listen, with its code (EADDRINUSE…) and port, as a listen error on this thread has. */
export class DownloadListenError extends Error {
  readonly code: string | undefined;
  readonly port: number;
  constructor(code: string | undefined, message: string, port: number) {
    super(`download listener: ${message}`);
    this.name = 'DownloadListenError';
    this.code = code;
    this.port = port;
  }
}

function urlOf(protocol: 'http' | 'https', address: string, family: string, port: number): string {
  return `${protocol}://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
}

/** Relays one pino line of the worker through the main thread's logger. */
function relay(logger: Logger, line: string): void {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    logger.warn({ line }, 'download worker: unparsable log line');
    return;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = record;
  const method = LEVELS[typeof level === 'number' ? level : 30] ?? 'info';
  logger[method]({ thread: 'downloads', ...fields }, typeof msg === 'string' ? msg : 'download worker');
}

/** Starts the worker and resolves once it listens; rejects (DownloadListenError) when it cannot listen. */
export async function startDownloadListener(options: DownloadListenerOptions): Promise<DownloadListener> {
  const { logger } = options;
  const protocol = options.tls === undefined ? 'http' : 'https';
  const data: DownloadWorkerData = {
    artifactDir: options.artifactDir,
    urlSecret: options.urlSecret,
    tls: options.tls,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    hotFileMaxBytes: options.hotFileMaxBytes,
    hotTotalMaxBytes: options.hotTotalMaxBytes,
    logLevel: options.logLevel ?? process.env.OTALINK_LOG_LEVEL ?? 'info',
  };
  const firstDelayMs = options.restartDelayMs ?? 500;
  let worker: Worker | undefined;
  let listening = false;
  let closed = false;
  let restarts = 0;
  let delayMs = firstDelayMs;
  let restartTimer: NodeJS.Timeout | undefined;
  let url = '';
  let nextForgetId = 0;
  /** Forgets the worker has not confirmed yet; a worker that exits forgets everything (a new one starts empty). */
  const forgetting = new Map<number, () => void>();
  const settleForgets = () => {
    for (const done of forgetting.values()) done();
    forgetting.clear();
  };

  /** Starts one worker; resolves with its URL once it listens, rejects if it cannot. */
  const spawn = () =>
    new Promise<string>((resolve, reject) => {
      const current = new Worker(options.workerEntry ?? ENTRY, { workerData: data });
      worker = current;
      let started = false;
      let failure: Error | undefined;
      current.on('message', (message: FromWorker) => {
        if (message.type === 'log') relay(logger, message.line);
        else if (message.type === 'forgotten') {
          forgetting.get(message.id)?.();
          forgetting.delete(message.id);
        } else if (message.type === 'listening') {
          started = true;
          listening = true;
          delayMs = firstDelayMs;
          resolve(urlOf(protocol, message.address, message.family, message.port));
        } else failure = new DownloadListenError(message.code, message.message, data.port);
      });
      // An uncaught error in the worker ends it: logged here, then handled on exit like any death.
      current.on('error', (err) => {
        failure ??= err;
        logger.error({ err, thread: 'downloads' }, 'download worker failed');
      });
      current.on('exit', (code) => {
        if (worker === current) {
          worker = undefined;
          listening = false;
          settleForgets();
        }
        if (!started) {
          reject(failure ?? new DownloadListenError(undefined, `the worker exited with code ${code}`, data.port));
          return;
        }
        if (!closed) scheduleRestart(code);
      });
    });

  const scheduleRestart = (code: number) => {
    logger.error({ code, restartInMs: delayMs, thread: 'downloads' }, 'download worker exited: restarting it');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (closed) return;
      restarts++;
      spawn().then(
        () => logger.info({ url, restarts, thread: 'downloads' }, 'download worker restarted'),
        (err: unknown) => {
          logger.error({ err, thread: 'downloads' }, 'download worker could not restart');
          delayMs = Math.min(delayMs * 2, MAX_RESTART_DELAY_MS);
          if (!closed) scheduleRestart(-1);
        },
      );
    }, delayMs);
    restartTimer.unref();
  };

  url = await spawn();
  // A restart binds the port the first worker got, so URLs already handed out keep working.
  data.port = Number(new URL(url).port);
  logger.info({ url, thread: 'downloads' }, 'download listener started');

  let closing: Promise<void> | undefined;
  return {
    get url() {
      return url;
    },
    get listening() {
      return listening;
    },
    get restarts() {
      return restarts;
    },
    get threadId() {
      return worker?.threadId ?? -1;
    },
    forget(sha256) {
      const current = worker;
      if (current === undefined) return Promise.resolve();
      const id = nextForgetId++;
      return new Promise<void>((resolve) => {
        forgetting.set(id, resolve);
        current.postMessage({ type: 'forget', sha256, id } satisfies ToWorker);
      });
    },
    close() {
      closing ??= (async () => {
        closed = true;
        if (restartTimer !== undefined) clearTimeout(restartTimer);
        const current = worker;
        if (current === undefined) return;
        const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
        current.postMessage({ type: 'close' } satisfies ToWorker);
        const grace = setTimeout(() => void current.terminate(), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(grace);
      })();
      return closing;
    },
  };
}
