// /api/v1/artifacts: uploads (the raw bytes streamed to the service, metadata in the query) and metadata reads.
// The download itself (signed, ranged) is ../download.ts, outside /api/v1 because vehicles reach it from manifests.
import type { IncomingMessage } from 'node:http';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import {
  ArtifactInfoSchema,
  ArtifactPageSchema,
  type BackendService,
  ID_PATTERN,
  type ListQuery,
  ListQuerySchema,
  SHA256_PATTERN,
  SigningKeySchema,
} from '../../api.js';
import { HttpError } from '../errors.js';
import { errorResponses, Sha256Params } from '../schemas.js';

const ID = new RegExp(ID_PATTERN);

export const UploadQuerySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  version: Type.String({ minLength: 1, maxLength: 256 }),
  hardwareIds: Type.String({ minLength: 1, description: 'comma-separated hardware ids the artifact fits' }),
  contentType: Type.Optional(Type.String({ maxLength: 256 })),
  sha256: Type.Optional(Type.String({ pattern: SHA256_PATTERN, description: 'refuse the upload unless it matches' })),
});

interface UploadQuery {
  name: string;
  version: string;
  hardwareIds: string;
  contentType?: string;
  sha256?: string;
}

/** Yields the request body's chunks, failing with 413 as soon as the limit is passed (not after buffering). */
async function* limited(body: IncomingMessage, limitBytes: number): AsyncGenerator<Uint8Array> {
  let received = 0;
  for await (const chunk of body) {
    received += (chunk as Buffer).length;
    if (received > limitBytes) {
      throw new HttpError(413, 'OTA_ERR_BODY_TOO_LARGE', `artifact larger than the ${limitBytes}-byte limit`);
    }
    yield chunk as Buffer;
  }
}

export function registerArtifactRoutes(app: FastifyInstance, service: BackendService, uploadLimitBytes: number): void {
  // In its own context so octet-stream is the only body this route accepts (415 for anything else), handed over as
  // the unread request stream.
  app.register(async (upload) => {
    upload.removeAllContentTypeParsers();
    upload.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
    upload.post<{ Querystring: UploadQuery }>(
      '/artifacts',
      {
        schema: {
          tags: ['artifacts'],
          summary: 'Upload an artifact: the raw bytes as application/octet-stream, the metadata in the query',
          querystring: UploadQuerySchema,
          // An empty schema accepts the stream; the document still says what the body is.
          body: {
            content: {
              'application/octet-stream': { schema: { description: 'the artifact bytes' } },
            },
          },
          response: { 201: ArtifactInfoSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        const declared = Number(request.headers['content-length']);
        if (Number.isFinite(declared) && declared > uploadLimitBytes) {
          throw new HttpError(413, 'OTA_ERR_BODY_TOO_LARGE', `artifact larger than the ${uploadLimitBytes}-byte limit`);
        }
        const { name, version, contentType, sha256 } = request.query;
        const hardwareIds = request.query.hardwareIds.split(',').map((h) => h.trim());
        const bad = hardwareIds.find((h) => !ID.test(h));
        if (bad !== undefined) {
          throw new HttpError(400, 'OTA_ERR_VALIDATION', `hardware id "${bad}" is not valid`, 'query.hardwareIds');
        }
        const metadata = {
          name,
          version,
          hardwareIds,
          ...(contentType ? { contentType } : {}),
          ...(sha256 ? { sha256 } : {}),
        };
        const info = await service.putArtifact(limited(request.raw, uploadLimitBytes), metadata);
        return reply.code(201).send(info);
      },
    );
  });

  app.get<{ Querystring: ListQuery }>(
    '/artifacts',
    {
      schema: {
        tags: ['artifacts'],
        summary: 'List artifacts',
        querystring: ListQuerySchema,
        response: { 200: ArtifactPageSchema, ...errorResponses },
      },
    },
    async (request) => service.listArtifacts(request.query),
  );

  app.get<{ Params: { sha256: string } }>(
    '/artifacts/:sha256',
    {
      schema: {
        tags: ['artifacts'],
        summary: "One artifact's metadata",
        params: Sha256Params,
        response: { 200: ArtifactInfoSchema, ...errorResponses },
      },
    },
    async (request) => service.getArtifact(request.params.sha256),
  );

  // Public keys only: what a vehicle image needs to trust the manifests (--trusted-key of otalink agent and sim).
  // Open like a JWKS document: public keys are meant to be handed out, and vehicle provisioning needs no token.
  app.get(
    '/signing-keys',
    {
      config: { role: 'none' },
      schema: {
        tags: ['artifacts'],
        summary: 'The manifest signing keys (public): the active one and those still trusted during a rotation',
        response: { 200: Type.Object({ items: Type.Array(SigningKeySchema) }), ...errorResponses },
      },
    },
    async () => ({ items: await service.listSigningKeys() }),
  );
}
