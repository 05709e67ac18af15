// Downloads an artifact to a file over HTTPS (http only when allowed) with Range resume: after a dropped link, a
// server error or a process restart it continues from the bytes already on disk, guarded by If-Range with the
// ETag it started with, so a changed artifact restarts from zero instead of splicing two versions. Streams to disk
// (never the whole artifact in memory) and stops the moment more bytes arrive than the manifest declares.
import { open, stat, truncate } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext, type SecureContext, TLSSocket, connect as tlsConnect } from 'node:tls';

export interface DownloadOptions {
  url: string;
  /** The partial file: its length is where a resume starts. */
  path: string;
  /** The manifest's size: more is refused (OTA_ERR_TOO_LARGE). */
  size: number;
  /** The ETag the bytes on disk came with (from the journal), sent as If-Range. */
  etag?: string;
  /** CA certificates (PEM) for the artifact server; default: Node's bundled roots. */
  ca?: string | string[];
  /** Accept http:// URLs (default false). */
  allowHttp?: boolean;
  /** Attempts in a row without a single new byte before giving up (default 8). */
  maxAttempts?: number;
  /** Backoff between attempts: full jitter up to min(max, initial × 2^n) (defaults 500 ms and 30 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A request that receives nothing for this long is dropped and retried (default 30 s). */
  idleTimeoutMs?: number;
  /** Throttle (the simulator's slow links); default unlimited. */
  bytesPerSecond?: number;
  /** fsync the file when complete (default true). */
  fsync?: boolean;
  signal?: AbortSignal;
  /** Every answer of the server: its status and the byte the request started at (0, or a resume with Range). */
  onResponse?(status: number, offset: number): void;
  /** After every chunk written: bytes on disk and the ETag they belong to. */
  onProgress?(bytesDone: number, etag: string | undefined): void;
  /** For backoff jitter; default Math.random. */
  random?: () => number;
  /** Lets a simulated link outage hold retries without spending attempts. */
  link?: { isUp(): boolean; whenUp(): Promise<void>; onCut?(listener: () => void): () => void };
}

export type DownloadResult =
  | { ok: true; bytes: number; etag: string | undefined }
  | { ok: false; code: string; text: string }
  | { ok: false; code: 'AGENT_ERR_DOWNLOAD_STOPPED'; text: string; stopped: true };

class Permanent extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function download(options: DownloadOptions): Promise<DownloadResult> {
  const url = new URL(options.url);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowHttp === true)) {
    return { ok: false, code: 'AGENT_ERR_INSECURE_URL', text: `refusing ${url.protocol} (HTTPS required)` };
  }
  const maxAttempts = options.maxAttempts ?? 8;
  const random = options.random ?? Math.random;
  // Shared with each attempt so that an ETag seen before a cut is sent as If-Range on the resume.
  const held = { etag: options.etag };
  let failures = 0;
  let lastError = '';
  for (;;) {
    if (options.signal?.aborted) return stopped();
    if (options.link !== undefined && !options.link.isUp()) {
      await raceAbort(options.link.whenUp(), options.signal);
      continue;
    }
    const before = await fileLength(options.path);
    // A cut link drops the request in flight too, as a lost radio would.
    const request = new AbortController();
    const onAbort = () => request.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const offCut = options.link?.onCut?.(() => request.abort());
    try {
      const result = await attempt(url, { ...options, signal: request.signal }, before, held);
      if (result.complete) {
        return { ok: true, bytes: result.bytes, etag: held.etag };
      }
    } catch (e) {
      if (options.signal?.aborted) return stopped();
      if (e instanceof Permanent) return { ok: false, code: e.code, text: e.message };
      lastError = (e as Error).message;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      offCut?.();
    }
    const after = await fileLength(options.path);
    // Only attempts that made no progress count: a link that drops every megabyte still finishes.
    failures = after > before ? 1 : failures + 1;
    if (failures >= maxAttempts) {
      return {
        ok: false,
        code: 'AGENT_ERR_DOWNLOAD_FAILED',
        text: `download failed ${failures} times in a row: ${lastError}`.slice(0, 1024),
      };
    }
    const ceiling = Math.min(options.maxDelayMs ?? 30_000, (options.initialDelayMs ?? 500) * 2 ** (failures - 1));
    await sleep(random() * ceiling, options.signal);
  }
}

interface AttemptResult {
  complete: boolean;
  bytes: number;
}

async function attempt(
  url: URL,
  options: DownloadOptions,
  offset: number,
  held: { etag: string | undefined },
): Promise<AttemptResult> {
  const etag = held.etag;
  if (offset > options.size) {
    await truncate(options.path, 0);
    offset = 0;
  }
  const headers: Record<string, string> = {};
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    if (etag !== undefined) headers['if-range'] = etag;
  }
  const response = await get(url, headers, options);
  const status = response.statusCode ?? 0;
  options.onResponse?.(status, offset);
  const responseEtag = header(response, 'etag');
  if (status === 416) {
    response.resume();
    if (offset === options.size) {
      // Complete before this attempt (a restart after the last byte): make sure those bytes reached the disk.
      if (options.fsync !== false) await syncFile(options.path);
      return { complete: true, bytes: offset };
    }
    await truncate(options.path, 0);
    held.etag = undefined;
    return { complete: false, bytes: 0 };
  }
  if (status !== 200 && status !== 206) {
    response.resume();
    const retryable = status >= 500 || status === 408 || status === 429;
    const text = `HTTP ${status} from ${url.host}`;
    if (retryable) throw new Error(text);
    throw new Permanent('AGENT_ERR_DOWNLOAD_FAILED', text);
  }
  let start = offset;
  if (status === 206) {
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header(response, 'content-range') ?? '');
    if (range === null || Number(range[1]) !== offset) {
      response.resume();
      await truncate(options.path, 0);
      throw new Error('the server answered with another range than asked; starting over');
    }
  } else {
    // 200: the whole artifact (the server ignored Range, or If-Range saw a changed ETag): start over.
    start = 0;
  }
  const newEtag = responseEtag ?? (status === 206 ? etag : undefined);
  held.etag = newEtag;
  const done = await receive(response, options, start, newEtag);
  if (done < options.size) throw new Error(`connection ended after ${done} of ${options.size} bytes`);
  return { complete: true, bytes: done };
}

/** Received bytes waiting for the disk above this pause the response; it resumes below a quarter of it. */
const RECEIVE_HIGH_WATER = 1024 * 1024;

/**
 * Writes the response body after the `start` bytes already in the file and returns the length reached. Every byte
 * that arrived before the link dropped is on disk when this returns or throws: the body is taken from 'data' events
 * as it comes (a dropped connection discards what a stream still buffers, and on a busy vehicle that can be all of
 * a burst) and written in order through one file handle.
 */
async function receive(
  response: IncomingMessage,
  options: DownloadOptions,
  start: number,
  etag: string | undefined,
): Promise<number> {
  const queue: Buffer[] = [];
  let queued = 0;
  let done = start;
  // A throttled (simulated slow) link takes one chunk at a time: the rest waits in TCP, not in memory, as it would
  // on a real slow link, so a cut in the middle still finds most of the artifact not yet received.
  const highWater = options.bytesPerSecond !== undefined && options.bytesPerSecond > 0 ? 1 : RECEIVE_HIGH_WATER;
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  response.on('data', (chunk: Buffer) => {
    if (failure !== undefined) return;
    if (done + queued + chunk.length > options.size) {
      failure = new Permanent('OTA_ERR_TOO_LARGE', `the server sent more than the declared ${options.size} bytes`);
      response.destroy();
    } else {
      queue.push(chunk);
      queued += chunk.length;
      if (queued >= highWater) response.pause();
    }
    notify();
  });
  response.once('end', () => {
    ended = true;
    notify();
  });
  response.once('error', (error) => {
    failure ??= error;
    notify();
  });
  response.once('close', () => {
    if (!ended) failure ??= new Error(`connection closed after ${done + queued} of ${options.size} bytes`);
    notify();
  });
  // Opened after the listeners: what arrives meanwhile waits in the queue, not in the stream.
  const file = await open(options.path, start === 0 ? 'w' : 'a');
  const began = Date.now();
  const throttle = options.bytesPerSecond;
  options.onProgress?.(done, etag);
  try {
    for (;;) {
      for (let chunk = queue.shift(); chunk !== undefined; chunk = queue.shift()) {
        queued -= chunk.length;
        for (let off = 0; off < chunk.length; ) off += (await file.write(chunk, off)).bytesWritten;
        done += chunk.length;
        options.onProgress?.(done, etag);
        if (throttle !== undefined && throttle > 0 && failure === undefined) {
          const wait = began + ((done - start) * 1000) / throttle - Date.now();
          if (wait > 0) await sleep(wait, options.signal);
        }
        if (response.isPaused() && queued < highWater / 4 && failure === undefined) response.resume();
      }
      if (failure !== undefined || ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    try {
      // Complete: synced through this handle before it closes (a completed attempt reaches the disk here).
      if (done === options.size && failure === undefined && options.fsync !== false) await file.sync();
    } finally {
      await file.close();
    }
  }
  if (failure instanceof Permanent) throw failure;
  if (failure !== undefined && done < options.size) throw failure;
  return done;
}

/**
 * One TLS context per CA list, shared by every download in the process: building one parses the PEM into a fresh
 * certificate store, which per download was a large part of a simulated fleet's CPU.
 */
const secureContexts = new Map<string, SecureContext>();

function secureContextFor(ca: string | string[] | undefined): SecureContext | undefined {
  if (ca === undefined) return undefined;
  const key = typeof ca === 'string' ? ca : ca.join('\n');
  let context = secureContexts.get(key);
  if (context === undefined) {
    context = createSecureContext({ ca });
    // A process talks to a handful of artifact servers; the bound only guards against a caller varying it.
    if (secureContexts.size >= 16) secureContexts.clear();
    secureContexts.set(key, context);
  }
  return context;
}

/**
 * The download's own TLS connection, not one from a pool: a vehicle fetches an artifact and is done, so the
 * connection closes with the response (Connection: close) instead of idling in an HTTPS agent's keep-alive pool,
 * and no TLS session is cached where another vehicle of a simulated fleet could resume it.
 */
function connectTls(url: URL, ca: string | string[] | undefined): TLSSocket {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const secureContext = secureContextFor(ca);
  const socket = tlsConnect({
    host,
    port: url.port === '' ? 443 : Number(url.port),
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ...(secureContext === undefined ? {} : { secureContext }),
  });
  // Node's handshake asks for the peer's whole chain as objects (getPeerCertificate(true): every certificate
  // decoded, fingerprinted, its issuer looked up in the store) only to give checkServerIdentity the leaf's subject
  // and subject alt names, which the plain leaf has. The chain itself was verified by OpenSSL before this point.
  // Measured: ~250 µs of ~1.9 ms per handshake. Nothing else on this socket asks for the chain.
  socket.getPeerCertificate = (() =>
    TLSSocket.prototype.getPeerCertificate.call(socket, false)) as TLSSocket['getPeerCertificate'];
  return socket;
}

function get(url: URL, headers: Record<string, string>, options: DownloadOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const common = { headers, signal: options.signal, timeout: options.idleTimeoutMs ?? 30_000 };
    const req =
      url.protocol === 'https:'
        ? httpsRequest(url, { ...common, createConnection: () => connectTls(url, options.ca) })
        : httpRequest(url, { ...common, agent: false });
    req.on('response', resolve);
    req.on('timeout', () => req.destroy(new Error('no data from the artifact server')));
    req.on('error', reject);
    req.end();
  });
}

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function fileLength(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function syncFile(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

function stopped(): DownloadResult {
  return { ok: false, code: 'AGENT_ERR_DOWNLOAD_STOPPED', text: 'download stopped', stopped: true };
}

/** Resolves after `ms`, or at once when the signal fires (the caller checks the signal). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return delay(ms, undefined, signal === undefined ? {} : { signal }).catch(() => undefined);
}

/** Waits for `promise` unless the signal fires first (then resolves at once; the caller checks the signal). */
function raceAbort(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
