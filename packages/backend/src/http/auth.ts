// Who may call what. Every route under /api/v1 needs a role: GET (and event streams) need `viewer`, every other
// method `operator`, token management `admin` (a route's config.role overrides). Everything else stays open: the
// health check, the OpenAPI document, the dashboard's static files and the artifact downloads vehicles fetch with
// their signed URLs. The caller is a bearer token (`Authorization: Bearer otk_...`) or a dashboard session cookie.
// Checked in onRequest, before the body is read, so a refused upload is not streamed to disk first.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { API_ROLES, type ApiRole, type ApiTokenInfo, type BackendService } from '../api.js';
import { tokenUsable } from '../auth/tokens.js';
import { HttpError } from './errors.js';
import { cookieValue, SESSION_COOKIE, type Sessions } from './sessions.js';

/** `none`: open to anyone. */
export type RouteRole = ApiRole | 'none';

export interface Caller {
  token: ApiTokenInfo;
  via: 'bearer' | 'session';
  /** The session id when `via` is session (logout ends it). */
  sessionId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; undefined on open routes and when auth is off. */
    caller: Caller | undefined;
  }
  interface FastifyContextConfig {
    /** The least role the route needs (default: by method under /api/v1, none elsewhere). */
    role?: RouteRole;
  }
}

const RANK: Record<ApiRole, number> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(token: ApiTokenInfo, needed: ApiRole): boolean {
  return RANK[token.role] >= RANK[needed];
}

/** The role a route needs: its config's, else by method under the API prefix, else none. */
export function routeRole(method: string, url: string, config: { role?: RouteRole } | undefined): RouteRole {
  if (config?.role !== undefined) return config.role;
  if (url !== '/api/v1' && !url.startsWith('/api/v1/')) return 'none';
  return method === 'GET' || method === 'HEAD' ? 'viewer' : 'operator';
}

/** Documents the role in the route's OpenAPI entry (description and `security`), as the route is added. */
export function documentRole(route: RouteOptions): void {
  const method = [route.method].flat()[0] as string;
  const role = routeRole(method, route.url, route.config as { role?: RouteRole } | undefined);
  route.config = { ...(route.config as object | undefined), role } as RouteOptions['config'];
  const schema = route.schema as { hide?: boolean; description?: string; security?: unknown } | undefined;
  if (schema === undefined || schema.hide === true) return;
  if (role === 'none') {
    schema.security = [];
    return;
  }
  const roles = API_ROLES.slice(API_ROLES.indexOf(role)).join(', ');
  const note = `Needs role \`${role}\` (tokens with role ${roles}).`;
  schema.description = schema.description === undefined ? note : `${schema.description}\n\n${note}`;
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, 'OTA_ERR_UNAUTHORIZED', message);
}

/** A state-changing request must come from our own pages when a cookie (which browsers attach for us) is what
 * authenticates it. SameSite=Strict already keeps other sites' requests cookie-less; this is the second lock. */
function crossSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return true;
  const origin = request.headers.origin;
  if (typeof origin !== 'string') return false;
  try {
    // Both through URL so default ports compare equal (http://h and Host: h:80).
    return new URL(origin).host !== new URL(`${request.protocol}://${request.headers.host ?? ''}`).host;
  } catch {
    return true;
  }
}

async function identify(
  request: FastifyRequest,
  service: BackendService,
  sessions: Sessions,
  now: () => number,
): Promise<Caller | HttpError> {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header);
    if (m === null) return unauthorized('the Authorization header must be "Bearer <token>"');
    const token = await service.authenticateApiToken(m[1] as string);
    return token === undefined ? unauthorized('unknown, revoked or expired API token') : { token, via: 'bearer' };
  }
  const sessionId = cookieValue(request.headers.cookie, SESSION_COOKIE);
  if (sessionId !== undefined && sessionId !== '') {
    const tokenId = sessions.tokenOf(sessionId);
    const token = tokenId === undefined ? undefined : await service.getApiToken(tokenId);
    if (token === undefined || !tokenUsable(token, now())) {
      if (tokenId !== undefined) sessions.delete(sessionId);
      return unauthorized('the session has ended: log in again');
    }
    return { token, via: 'session', sessionId };
  }
  return unauthorized('an API token is required: Authorization: Bearer <token>');
}

export interface AuthHooksOptions {
  service: BackendService;
  sessions: Sessions;
  /** false lets every request through (tests that do not care; logged as a warning by the caller). */
  enabled: boolean;
  /** The clock a session's token expiry is judged by (default Date.now). */
  now?: () => number;
}

export function registerAuthHooks(app: FastifyInstance, options: AuthHooksOptions): void {
  const { service, sessions } = options;
  const now = options.now ?? Date.now;
  app.decorateRequest('caller', undefined);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const role = request.routeOptions.config?.role;
    // Unknown routes (no role) go on to their 404; open routes need nothing.
    if (role === undefined || role === 'none') {
      // The session routes still want to know who calls when someone does.
      if (request.routeOptions.url?.startsWith('/api/v1/session') === true) {
        const caller = await identify(request, service, sessions, now);
        if (!(caller instanceof HttpError)) request.caller = caller;
      }
      return;
    }
    if (!options.enabled) return;
    const caller = await identify(request, service, sessions, now);
    if (caller instanceof HttpError) {
      reply.header('www-authenticate', 'Bearer realm="otalink"');
      throw caller;
    }
    request.caller = caller;
    if (caller.via === 'session' && request.method !== 'GET' && request.method !== 'HEAD' && crossSite(request)) {
      throw new HttpError(403, 'OTA_ERR_FORBIDDEN', 'cross-site request refused');
    }
    if (!hasRole(caller.token, role)) {
      throw new HttpError(
        403,
        'OTA_ERR_FORBIDDEN',
        `token ${caller.token.id} (${caller.token.name}) has role ${caller.token.role}; ` +
          `${request.method} ${request.routeOptions.url} needs ${role}`,
      );
    }
  });
}
