// Liveness, the engine's counters and the OpenAPI document.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { type BackendService, BackendStatsSchema } from '../../api.js';
import { errorResponses } from '../schemas.js';

export function registerStatsRoute(api: FastifyInstance, service: BackendService): void {
  api.get(
    '/stats',
    {
      schema: {
        tags: ['system'],
        summary: "The engine's counters (MQTT link, status ingest, timers)",
        response: { 200: BackendStatsSchema, ...errorResponses },
      },
    },
    async () => service.stats(),
  );
}

export function registerSystemRoutes(app: FastifyInstance): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['system'],
        summary: 'Liveness: 200 while the HTTP layer answers',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
