// /api/v1/tokens (admin: create, list, revoke API tokens) and /api/v1/session (the dashboard's login: a token
// exchanged for an HttpOnly session cookie, who am I, logout).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type ApiTokenCreate,
  ApiTokenCreatedSchema,
  ApiTokenCreateSchema,
  ApiTokenInfoSchema,
  type BackendService,
  TOKEN_ID_PATTERN,
} from '../../api.js';
import { HttpError } from '../errors.js';
import { errorResponses } from '../schemas.js';
import { type Sessions, sessionCookie } from '../sessions.js';

const TokenParams = Type.Object({ id: Type.String({ pattern: TOKEN_ID_PATTERN }) });
const SessionSchema = Type.Object({
  token: ApiTokenInfoSchema,
  via: Type.Union([Type.Literal('bearer'), Type.Literal('session')]),
});
const LoginSchema = Type.Object({ token: Type.String({ minLength: 1, maxLength: 256 }) });

/** Secure cookies over HTTPS; the plain-HTTP listener (loopback, or behind a TLS proxy) gets them without. */
const secure = (request: FastifyRequest) => request.protocol === 'https';

export function registerTokenRoutes(api: FastifyInstance, service: BackendService): void {
  api.post<{ Body: ApiTokenCreate }>(
    '/tokens',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['auth'],
        summary: 'Create an API token; the secret is in this answer only',
        body: ApiTokenCreateSchema,
        response: { 201: ApiTokenCreatedSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await service.createApiToken(request.body);
      request.log.info(
        { tokenId: created.info.id, role: created.info.role, by: request.caller?.token.id },
        'API token created',
      );
      return reply.code(201).header('cache-control', 'no-store').send(created);
    },
  );

  api.get(
    '/tokens',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['auth'],
        summary: 'Every API token (ids, names, roles, revocations; never the secrets)',
        response: { 200: Type.Object({ items: Type.Array(ApiTokenInfoSchema) }), ...errorResponses },
      },
    },
    async () => ({ items: await service.listApiTokens() }),
  );

  api.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['auth'],
        summary: 'Revoke an API token: refused from now on, its dashboard sessions end; it stays listed',
        params: TokenParams,
        response: { 200: ApiTokenInfoSchema, ...errorResponses },
      },
    },
    async (request) => {
      const revoked = await service.revokeApiToken(request.params.id);
      request.log.info({ tokenId: revoked.id, by: request.caller?.token.id }, 'API token revoked');
      return revoked;
    },
  );
}

export function registerSessionRoutes(api: FastifyInstance, service: BackendService, sessions: Sessions): void {
  api.post<{ Body: { token: string } }>(
    '/session',
    {
      config: { role: 'none' },
      schema: {
        tags: ['auth'],
        summary:
          'Log in (the dashboard): exchange an API token for an HttpOnly, SameSite=Strict session cookie that the ' +
          'API and its event streams accept like the token',
        body: LoginSchema,
        response: { 200: SessionSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const token = await service.authenticateApiToken(request.body.token);
      if (token === undefined) throw new HttpError(401, 'OTA_ERR_UNAUTHORIZED', 'unknown or revoked API token');
      const id = sessions.create(token.id);
      request.log.info({ tokenId: token.id }, 'dashboard session opened');
      return reply
        .header('set-cookie', sessionCookie(id, sessions.ttlMs, secure(request)))
        .header('cache-control', 'no-store')
        .send({ token, via: 'session' as const });
    },
  );

  api.get(
    '/session',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['auth'],
        summary: 'Who is calling: the token (and whether by bearer or session); 401 when nobody',
        response: { 200: SessionSchema, ...errorResponses },
      },
    },
    async (request) => {
      const caller = request.caller;
      if (caller === undefined) throw new HttpError(401, 'OTA_ERR_UNAUTHORIZED', 'not logged in');
      return { token: caller.token, via: caller.via };
    },
  );

  api.delete(
    '/session',
    {
      config: { role: 'none' },
      schema: {
        tags: ['auth'],
        summary: 'Log out: ends the session and clears its cookie (204 whether or not there was one)',
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const sessionId = request.caller?.sessionId;
      if (sessionId !== undefined) sessions.delete(sessionId);
      return reply
        .code(204)
        .header('set-cookie', sessionCookie('', 0, secure(request)))
        .send();
    },
  );
}
