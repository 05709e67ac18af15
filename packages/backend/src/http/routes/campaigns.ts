// /api/v1/campaigns: create, read, the four state commands, executions with their audit trail, and the live
// event stream the dashboard and `otalink campaign watch` draw progress bars from.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import {
  type BackendService,
  type CampaignCreate,
  CampaignCreateSchema,
  type CampaignEvent,
  CampaignPageSchema,
  CampaignSchema,
  type CampaignView,
  type ExecutionListQuery,
  ExecutionListQuerySchema,
  ExecutionPageSchema,
  ExecutionViewSchema,
  type ListQuery,
  ListQuerySchema,
  TransitionRecordSchema,
} from '../../api.js';
import { CampaignParams, CampaignVinParams, errorResponses } from '../schemas.js';
import type { EventStreams } from '../sse.js';

type Action = 'start' | 'pause' | 'resume' | 'cancel';

const ACTIONS: Record<Action, { summary: string; run(service: BackendService, id: string): Promise<CampaignView> }> = {
  start: { summary: 'Start releasing (resolves targets, signs the manifest)', run: (s, id) => s.startCampaign(id) },
  pause: { summary: 'Pause: no new releases, vehicles in flight are paused', run: (s, id) => s.pauseCampaign(id) },
  resume: { summary: 'Resume a paused campaign', run: (s, id) => s.resumeCampaign(id) },
  cancel: { summary: 'Cancel every unfinished execution', run: (s, id) => s.cancelCampaign(id) },
};

export const ExecutionHistorySchema = Type.Object({
  executions: Type.Array(ExecutionViewSchema),
  transitions: Type.Array(TransitionRecordSchema),
});

export function registerCampaignRoutes(app: FastifyInstance, service: BackendService, streams: EventStreams): void {
  app.post<{ Body: CampaignCreate }>(
    '/campaigns',
    {
      schema: {
        tags: ['campaigns'],
        summary: 'Create a campaign (in DRAFT)',
        body: CampaignCreateSchema,
        response: { 201: CampaignSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await service.createCampaign(request.body)),
  );

  app.get<{ Querystring: ListQuery }>(
    '/campaigns',
    {
      schema: {
        tags: ['campaigns'],
        summary: 'List campaigns',
        querystring: ListQuerySchema,
        response: { 200: CampaignPageSchema, ...errorResponses },
      },
    },
    async (request) => service.listCampaigns(request.query),
  );

  app.get<{ Params: { id: string } }>(
    '/campaigns/:id',
    {
      schema: {
        tags: ['campaigns'],
        summary: 'One campaign with its counts by status',
        params: CampaignParams,
        response: { 200: CampaignSchema, ...errorResponses },
      },
    },
    async (request) => service.getCampaign(request.params.id),
  );

  for (const [action, { summary, run }] of Object.entries(ACTIONS)) {
    app.post<{ Params: { id: string } }>(
      `/campaigns/:id/${action}`,
      {
        schema: {
          tags: ['campaigns'],
          summary,
          params: CampaignParams,
          response: { 200: CampaignSchema, ...errorResponses },
        },
      },
      async (request) => run(service, request.params.id),
    );
  }

  app.get<{ Params: { id: string }; Querystring: ExecutionListQuery }>(
    '/campaigns/:id/executions',
    {
      schema: {
        tags: ['campaigns'],
        summary: "The campaign's executions, one per vehicle (latest attempt), filtered by status",
        params: CampaignParams,
        querystring: ExecutionListQuerySchema,
        response: { 200: ExecutionPageSchema, ...errorResponses },
      },
    },
    async (request) => service.listExecutions(request.params.id, request.query),
  );

  app.get<{ Params: { id: string; vin: string } }>(
    '/campaigns/:id/executions/:vin/history',
    {
      schema: {
        tags: ['campaigns'],
        summary: "One vehicle's executions in the campaign and every transition (the audit trail)",
        params: CampaignVinParams,
        response: { 200: ExecutionHistorySchema, ...errorResponses },
      },
    },
    async (request) => service.executionHistory(request.params.id, request.params.vin),
  );

  app.get<{ Params: { id: string } }>(
    '/campaigns/:id/events',
    {
      // A HEAD would run this handler and open a stream that never ends.
      exposeHeadRoute: false,
      schema: {
        tags: ['campaigns'],
        summary:
          'Server-sent events: `snapshot` (the campaign) first, then `campaign.state`, `execution` and `counts` ' +
          'events as they happen; a comment line every 15 s keeps the stream alive',
        params: CampaignParams,
        produces: ['text/event-stream'],
        response: { 200: { description: 'text/event-stream', type: 'string' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      // Unknown campaigns get a JSON 404 before the stream is opened.
      await service.getCampaign(id);
      // Subscribe before the snapshot so nothing between the two is lost; what arrives meanwhile is held and sent
      // after it (a duplicate of what the snapshot already shows is harmless: counts are absolute).
      const held: CampaignEvent[] = [];
      let live = false;
      const stream = streams.open(request, reply);
      let unsubscribe: () => void;
      try {
        unsubscribe = await service.subscribeCampaign(id, (event) => {
          if (live) stream.send(event.type, event);
          else held.push(event);
        });
      } catch (error) {
        // The reply is hijacked: the error can no longer become a JSON response, so the stream just ends.
        request.log.warn({ err: error, campaignId: id }, 'campaign subscription failed; closing the event stream');
        stream.close();
        return;
      }
      if (stream.isClosed) {
        unsubscribe();
        return;
      }
      void stream.closed.then(unsubscribe);
      try {
        stream.send('snapshot', await service.getCampaign(id));
      } catch (error) {
        request.log.warn({ err: error, campaignId: id }, 'campaign snapshot failed; closing the event stream');
        stream.close();
        return;
      }
      for (const event of held) stream.send(event.type, event);
      held.length = 0;
      live = true;
    },
  );
}
