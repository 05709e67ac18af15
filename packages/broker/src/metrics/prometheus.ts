// BrokerStats in the Prometheus text exposition format 0.0.4: counters end in _total, per-QoS message counts carry
// a `qos` label and drops a `reason` label, so one PromQL sum() gives the whole and a label filter one part.
import type { BrokerStats } from '../stats.js';

export type MetricType = 'counter' | 'gauge';

export interface MetricSample {
  labels?: Record<string, string>;
  value: number;
}

export interface Metric {
  /** Full metric name; counters end in _total. */
  name: string;
  help: string;
  type: MetricType;
  samples: MetricSample[];
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const PREFIX = 'otalink_broker_';

function one(value: number): MetricSample[] {
  return [{ value }];
}

function byQos(values: readonly [number, number, number]): MetricSample[] {
  return values.map((value, qos) => ({ labels: { qos: String(qos) }, value }));
}

/** The broker's own metrics, read from its counters. */
export function brokerMetrics(stats: BrokerStats, now = Date.now()): Metric[] {
  const counter = (name: string, help: string, samples: MetricSample[]): Metric => ({
    name: `${PREFIX}${name}_total`,
    help,
    type: 'counter',
    samples,
  });
  const gauge = (name: string, help: string, samples: MetricSample[]): Metric => ({
    name: `${PREFIX}${name}`,
    help,
    type: 'gauge',
    samples,
  });
  return [
    gauge('connections', 'Client connections open now.', one(stats.connectionsCurrent)),
    counter('connections', 'Client connections accepted since start.', one(stats.connectionsTotal)),
    counter(
      'connections_rejected',
      'Connections refused (limits, authentication, bad CONNECT).',
      one(stats.connectionsRejected),
    ),
    gauge('sessions', 'Sessions held now, connected or not.', one(stats.sessionsCurrent)),
    gauge('sessions_offline', 'Persistent sessions whose client is not connected.', one(stats.sessionsOffline)),
    gauge('subscriptions', 'Subscriptions held now.', one(stats.subscriptionsCurrent)),
    gauge('retained_messages', 'Retained messages stored now.', one(stats.retainedCurrent)),
    gauge('queued_messages', 'Messages queued for sessions now.', one(stats.queuedCurrent)),
    counter('messages_received', 'PUBLISH packets received from clients, by QoS.', byQos(stats.messagesIn)),
    counter('messages_sent', 'PUBLISH packets sent to clients, by QoS.', byQos(stats.messagesOut)),
    counter('bytes_received', 'Bytes received from clients, all packet types.', one(stats.bytesIn)),
    counter('bytes_sent', 'Bytes sent to clients, all packet types.', one(stats.bytesOut)),
    counter('messages_dropped', 'Messages not delivered, by reason.', [
      { labels: { reason: 'queue_full' }, value: stats.droppedQueueFull },
      { labels: { reason: 'expired' }, value: stats.droppedExpired },
      { labels: { reason: 'slow_subscriber' }, value: stats.droppedSlowSubscriber },
      { labels: { reason: 'too_large' }, value: stats.droppedTooLarge },
      { labels: { reason: 'not_authorized' }, value: stats.droppedNotAuthorized },
      { labels: { reason: 'session_ended' }, value: stats.droppedSessionEnded },
    ]),
    counter(
      'subscriptions_refused',
      'Subscriptions refused, by reason (limit: the session held max_subscriptions already).',
      [{ labels: { reason: 'limit' }, value: stats.subscriptionsRefusedLimit }],
    ),
    counter(
      'protocol_errors',
      'Connections closed for malformed packets or protocol errors.',
      one(stats.protocolErrors),
    ),
    counter(
      'rate_limited',
      'Connections closed for publishing faster than max_publish_rate (5.0: DISCONNECT 0x96).',
      one(stats.rateLimited),
    ),
    counter(
      'send_timeouts',
      'Connections closed because their output made no progress for send_timeout.',
      one(stats.sendTimeouts),
    ),
    gauge(
      'start_time_seconds',
      'When the broker started, in seconds since the Unix epoch.',
      one(stats.startedAt / 1000),
    ),
    gauge('uptime_seconds', 'Seconds since the broker started.', one(Math.max(0, (now - stats.startedAt) / 1000))),
  ];
}

/** The durable store's size and health (kept apart from brokerMetrics: only brokers with a store have them). */
export function storeMetrics(stats: BrokerStats): Metric[] {
  return [
    {
      name: `${PREFIX}store_bytes`,
      help: 'Bytes the durable store takes on disk.',
      type: 'gauge',
      samples: one(stats.storeBytes),
    },
    {
      name: `${PREFIX}store_messages`,
      help: 'Messages held by the store (queued, in flight or retained), each counted once.',
      type: 'gauge',
      samples: one(stats.storeMessages),
    },
    {
      name: `${PREFIX}store_refused_total`,
      help: 'PUBLISH packets not acknowledged because the store could not keep them (disk full, write error).',
      type: 'counter',
      samples: one(stats.storeRefused),
    },
    {
      name: `${PREFIX}store_corrupt_bytes_total`,
      help: 'Bytes of damaged log skipped when the store was loaded; the records in them were lost.',
      type: 'counter',
      samples: one(stats.storeCorruptBytes),
    },
    {
      name: `${PREFIX}store_writable`,
      help: '1 while the store accepts new messages; 0 while it refuses them (disk full or write error).',
      type: 'gauge',
      samples: one(stats.storeWritable),
    },
  ];
}

/** Memory and CPU of this process, under the names Prometheus client libraries use. */
export function processMetrics(): Metric[] {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return [
    {
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size in bytes.',
      type: 'gauge',
      samples: one(memory.rss),
    },
    {
      name: 'process_cpu_seconds_total',
      help: 'Total user and system CPU time spent in seconds.',
      type: 'counter',
      samples: one((cpu.user + cpu.system) / 1e6),
    },
    {
      name: 'nodejs_heap_used_bytes',
      help: 'V8 heap in use, in bytes.',
      type: 'gauge',
      samples: one(memory.heapUsed),
    },
  ];
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Metrics as exposition text; throws on a metric or label name Prometheus would reject. */
export function formatMetrics(metrics: readonly Metric[]): string {
  let text = '';
  for (const metric of metrics) {
    if (!NAME.test(metric.name)) throw new RangeError(`invalid metric name "${metric.name}"`);
    text += `# HELP ${metric.name} ${escapeHelp(metric.help)}\n# TYPE ${metric.name} ${metric.type}\n`;
    for (const sample of metric.samples) {
      const labels = Object.entries(sample.labels ?? {});
      let labelText = '';
      if (labels.length > 0) {
        for (const [name] of labels) if (!LABEL.test(name)) throw new RangeError(`invalid label name "${name}"`);
        labelText = `{${labels.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
      }
      text += `${metric.name}${labelText} ${formatValue(sample.value)}\n`;
    }
  }
  return text;
}

/** The broker's stats (and any `extra` metrics, e.g. process metrics) as Prometheus text format 0.0.4. */
export function renderPrometheus(stats: BrokerStats, extra: readonly Metric[] = [], now = Date.now()): string {
  return formatMetrics([...brokerMetrics(stats, now), ...extra]);
}
