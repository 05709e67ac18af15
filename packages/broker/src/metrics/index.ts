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
export { type MetricsServer, type MetricsServerOptions, startMetricsServer } from './server.js';
