// Route-level schema pieces shared by the REST routes: path parameters and the error responses every route
// documents. The bodies and results themselves come from ../api.ts so the OpenAPI document cannot drift from it.
import { Type } from '@sinclair/typebox';
import { ErrorBodySchema, ID_PATTERN, SHA256_PATTERN, VIN_PATTERN } from '../api.js';

export const ErrorResponseSchema = Type.Object(
  { error: ErrorBodySchema },
  { description: 'every 4xx/5xx: a stable OTA_ERR_* code, a message and, for validation errors, the field' },
);

/** The error responses every REST route can give. */
export const errorResponses = {
  '4xx': ErrorResponseSchema,
  '5xx': ErrorResponseSchema,
} as const;

export const VinParams = Type.Object({ vin: Type.String({ pattern: VIN_PATTERN }) });
export const Sha256Params = Type.Object({ sha256: Type.String({ pattern: SHA256_PATTERN }) });
export const CampaignParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) });
export const CampaignVinParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERN }),
  vin: Type.String({ pattern: VIN_PATTERN }),
});
