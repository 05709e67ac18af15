// Stats as the broker keeps them, the $SYS topics and the Prometheus endpoint the broker starts with
// options.metrics: the counters move with real traffic.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connected, startBroker, str, subscribe, text } from './support/raw-client.js';

describe('13 stats, $SYS and /metrics', () => {
  test('counters follow connections, subscriptions, messages and bytes', async () => {
    const b = await startBroker({ metrics: { host: '127.0.0.1', port: 0 } });
    try {
      const stats = b.broker.stats;
      const sub = await connected(b.port, {
        version: 5,
        clientId: 's',
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      });
      await subscribe(sub, 'm/t', 1);
      const pub = await connected(b.port, { version: 4, clientId: 'p' });
      pub.send({ type: 'publish', topic: 'm/t', payload: text('x'), qos: 1, retain: true, dup: false, packetId: 1 });
      await pub.expect('puback');
      const m = await sub.expect('publish');
      sub.send({ type: 'puback', packetId: m.packetId! });
      assert.equal(stats.connectionsCurrent, 2);
      assert.equal(stats.sessionsCurrent, 2);
      assert.equal(stats.subscriptionsCurrent, 1);
      assert.equal(stats.retainedCurrent, 1);
      assert.equal(stats.messagesIn[1], 1);
      assert.equal(stats.messagesOut[1], 1);
      assert.ok(stats.bytesIn > 0 && stats.bytesOut > 0);
      sub.send({ type: 'disconnect' });
      await sub.closedPromise;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(stats.sessionsOffline, 1);
      assert.equal(stats.connectionsCurrent, 1);

      const address = b.broker.metricsAddress();
      assert.ok(address);
      const response = await fetch(`http://127.0.0.1:${address.port}/metrics`);
      assert.equal(response.status, 200);
      const body = await response.text();
      assert.match(body, /_connections 1\n/);
      assert.match(body, /_retained_messages 1\n/);
      pub.end();
    } finally {
      await b.close();
    }
  });

  test('$SYS topics carry the counters and are published on the interval', async () => {
    const b = await startBroker({ sysIntervalSeconds: 1 });
    try {
      const sys = await connected(b.port, { version: 4, clientId: 'sys' });
      sys.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: '$SYS/broker/clients/connected', qos: 0 },
          { topicFilter: '$SYS/broker/subscriptions/count', qos: 0 },
        ],
      });
      await sys.expect('suback');
      const seen = new Map<string, string>();
      while (seen.size < 2) {
        const m = await sys.expect('publish', 3000);
        seen.set(m.topic, str(m.payload));
      }
      assert.match(seen.get('$SYS/broker/clients/connected') ?? '', /^\d+$/);
      // The next interval reports the connection and its two subscriptions.
      const deadline = Date.now() + 5000;
      while (seen.get('$SYS/broker/subscriptions/count') !== '2' && Date.now() < deadline) {
        const m = await sys.expect('publish', 3000);
        seen.set(m.topic, str(m.payload));
      }
      assert.equal(seen.get('$SYS/broker/subscriptions/count'), '2');
      assert.equal(seen.get('$SYS/broker/clients/connected'), '1');
      sys.end();
    } finally {
      await b.close();
    }
  });
});
