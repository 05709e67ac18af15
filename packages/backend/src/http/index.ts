// The backend's HTTP layer: build the app (no sockets, for inject) or start listening.
export {
  type BackendApp,
  type BuildAppOptions,
  buildApp,
  buildBackendApp,
  DEFAULT_SSE_HEARTBEAT_MS,
  DEFAULT_UPLOAD_LIMIT_BYTES,
} from './app.js';
export { type ErrorBody, HttpError, type HttpErrorCode, mapError } from './errors.js';
export { decideRange, type RangeDecision } from './range.js';
export { type RunningHttpServer, type StartHttpServerOptions, startHttpServer } from './server.js';
