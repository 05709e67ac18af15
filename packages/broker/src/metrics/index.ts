// Prometheus metrics: the text exposition of BrokerStats and the HTTP endpoint that serves it.
export {
  brokerMetrics,
  formatMetrics,
  type Metric,
  type MetricSample,
  type MetricType,
  PROMETHEUS_CONTENT_TYPE,
  processMetrics,
  renderPrometheus,
  storeMetrics,
} from './prometheus.js';

import type { startMetricsServer as startServer } from './server.js';

export type { MetricsServer, MetricsServerOptions } from './server.js';

/** Starts the endpoint; its module (and node:http) is loaded here, so a broker without metrics never loads it. */
export async function startMetricsServer(...args: Parameters<typeof startServer>): ReturnType<typeof startServer> {
  return (await import('./server.js')).startMetricsServer(...args);
}
