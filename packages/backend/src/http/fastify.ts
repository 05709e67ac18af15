// One place that makes a Fastify instance, plain or over HTTPS, for the API's app and the download worker's.
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyHttpsOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify';

/** PEM certificate chain and key for HTTPS. */
export interface HttpsFiles {
  cert: string | Buffer;
  key: string | Buffer;
}

/** The HTTPS overload of Fastify() types the app by its server; the routes only need the common instance type. */
export function newFastify(options: FastifyServerOptions, https: HttpsFiles | undefined): FastifyInstance {
  return https === undefined
    ? Fastify(options)
    : (Fastify<HttpsServer>({
        ...(options as FastifyHttpsOptions<HttpsServer>),
        https: { cert: https.cert, key: https.key },
      }) as unknown as FastifyInstance);
}
