// The /metrics HTTP endpoint Prometheus scrapes. Its own listener, apart from MQTT, so it can be bound to a
// management network and so a scrape never competes with a client's socket.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrokerError } from '../errors.js';
import { listenProblem } from '../listeners/common.js';
import type { BrokerStats } from '../stats.js';
import { type Metric, PROMETHEUS_CONTENT_TYPE, processMetrics, renderPrometheus } from './prometheus.js';

export interface MetricsServer {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  host: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** Default 0.0.0.0 (all IPv4), like the MQTT listeners. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Metrics beyond the broker's own; default: process memory and CPU. */
  extra?: () => Metric[];
}

function notFound(response: ServerResponse): void {
  const body = JSON.stringify({ error: 'not found', code: 'BROKER_ERR_METRICS_NOT_FOUND', path: '/metrics' });
  response.writeHead(404, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

export async function startMetricsServer(
  options: MetricsServerOptions,
  getStats: () => BrokerStats,
): Promise<MetricsServer> {
  const host = options.host ?? '0.0.0.0';
  const extra = options.extra ?? processMetrics;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      notFound(response);
      return;
    }
    let body: string;
    try {
      body = renderPrometheus(getStats(), extra());
    } catch (error) {
      const text = JSON.stringify({ error: (error as Error).message, code: 'BROKER_ERR_METRICS' });
      response.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
      response.end(text);
      return;
    }
    response.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  // A scrape that stalls must not hold a socket forever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new BrokerError('BROKER_ERR_LISTEN', `metrics listener ${host}:${options.port}: ${listenProblem(error)}`, {
          cause: error,
        }),
      );
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    host,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; without this, close waits for them to time out.
        server.closeAllConnections();
      });
    },
  };
}
