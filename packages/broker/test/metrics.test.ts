import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { formatMetrics, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../src/metrics/prometheus.js';
import { startMetricsServer } from '../src/metrics/server.js';
import { createStats } from '../src/stats.js';

function sampleStats() {
  const stats = createStats(1_000_000);
  stats.connectionsCurrent = 3;
  stats.connectionsTotal = 10;
  stats.connectionsRejected = 2;
  stats.sessionsCurrent = 5;
  stats.sessionsOffline = 2;
  stats.subscriptionsCurrent = 7;
  stats.retainedCurrent = 4;
  stats.messagesIn = [100, 20, 3];
  stats.messagesOut = [200, 40, 6];
  stats.bytesIn = 12345;
  stats.bytesOut = 67890;
  stats.droppedQueueFull = 11;
  stats.droppedExpired = 12;
  stats.droppedSlowSubscriber = 13;
  stats.droppedTooLarge = 14;
  stats.droppedNotAuthorized = 15;
  stats.droppedSessionEnded = 4;
  stats.subscriptionsRefusedLimit = 3;
  stats.protocolErrors = 1;
  stats.rateLimited = 2;
  stats.sendTimeouts = 2;
  stats.queuedCurrent = 9;
  return stats;
}

/** Parses exposition text strictly enough to catch format mistakes: HELP and TYPE before samples, valid lines. */
function parse(text: string): { types: Map<string, string>; samples: Map<string, number> } {
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples = new Map<string, number>();
  assert.ok(text.endsWith('\n'), 'the text ends with a line feed');
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      helped.add(m[1] as string);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (m) {
      assert.ok(helped.has(m[1] as string), `HELP before TYPE for ${m[1]}`);
      assert.ok(!types.has(m[1] as string), `one TYPE line for ${m[1]}`);
      types.set(m[1] as string, m[2] as string);
      continue;
    }
    m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (\S+)$/.exec(
        line,
      );
    assert.ok(m, `a valid sample line: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    assert.ok(types.has(name), `TYPE before the samples of ${name}`);
    const key = `${name}${m[2] ?? ''}`;
    assert.ok(!samples.has(key), `one sample for ${key}`);
    samples.set(key, Number(m[3]));
  }
  return { types, samples };
}

describe('renderPrometheus', () => {
  test('every counter and gauge with HELP/TYPE, qos and reason labels, values from the stats', () => {
    const { types, samples } = parse(renderPrometheus(sampleStats(), [], 1_060_000));
    for (const [name, type] of types) {
      assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`);
    }
    const expected: Record<string, number> = {
      otalink_broker_connections: 3,
      otalink_broker_connections_total: 10,
      otalink_broker_connections_rejected_total: 2,
      otalink_broker_sessions: 5,
      otalink_broker_sessions_offline: 2,
      otalink_broker_subscriptions: 7,
      otalink_broker_retained_messages: 4,
      otalink_broker_queued_messages: 9,
      'otalink_broker_messages_received_total{qos="0"}': 100,
      'otalink_broker_messages_received_total{qos="1"}': 20,
      'otalink_broker_messages_received_total{qos="2"}': 3,
      'otalink_broker_messages_sent_total{qos="0"}': 200,
      'otalink_broker_messages_sent_total{qos="1"}': 40,
      'otalink_broker_messages_sent_total{qos="2"}': 6,
      otalink_broker_bytes_received_total: 12345,
      otalink_broker_bytes_sent_total: 67890,
      'otalink_broker_messages_dropped_total{reason="queue_full"}': 11,
      'otalink_broker_messages_dropped_total{reason="expired"}': 12,
      'otalink_broker_messages_dropped_total{reason="slow_subscriber"}': 13,
      'otalink_broker_messages_dropped_total{reason="too_large"}': 14,
      'otalink_broker_messages_dropped_total{reason="not_authorized"}': 15,
      'otalink_broker_messages_dropped_total{reason="session_ended"}': 4,
      'otalink_broker_subscriptions_refused_total{reason="limit"}': 3,
      otalink_broker_protocol_errors_total: 1,
      otalink_broker_rate_limited_total: 2,
      otalink_broker_send_timeouts_total: 2,
      otalink_broker_start_time_seconds: 1000,
      otalink_broker_uptime_seconds: 60,
    };
    assert.deepEqual(Object.fromEntries(samples), expected);
  });

  test('extra metrics, label escaping, special values; bad names are refused', () => {
    const text = renderPrometheus(createStats(0), [
      {
        name: 'otalink_test_total',
        help: 'A help text with a \\ and a\nline break.',
        type: 'counter',
        samples: [
          { labels: { path: 'a"b\\c\nd' }, value: Number.POSITIVE_INFINITY },
          { labels: { path: 'x' }, value: Number.NaN },
        ],
      },
    ]);
    assert.ok(text.includes('# HELP otalink_test_total A help text with a \\\\ and a\\nline break.\n'));
    assert.ok(text.includes('otalink_test_total{path="a\\"b\\\\c\\nd"} +Inf\n'));
    assert.ok(text.includes('otalink_test_total{path="x"} NaN\n'));
    parse(text);
    assert.throws(() => formatMetrics([{ name: 'bad-name', help: 'x', type: 'gauge', samples: [] }]), RangeError);
    assert.throws(
      () =>
        formatMetrics([
          { name: 'ok', help: 'x', type: 'gauge', samples: [{ labels: { 'bad-label': 'v' }, value: 1 }] },
        ]),
      RangeError,
    );
  });
});

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 10_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, type: String(response.headers['content-type']), body }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('startMetricsServer', () => {
  test('GET /metrics → 200 text 0.0.4 with live stats; anything else → 404 JSON', async () => {
    const stats = sampleStats();
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, () => stats);
    try {
      assert.ok(server.port > 0);
      let response = await get(server.port, '/metrics');
      assert.equal(response.status, 200);
      assert.equal(response.type, PROMETHEUS_CONTENT_TYPE);
      let { samples } = parse(response.body);
      assert.equal(samples.get('otalink_broker_connections'), 3);
      assert.ok((samples.get('process_resident_memory_bytes') ?? 0) > 0);
      // The next scrape reads the stats again.
      stats.connectionsCurrent = 4;
      response = await get(server.port, '/metrics?x=1');
      ({ samples } = parse(response.body));
      assert.equal(samples.get('otalink_broker_connections'), 4);

      for (const [path, method] of [
        ['/', 'GET'],
        ['/metricsx', 'GET'],
        ['/metrics', 'POST'],
      ] as const) {
        const miss = await get(server.port, path, method);
        assert.equal(miss.status, 404, `${method} ${path}`);
        assert.match(miss.type, /^application\/json/);
        assert.equal((JSON.parse(miss.body) as { code: string }).code, 'BROKER_ERR_METRICS_NOT_FOUND');
      }
    } finally {
      await server.close();
    }
  });

  test('a port in use is BROKER_ERR_LISTEN', async () => {
    const first = await startMetricsServer({ host: '127.0.0.1', port: 0 }, () => createStats());
    try {
      await assert.rejects(
        startMetricsServer({ host: '127.0.0.1', port: first.port }, () => createStats()),
        {
          code: 'BROKER_ERR_LISTEN',
          message: `metrics listener 127.0.0.1:${first.port}: the port is in use: another process, or another listener of this broker, listens on it (EADDRINUSE)`,
        },
      );
    } finally {
      await first.close();
    }
  });
});
