// /api/v1/vehicles: registration and the fleet's view (online, installed versions).
import type { FastifyInstance } from 'fastify';
import {
  type BackendService,
  type VehicleListQuery,
  VehicleListQuerySchema,
  VehiclePageSchema,
  type VehicleRegistration,
  VehicleRegistrationSchema,
  VehicleSchema,
} from '../../api.js';
import { errorResponses, VinParams } from '../schemas.js';

export function registerVehicleRoutes(app: FastifyInstance, service: BackendService): void {
  app.post<{ Body: VehicleRegistration }>(
    '/vehicles',
    {
      schema: {
        tags: ['vehicles'],
        summary: 'Register a vehicle (or update the registration of the same VIN)',
        body: VehicleRegistrationSchema,
        response: { 201: VehicleSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await service.registerVehicle(request.body)),
  );

  app.get<{ Querystring: VehicleListQuery }>(
    '/vehicles',
    {
      schema: {
        tags: ['vehicles'],
        summary: 'List vehicles, with online state and installed versions',
        querystring: VehicleListQuerySchema,
        response: { 200: VehiclePageSchema, ...errorResponses },
      },
    },
    async (request) => service.listVehicles(request.query),
  );

  app.get<{ Params: { vin: string } }>(
    '/vehicles/:vin',
    {
      schema: {
        tags: ['vehicles'],
        summary: 'One vehicle',
        params: VinParams,
        response: { 200: VehicleSchema, ...errorResponses },
      },
    },
    async (request) => service.getVehicle(request.params.vin),
  );
}
