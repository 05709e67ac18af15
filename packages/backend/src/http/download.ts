// The artifact download a vehicle follows from its manifest: GET/HEAD /artifacts/{sha256}?exp=&sig=.
// Content-addressed, so the sha256 is the strong ETag and never changes; resumable with Range (and If-Range, so a
// resumed download never splices two different files); streamed from disk, never buffered whole
// (small artifacts excepted: those the backend holds in memory are sent from there).
// The route is served by the API's app (app.ts) and, alone, by the download worker's app (buildDownloadApp below,
// run in a worker thread by src/downloads/) so that a fleet's download herd does not hold the API's event loop.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { HttpError, registerErrorReplies, replyWithError } from './errors.js';
import { type HttpsFiles, newFastify } from './fastify.js';
import { decideRange, ifNoneMatchHits, ifRangeAllows } from './range.js';
import { ErrorResponseSchema } from './schemas.js';

export type UrlCheck = 'ok' | 'expired' | 'invalid';

/** What the download route needs from the backend; app.ts adapts the service to it. */
export interface DownloadSource {
  /** Checks the expiring signature of a download URL. */
  check(sha256: string, exp: string | undefined, sig: string | undefined): UrlCheck;
  /**
   * The artifact's size and a byte range of it (inclusive end): a stream from disk, or the bytes themselves for a
   * small artifact held in memory. Undefined when unknown.
   */
  open(sha256: string): Promise<{ size: number; read(start: number, end: number): Readable | Buffer } | undefined>;
}

type ArtifactBody = NonNullable<Awaited<ReturnType<DownloadSource['open']>>>;

/** A stored artifact as the route reads it: slices of the bytes held in memory, or ranges streamed from the file. */
export function artifactBody(path: string, size: number, bytes: Uint8Array | undefined): ArtifactBody {
  return {
    size,
    read: (start, end) =>
      bytes === undefined
        ? createReadStream(path, { start, end })
        : Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start + 1),
  };
}

export interface DownloadAppOptions {
  source: DownloadSource;
  /** TLS for the listening server; without it, plain HTTP. */
  https?: HttpsFiles;
  /** A pino logger; request logging stays off (a campaign is ten thousand downloads). Default: no logs. */
  logger?: FastifyBaseLogger;
}

/** An app serving only the download route (and the one JSON error shape): what the download worker listens with. */
export function buildDownloadApp(options: DownloadAppOptions): FastifyInstance {
  const base: FastifyServerOptions = {
    forceCloseConnections: true,
    // A campaign's ten thousand vehicles each leave a TLS connection (and its buffers) behind: idle ones go after
    // Node's default 5 s rather than fastify's 72 s, and a request head must arrive within 30 s.
    keepAliveTimeout: 5_000,
    requestTimeout: 30_000,
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: (error, request, reply) => replyWithError(error, request, reply as FastifyReply),
  };
  if (options.logger !== undefined) base.loggerInstance = options.logger;
  const app = newFastify(base, options.https);
  registerErrorReplies(app);
  registerDownloadRoute(app, options.source);
  return app;
}

const SHA256 = /^[0-9a-f]{64}$/;

interface DownloadRequest {
  Params: { sha256: string };
  Querystring: { exp?: string; sig?: string };
}

export function registerDownloadRoute(app: FastifyInstance, source: DownloadSource): void {
  app.route<DownloadRequest>({
    method: ['GET', 'HEAD'],
    url: '/artifacts/:sha256',
    schema: {
      tags: ['artifacts'],
      summary:
        'Download an artifact (the URL in a signed manifest): expiring HMAC signature, strong ETag, ' +
        'If-None-Match, single byte ranges with If-Range; a multi-range request gets the whole file',
      // Not constrained here: a malformed hash or a missing signature is a 403 like any bad URL, not a 400.
      params: Type.Object({ sha256: Type.String() }),
      querystring: Type.Object({
        exp: Type.Optional(Type.String({ description: 'expiry, epoch seconds' })),
        sig: Type.Optional(Type.String({ description: 'HMAC-SHA256 of sha256 and exp, base64url' })),
      }),
      response: {
        200: { description: 'the whole artifact', type: 'string', format: 'binary' },
        206: { description: 'the requested range', type: 'string', format: 'binary' },
        304: { description: 'not modified (If-None-Match matched the ETag)', type: 'null' },
        '4xx': ErrorResponseSchema,
        '5xx': ErrorResponseSchema,
      },
    },
    handler: (request, reply) => serve(source, request, reply),
  });
}

async function serve(
  source: DownloadSource,
  request: FastifyRequest<DownloadRequest>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { sha256 } = request.params;
  const { exp, sig } = request.query;
  // The signature is checked before anything else so an unsigned request learns nothing about which hashes exist.
  const check = SHA256.test(sha256) ? source.check(sha256, exp, sig) : 'invalid';
  if (check === 'expired') throw new HttpError(403, 'OTA_ERR_URL_EXPIRED', 'download URL has expired', 'exp');
  if (check !== 'ok') throw new HttpError(403, 'OTA_ERR_URL_SIGNATURE', 'download URL signature is invalid', 'sig');
  const artifact = await source.open(sha256);
  if (artifact === undefined) throw new HttpError(404, 'OTA_ERR_NOT_FOUND', `no artifact ${sha256}`, 'sha256');

  const etag = `"${sha256}"`;
  const size = artifact.size;
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', etag)
    // Content-addressed: the bytes behind this URL never change, but the URL itself expires.
    .header('cache-control', 'private, max-age=3600, immutable');
  if (ifNoneMatchHits(request.headers['if-none-match'], etag)) {
    return reply.code(304).send();
  }
  const rangeHeader = request.headers.range;
  const decision = ifRangeAllows(header(request.headers['if-range']), etag)
    ? decideRange(rangeHeader, size)
    : ({ kind: 'whole' } as const);
  if (decision.kind === 'unsatisfiable') {
    reply.header('content-range', `bytes */${size}`);
    throw new HttpError(416, 'OTA_ERR_RANGE_NOT_SATISFIABLE', `range "${rangeHeader}" is outside 0..${size}`, 'range');
  }
  const start = decision.kind === 'partial' ? decision.start : 0;
  const end = decision.kind === 'partial' ? decision.end : size - 1;
  reply.header('content-type', 'application/octet-stream').header('content-length', String(end - start + 1));
  if (decision.kind === 'partial') reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  if (request.method === 'HEAD' || size === 0) return reply.send();
  return reply.send(artifact.read(start, end));
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
