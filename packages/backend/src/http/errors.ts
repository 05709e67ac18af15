// One error shape for every 4xx/5xx the HTTP layer sends: `{ error: { code, message, field? } }` with a stable
// OTA_ERR_* code. Errors from the service (BackendError), from fastify itself (validation, content type, body size)
// and from this layer (signatures, ranges) all end up here, so a client parses one shape.
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export type HttpErrorCode =
  | 'OTA_ERR_VALIDATION'
  | 'OTA_ERR_BAD_REQUEST'
  | 'OTA_ERR_ROUTE_NOT_FOUND'
  | 'OTA_ERR_NOT_FOUND'
  | 'OTA_ERR_METHOD_NOT_ALLOWED'
  | 'OTA_ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'OTA_ERR_BODY_TOO_LARGE'
  | 'OTA_ERR_UNAUTHORIZED'
  | 'OTA_ERR_FORBIDDEN'
  | 'OTA_ERR_URL_SIGNATURE'
  | 'OTA_ERR_URL_EXPIRED'
  | 'OTA_ERR_RANGE_NOT_SATISFIABLE'
  | 'OTA_ERR_UNAVAILABLE'
  | 'OTA_ERR_INTERNAL';

export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable OTA_ERR_* code' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'the request field at fault, when there is one' })),
    }),
  },
  { $id: 'ErrorBody', description: 'every 4xx/5xx response' },
);

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error raised by the HTTP layer itself, with the status it maps to. */
export class HttpError extends Error {
  readonly code: HttpErrorCode;
  readonly status: number;
  readonly field: string | undefined;

  constructor(status: number, code: HttpErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface MappedError {
  status: number;
  body: ErrorBody;
  /** Whether this is our fault (logged at error level) rather than the client's. */
  internal: boolean;
}

function body(code: string, message: string, field?: string): ErrorBody {
  return field === undefined ? { error: { code, message } } : { error: { code, message, field } };
}

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** The field an ajv issue names, as a dotted path prefixed by where it was (`body.name`, `query.limit`). */
function fieldOf(issue: AjvIssue, context: string | undefined): string {
  const where = context === 'querystring' ? 'query' : (context ?? 'body');
  const path = (issue.instancePath ?? '').split('/').filter((p) => p.length > 0);
  const missing = issue.params?.missingProperty;
  if (typeof missing === 'string') path.push(missing);
  const extra = issue.params?.additionalProperty;
  if (typeof extra === 'string') path.push(extra);
  return [where, ...path].join('.');
}

/** Service errors are recognized by shape so this layer does not depend on the engine's class identity. */
function isServiceError(err: unknown): err is { code: string; status: number; message: string; field?: unknown } {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; status?: unknown };
  return (
    typeof e.code === 'string' &&
    e.code.startsWith('OTA_ERR_') &&
    typeof e.status === 'number' &&
    e.status >= 400 &&
    e.status < 600
  );
}

const FASTIFY_CODES: Record<string, { status: number; code: HttpErrorCode }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'OTA_ERR_UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'OTA_ERR_BAD_REQUEST' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'OTA_ERR_BODY_TOO_LARGE' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'OTA_ERR_VALIDATION' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'OTA_ERR_VALIDATION' },
  FST_ERR_BAD_URL: { status: 400, code: 'OTA_ERR_BAD_REQUEST' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'OTA_ERR_BAD_REQUEST' },
};

export function mapError(err: unknown): MappedError {
  if (err instanceof HttpError) {
    return { status: err.status, body: body(err.code, err.message, err.field), internal: err.status >= 500 };
  }
  if (isServiceError(err)) {
    const field = typeof err.field === 'string' ? err.field : undefined;
    // A 500 from the service (OTA_ERR_STORE) may name files or SQL: the code goes out, the message stays in the log.
    const message = err.status === 500 ? 'internal error' : err.message;
    return { status: err.status, body: body(err.code, message, field), internal: err.status >= 500 };
  }
  const fe = err as Partial<FastifyError> & { validation?: AjvIssue[]; validationContext?: string };
  if (Array.isArray(fe.validation) && fe.validation.length > 0) {
    const issue = fe.validation[0] as AjvIssue;
    const field = fieldOf(issue, fe.validationContext);
    return {
      status: 400,
      body: body('OTA_ERR_VALIDATION', `${field} ${issue.message ?? 'is invalid'}`, field),
      internal: false,
    };
  }
  if (typeof fe.code === 'string' && fe.code in FASTIFY_CODES) {
    const known = FASTIFY_CODES[fe.code] as { status: number; code: HttpErrorCode };
    const field = known.code === 'OTA_ERR_VALIDATION' ? 'body' : undefined;
    return { status: known.status, body: body(known.code, fe.message ?? known.code, field), internal: false };
  }
  // JSON syntax errors from the body parser carry statusCode 400 and no FST code.
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    return { status, body: body('OTA_ERR_BAD_REQUEST', fe.message ?? 'bad request'), internal: false };
  }
  // Never echo an internal message: it may hold paths or SQL.
  return { status: 500, body: body('OTA_ERR_INTERNAL', 'internal error'), internal: true };
}

/** Sends an error in the one shape; logs it at error level when it is ours, at debug when the client's. */
export function replyWithError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const mapped = mapError(error);
  if (mapped.internal) request.log.error({ err: error }, 'request failed');
  else request.log.debug({ err: error, code: mapped.body.error.code }, 'request refused');
  return reply.code(mapped.status).type('application/json; charset=utf-8').send(mapped.body);
}

/** The error handler and the 404 of an app, both in the one shape. */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => replyWithError(error, request, reply));
  app.setNotFoundHandler((request, reply) => {
    const body = {
      error: { code: 'OTA_ERR_ROUTE_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` },
    };
    return reply.code(404).send(body);
  });
}
