// The REST client the `artifact` and `campaign` commands share: --api/--insecure/--cafile, JSON requests, streamed
// uploads, the backend's error shape turned into ApiError, and a server-sent events reader.
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ParseArgsConfig } from 'node:util';
import { defaultPkiDir, otalinkHome } from '../stack/home.js';
import { UsageError } from './usage.js';

export const DEFAULT_API = 'https://127.0.0.1:8443';

export const API_OPTIONS = {
  api: { type: 'string' },
  insecure: { type: 'boolean' },
  cafile: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** The bootstrap admin token of a local backend: `otalink up` and `otalink backend` write it on the first start. */
export function defaultTokenFile(env: Record<string, string | undefined>): string {
  const dataDir = env.OTALINK_DATA_DIR;
  return dataDir !== undefined && dataDir !== ''
    ? join(dataDir, 'admin-token')
    : join(otalinkHome(env), 'backend', 'admin-token');
}

export const API_USAGE = `Backend:
  --api URL       the backend (default: OTALINK_API, else ${DEFAULT_API})
  --cafile FILE   CA certificate(s) to trust for the backend's TLS certificate (default for a loopback https
                  --api: the local dev CA, $OTALINK_HOME/pki/ca.pem, else .otalink/pki/ca.pem, when it exists)
  --insecure      do not verify the backend's TLS certificate
  --token TOKEN   API token (default: OTALINK_TOKEN; prefer it or --token-file: arguments show in ps)
  --token-file F  read the API token from F (default for a loopback --api: the local backend's admin-token,
                  $OTALINK_DATA_DIR/admin-token, else $OTALINK_HOME/backend/admin-token, else .otalink/backend/...)`;

/** The backend refused: its `{ error: { code, message, field? } }`, or a transport failure (code CLI_ERR_*). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface ApiClientOptions {
  baseUrl: string;
  ca?: Buffer;
  insecure?: boolean;
  /** Per request, from sending to the response headers (default 30 s). */
  timeoutMs?: number;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Where the token came from, for the hint on a 401. */
  tokenSource?: string;
}

export interface RequestBody {
  json?: unknown;
  stream?: Readable;
  contentType?: string;
  contentLength?: number;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #options: ApiClientOptions;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#options = options;
  }

  /** Sends a request and returns the parsed JSON answer; non-2xx answers throw ApiError. */
  async request<T>(method: string, path: string, body: RequestBody = {}): Promise<T> {
    const res = await this.open(method, path, body);
    const text = await readText(res);
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return (text === '' ? undefined : JSON.parse(text)) as T;
    throw this.#withHint(errorFrom(status, text));
  }

  /** Opens a request and resolves with the response (status not checked), for streams. */
  open(method: string, path: string, body: RequestBody = {}, signal?: AbortSignal): Promise<IncomingMessage> {
    const url = new URL(`${this.baseUrl}${path}`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#options.token !== undefined) headers.authorization = `Bearer ${this.#options.token}`;
    let payload: Buffer | undefined;
    if (body.json !== undefined) {
      payload = Buffer.from(JSON.stringify(body.json));
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    } else if (body.stream !== undefined) {
      headers['content-type'] = body.contentType ?? 'application/octet-stream';
      if (body.contentLength !== undefined) headers['content-length'] = String(body.contentLength);
    }
    const options: RequestOptions & { ca?: Buffer; rejectUnauthorized?: boolean } = { method, headers };
    if (signal !== undefined) options.signal = signal;
    if (url.protocol === 'https:') {
      if (this.#options.ca !== undefined) options.ca = this.#options.ca;
      if (this.#options.insecure === true) options.rejectUnauthorized = false;
    } else if (url.protocol !== 'http:') {
      return Promise.reject(new UsageError(`--api must be an http:// or https:// URL, got "${this.baseUrl}"`));
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const timeoutMs = this.#options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = send(url, options, (res) => {
        req.setTimeout(0);
        resolve(res);
      });
      req.setTimeout(timeoutMs, () =>
        req.destroy(new ApiError(0, 'CLI_ERR_TIMEOUT', `no answer from ${this.baseUrl} within ${timeoutMs} ms`)),
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error instanceof ApiError) reject(error);
        else
          reject(new ApiError(0, 'CLI_ERR_CONNECT', `cannot reach the backend at ${this.baseUrl}: ${error.message}`));
      });
      if (body.stream !== undefined) {
        body.stream.on('error', (error) => req.destroy(error));
        body.stream.pipe(req);
      } else {
        req.end(payload);
      }
    });
  }

  /** A 401 says which token was sent, or how to give one. */
  #withHint(error: ApiError): ApiError {
    if (error.status !== 401) return error;
    const source = this.#options.tokenSource;
    const hint =
      source === undefined
        ? 'no API token given: pass --token-file FILE, set OTALINK_TOKEN or --token (`otalink token create` makes one)'
        : `the API token from ${source} was refused`;
    return new ApiError(error.status, error.code, `${error.message} (${hint})`, error.field);
  }

  /** Reads a server-sent events stream until it ends or `signal` aborts. */
  async *events(path: string, signal?: AbortSignal): AsyncGenerator<{ event: string; data: unknown }> {
    // The signal goes to the request too: an abort while the answer is on its way must not be missed (the
    // listener below only exists once it has come, and an aborted signal never fires again).
    const res = await this.open('GET', path, {}, signal);
    const aborted = () => signal?.aborted === true;
    if (aborted()) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 0;
    if (status !== 200) throw this.#withHint(errorFrom(status, await readText(res)));
    const abort = () => res.destroy();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      let buffer = '';
      res.setEncoding('utf8');
      for await (const chunk of res) {
        buffer += chunk as string;
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')) };
        }
      }
    } catch (error) {
      if (!aborted()) throw error;
    } finally {
      signal?.removeEventListener('abort', abort);
      res.destroy();
    }
  }
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function errorFrom(status: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    const e = body.error;
    if (e !== undefined && typeof e.code === 'string' && typeof e.message === 'string') {
      return new ApiError(status, e.code, e.message, typeof e.field === 'string' ? e.field : undefined);
    }
  } catch {
    // Not our JSON (a proxy's HTML page, say): report the status.
  }
  return new ApiError(status, `HTTP_${status}`, `the backend answered ${status}`);
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--token-file ${file}: ${(error as Error).message}`);
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) throw new UsageError(`--token-file ${file}: expected one token on one line`);
  return token;
}

/**
 * The API token: --token, else OTALINK_TOKEN, else --token-file, else (only for a backend on this machine, so a
 * local admin token never goes to another host) the local backend's admin-token file when it exists.
 */
export async function tokenFor(
  values: { token?: string; 'token-file'?: string },
  env: Record<string, string | undefined>,
  api: URL,
): Promise<{ token: string; source: string } | undefined> {
  if (values.token !== undefined) {
    if (values.token === '' || /\s/.test(values.token)) throw new UsageError('--token must be one word');
    return { token: values.token, source: '--token' };
  }
  const fromEnv = env.OTALINK_TOKEN;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { token: fromEnv.trim(), source: 'OTALINK_TOKEN' };
  const file = values['token-file'];
  if (file !== undefined) return { token: await readToken(file), source: file };
  if (!isLoopback(api.hostname)) return undefined;
  const local = defaultTokenFile(env);
  try {
    return { token: (await readFile(local, 'utf8')).trim(), source: local };
  } catch {
    return undefined;
  }
}

/**
 * The dev CA of a stack on this machine (`otalink up`, `otalink pki`), trusted by default for a loopback backend so
 * that `npm start` then `npx otalink campaign watch` needs no flag; a remote backend gets the system's CAs.
 */
async function localDevCa(env: Record<string, string | undefined>): Promise<Buffer | undefined> {
  try {
    return await readFile(join(defaultPkiDir(env), 'ca.pem'));
  } catch {
    return undefined;
  }
}

/** The client from --api/--insecure/--cafile/--token/--token-file and OTALINK_API/OTALINK_TOKEN. */
export async function apiClientFrom(
  values: { api?: string; insecure?: boolean; cafile?: string; token?: string; 'token-file'?: string },
  env: Record<string, string | undefined>,
): Promise<ApiClient> {
  const baseUrl = values.api ?? env.OTALINK_API ?? DEFAULT_API;
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new UsageError(`--api is not a URL: "${baseUrl}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--api must be an http:// or https:// URL, got "${baseUrl}"`);
  }
  const options: ApiClientOptions = { baseUrl };
  if (values.cafile !== undefined) {
    try {
      options.ca = await readFile(values.cafile);
    } catch (error) {
      throw new UsageError(`--cafile ${values.cafile}: ${(error as Error).message}`);
    }
  } else if (values.insecure !== true && parsed.protocol === 'https:' && isLoopback(parsed.hostname)) {
    options.ca = await localDevCa(env);
  }
  if (values.insecure === true) options.insecure = true;
  const token = await tokenFor(values, env, parsed);
  if (token !== undefined) {
    options.token = token.token;
    options.tokenSource = token.source;
  }
  return new ApiClient(options);
}

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
}

export const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

/** Runs a command body: usage errors exit 2 with a hint, backend refusals exit 1 with their code. */
export async function runApiCommand(name: string, io: CliIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(
        `otalink ${name}: ${(error as Error).message}\nRun \`otalink ${name} --help\` for the options.\n`,
      );
      return 2;
    }
    if (error instanceof ApiError) {
      const field = error.field === undefined ? '' : ` (${error.field})`;
      io.stderr.write(`otalink ${name}: ${error.message}${field} [${error.code}]\n`);
      return 1;
    }
    io.stderr.write(`otalink ${name}: ${(error as Error).message}\n`);
    return 1;
  }
}
