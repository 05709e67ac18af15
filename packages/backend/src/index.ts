// @otalink/backend: the OEM backend's engine (store, artifacts, campaigns, MQTT bridge) and its service contract.
export * from './api.js';
export {
  loadOrCreateUrlSecret,
  type SignedUrlVerdict,
  signArtifactPath,
  signArtifactUrl,
  verifyArtifactSignature,
} from './artifacts/signed-url.js';
export { type Backend, type BackendOptions, createBackend, type DownloadListenerSettings } from './backend.js';
export { type Clock, systemClock } from './clock.js';
export type { DownloadListener } from './downloads/listener.js';
export type { CommandSink, EngineStats, Orchestrator } from './engine/orchestrator.js';
export {
  type BackendApp,
  type BuildAppOptions,
  buildApp,
  buildBackendApp,
  decideRange,
  HttpError,
  mapError,
  type RangeDecision,
  type RunningHttpServer,
  type StartHttpServerOptions,
  startHttpServer,
} from './http/index.js';
export type { Logger } from './logger.js';
export { openPostgresStore, POSTGRES_SCHEMA_VERSION, type PostgresStoreOptions } from './store/postgres.js';
export { SqlStore } from './store/sql-store.js';
export { openSqliteStore, SCHEMA_VERSION, type SqliteStoreOptions } from './store/sqlite.js';
export type * from './store/types.js';
