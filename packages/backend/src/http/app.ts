// Builds the backend's HTTP app from a BackendService: REST under /api/v1, the signed artifact download, the
// OpenAPI document generated from the route schemas, the dashboard at /, and one JSON error shape for everything.
// No sockets here: tests drive it with app.inject(); server.ts listens.
import swagger from '@fastify/swagger';
import { dashboardDir } from '@otalink/dashboard';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify';
import { type BackendService, isBackendError } from '../api.js';
import { documentRole, registerAuthHooks } from './auth.js';
import { artifactBody, registerDownloadRoute, type UrlCheck } from './download.js';
import { registerErrorReplies, replyWithError } from './errors.js';
import { type HttpsFiles, newFastify } from './fastify.js';
import { registerArtifactRoutes } from './routes/artifacts.js';
import { registerSessionRoutes, registerTokenRoutes } from './routes/auth.js';
import { registerCampaignRoutes } from './routes/campaigns.js';
import { registerStatsRoute, registerSystemRoutes } from './routes/system.js';
import { registerVehicleRoutes } from './routes/vehicles.js';
import { DEFAULT_SESSION_TTL_MS, SESSION_COOKIE, Sessions } from './sessions.js';
import { EventStreams } from './sse.js';
import { registerStaticFiles } from './static-files.js';

export const DEFAULT_UPLOAD_LIMIT_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_SSE_HEARTBEAT_MS = 15_000;
/** JSON bodies (registrations, campaigns with a VIN list) are far smaller than artifacts. */
export const DEFAULT_JSON_LIMIT_BYTES = 64 * 1024 * 1024;

export interface BuildAppOptions {
  service: BackendService;
  /** A pino logger to log through; without it, `logLevel` picks the level (default: no logs). */
  logger?: FastifyBaseLogger;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest artifact upload in bytes (default 1 GiB). */
  uploadLimitBytes?: number;
  /** Largest JSON body in bytes (default 64 MiB: a campaign may list a million VINs). */
  jsonLimitBytes?: number;
  /** Interval of the SSE keep-alive comment (default 15 s). */
  sseHeartbeatMs?: number;
  /** Unsent bytes after which a stream that does not read is dropped (default 1 MiB). */
  sseMaxBufferedBytes?: number;
  /** Directory of the dashboard's static files; false serves none (default: @otalink/dashboard). */
  dashboardDir?: string | false;
  /** TLS for the listening server (server.ts passes it through; inject() ignores it). */
  https?: HttpsFiles;
  /** Clock for telling expired download URLs from forged ones (and for session expiry). */
  now?: () => number;
  /**
   * API authentication (default true: every /api/v1 route needs a token or a session). `false` opens the whole
   * API to anyone who reaches it; it must be asked for explicitly and is logged as a warning. For tests, prefer
   * creating a token through the service.
   */
  auth?: boolean;
  /** Lifetime of a dashboard session (default 12 h); the token behind it is re-checked on every request. */
  sessionTtlMs?: number;
}

export interface BackendApp {
  app: FastifyInstance;
  /** Open SSE streams (closed when the app closes). */
  streams: EventStreams;
  /** Every documented route as `METHOD /path` (fastify's implicit HEAD routes left out), filled as routes register. */
  routes: string[];
}

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  return (await buildBackendApp(options)).app;
}

export async function buildBackendApp(options: BuildAppOptions): Promise<BackendApp> {
  const { service } = options;
  const now = options.now ?? Date.now;
  const base: FastifyServerOptions = {
    bodyLimit: options.jsonLimitBytes ?? DEFAULT_JSON_LIMIT_BYTES,
    // Close keep-alive sockets on close so a test or a SIGTERM does not wait for idle clients.
    forceCloseConnections: true,
    // Fastify's own 404 for /api/v1/ would otherwise answer /api/v1/ and /api/v1 differently.
    routerOptions: { ignoreTrailingSlash: true },
    ajv: { customOptions: { allErrors: false } },
    // Errors fastify raises before routing (a malformed URL, say) skip the error handler unless routed here.
    frameworkErrors: (error, request, reply) => replyWithError(error, request, reply as FastifyReply),
  };
  if (options.logger !== undefined) base.loggerInstance = options.logger;
  else
    base.logger = options.logLevel === undefined || options.logLevel === 'silent' ? false : { level: options.logLevel };
  const app = newFastify(base, options.https);

  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    documentRole(route);
    if ((route.schema as { hide?: boolean } | undefined)?.hide === true) return;
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD' || route.url.startsWith('/artifacts/')) routes.push(`${method} ${route.url}`);
    }
  });

  const authEnabled = options.auth !== false;
  if (!authEnabled) {
    const warning = 'API authentication is OFF (auth: false): anyone who reaches the API can change the fleet';
    if (base.logger === false) process.emitWarning(warning);
    else app.log.warn(warning);
  }
  const sessions = new Sessions(options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS, now);
  registerAuthHooks(app, { service, sessions, enabled: authEnabled, now });

  const streams = new EventStreams(options.sseHeartbeatMs ?? DEFAULT_SSE_HEARTBEAT_MS, options.sseMaxBufferedBytes);
  // preClose runs before the server stops accepting: ending the streams lets server.close() finish.
  app.addHook('preClose', async () => streams.closeAll());

  registerErrorReplies(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'otalink OEM backend',
        version: '1',
        description:
          'Vehicles, signed artifacts, campaigns with staged rollouts and their live progress. Every 4xx/5xx is ' +
          '`{ "error": { "code", "message", "field"? } }` with a stable OTA_ERR_* code. Every /api/v1 route but ' +
          '/api/v1/session needs an API token (`Authorization: Bearer otk_...`) or the dashboard session cookie: ' +
          '401 OTA_ERR_UNAUTHORIZED without a valid one, 403 OTA_ERR_FORBIDDEN when its role is not enough.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API token, `otk_<id>.<secret>`; roles viewer < operator < admin',
          },
          sessionCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: SESSION_COOKIE,
            description: 'The dashboard session from POST /api/v1/session',
          },
        },
      },
      security: [{ bearerAuth: [] }, { sessionCookie: [] }],
      tags: [
        { name: 'vehicles', description: 'registration and fleet state' },
        { name: 'artifacts', description: 'update images' },
        { name: 'campaigns', description: 'rollouts and their executions' },
        { name: 'system', description: 'health and counters' },
        { name: 'auth', description: 'API tokens and dashboard sessions' },
      ],
    },
  });

  registerSystemRoutes(app);
  await app.register(
    async (api) => {
      registerVehicleRoutes(api, service);
      registerArtifactRoutes(api, service, options.uploadLimitBytes ?? DEFAULT_UPLOAD_LIMIT_BYTES);
      registerCampaignRoutes(api, service, streams);
      registerStatsRoute(api, service);
      registerTokenRoutes(api, service);
      registerSessionRoutes(api, service, sessions);
    },
    { prefix: '/api/v1' },
  );

  registerDownloadRoute(app, {
    check(sha256, exp, sig): UrlCheck {
      if (service.verifyArtifactUrl(sha256, exp, sig)) return 'ok';
      // The service answers yes/no; an exp in the past is reported as expiry so a vehicle knows to ask for a
      // fresh manifest rather than suspect tampering. Either way the bytes are refused.
      return exp !== undefined && /^[0-9]{1,15}$/.test(exp) && Number(exp) * 1000 <= now() ? 'expired' : 'invalid';
    },
    async open(sha256) {
      try {
        const file = await service.openArtifact(sha256);
        return artifactBody(file.path, file.size, file.bytes);
      } catch (error) {
        if (isBackendError(error) && error.code === 'OTA_ERR_NOT_FOUND') return undefined;
        throw error;
      }
    },
  });

  const staticDir = options.dashboardDir ?? dashboardDir;
  if (staticDir !== false) registerStaticFiles(app, staticDir);

  return { app, streams, routes };
}
