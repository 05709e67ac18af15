// MQTT 5.0 server redirection with two fake brokers: a CONNACK or DISCONNECT with 0x9C / 0x9D and a Server
// Reference is reported (error and 'redirect' event), followed only with followRedirects, and bounded in hops.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ClientOptions, connect, MqttRedirectError } from '../../src/client/index.js';
import type { ResolvedTarget } from '../../src/client/options.js';
import { redirectTarget } from '../../src/client/redirect.js';
import type { ConnackPacket } from '../../src/codec/packets.js';
import { FakeBroker } from './fake-broker.js';

const fast = { initialDelayMs: 10, maxDelayMs: 50 };

function redirecting(reasonCode: number, serverReference: string): ConnackPacket {
  return { type: 'connack', sessionPresent: false, reasonCode, properties: { serverReference } };
}

async function twoBrokers(fn: (a: FakeBroker, b: FakeBroker) => Promise<void>): Promise<void> {
  const a = await FakeBroker.start();
  const b = await FakeBroker.start();
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

const options = (broker: FakeBroker, extra: Partial<ClientOptions> = {}): ClientOptions => ({
  url: broker.url,
  reconnect: fast,
  connectTimeoutMs: 5000,
  ...extra,
});

describe('server redirect', () => {
  test('CONNACK 0x9C without followRedirects: refused, with serverReference on the error and the event', async () => {
    await twoBrokers(async (a, b) => {
      a.script = { connack: () => redirecting(0x9c, `127.0.0.1:${b.port}`) };
      await assert.rejects(connect(options(a)), (err: unknown) => {
        assert.ok(err instanceof MqttRedirectError);
        assert.equal(err.code, 'MQTT_ERR_CONNECTION_REFUSED');
        assert.equal(err.reasonCode, 0x9c);
        assert.equal(err.serverReference, `127.0.0.1:${b.port}`);
        return true;
      });
      assert.equal(b.connections.length, 0, 'not followed');
    });
  });

  test('CONNACK 0x9C with followRedirects: connected to the referenced server, the event says followed', async () => {
    await twoBrokers(async (a, b) => {
      a.script = { connack: () => redirecting(0x9c, `127.0.0.1:${b.port}`) };
      const { MqttClient } = await import('../../src/client/index.js');
      const client = new MqttClient(options(a, { followRedirects: true }));
      const events: unknown[] = [];
      client.on('redirect', (info) => events.push(info));
      await client.start();
      assert.deepEqual(events, [{ reasonCode: 0x9c, serverReference: `127.0.0.1:${b.port}`, followed: true }]);
      assert.equal(b.connects.length, 1);
      assert.equal((await client.publish('moved/t', 'x', { qos: 1 })).reasonCode, 0);
      assert.equal(b.publishes.length, 1, 'the publish went to the second server');
      await client.end();
    });
  });

  test('DISCONNECT 0x9D: offline with the reference, reconnected there, and later reconnects stay there', async () => {
    await twoBrokers(async (a, b) => {
      const client = await connect(options(a, { followRedirects: true, clean: false, clientId: 'moving' }));
      const offline: Error[] = [];
      client.on('offline', (reason) => offline.push(reason));
      a.latest?.send({
        type: 'disconnect',
        reasonCode: 0x9d,
        properties: { serverReference: `127.0.0.1:${b.port}` },
      });
      await b.until(() => b.connects.length === 1, 5000, 'the reconnect to the new server');
      await new Promise<void>((resolve) => {
        if (client.state === 'connected') resolve();
        else client.once('connected', () => resolve());
      });
      const reason = offline[0];
      assert.ok(reason instanceof MqttRedirectError);
      assert.deepEqual(
        [reason.code, reason.reasonCode, reason.serverReference],
        ['MQTT_ERR_CONNECTION_CLOSED', 0x9d, `127.0.0.1:${b.port}`],
      );
      // Server moved is permanent: a later drop reconnects to the new server, not the configured one.
      b.dropAll();
      await b.until(() => b.connects.length === 2, 5000, 'the second reconnect');
      assert.equal(a.connects.length, 1);
      await client.end();
    });
  });

  test('a redirect loop is bounded by maxRedirects; the last redirect error rejects', async () => {
    await twoBrokers(async (a, b) => {
      a.script = { connack: () => redirecting(0x9c, `127.0.0.1:${b.port}`) };
      b.script = { connack: () => redirecting(0x9c, `127.0.0.1:${a.port}`) };
      const events: boolean[] = [];
      const { MqttClient } = await import('../../src/client/index.js');
      const client = new MqttClient(options(a, { followRedirects: true, maxRedirects: 3, reconnect: false }));
      client.on('redirect', (info) => events.push(info.followed));
      await assert.rejects(client.start(), { code: 'MQTT_ERR_CONNECTION_REFUSED', reasonCode: 0x9c });
      assert.deepEqual(events, [true, true, true, false]);
      assert.deepEqual([a.connects.length, b.connects.length], [2, 2]);
    });
  });

  test('a loop with reconnect on: one redirect event per refusal; the hops used up, back to the configured server', async () => {
    await twoBrokers(async (a, b) => {
      a.script = { connack: () => redirecting(0x9c, `127.0.0.1:${b.port}`) };
      b.script = { connack: () => redirecting(0x9c, `127.0.0.1:${a.port}`) };
      const { MqttClient } = await import('../../src/client/index.js');
      const client = new MqttClient(options(a, { followRedirects: true, maxRedirects: 1, retryFirstConnect: true }));
      const events: boolean[] = [];
      client.on('redirect', (info) => events.push(info.followed));
      try {
        await client.start();
        await a.until(() => a.connects.length >= 4, 5000, 'attempts at the configured server');
        // a → b (followed), b refuses (hops used up): the next attempt, after the backoff, is a's again.
        assert.ok(b.connects.length >= a.connects.length - 1, `${a.connects.length} at a, ${b.connects.length} at b`);
        // One event per refusal (the last refusal's may still be on its way), never two.
        const refusals = a.connects.length + b.connects.length;
        assert.ok(
          events.length <= refusals && events.length >= refusals - 1,
          `${events.length} events, ${refusals} refusals`,
        );
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('hops start again after a connection that lasted: a later rebalance is followed', async () => {
    await twoBrokers(async (a, b) => {
      const client = await connect(
        options(a, { followRedirects: true, maxRedirects: 1, reconnect: { ...fast, stableAfterMs: 50 } }),
      );
      try {
        a.latest!.send({
          type: 'disconnect',
          reasonCode: 0x9c,
          properties: { serverReference: `127.0.0.1:${b.port}` },
        });
        await b.until(() => b.connects.length === 1, 3000, 'moved to b');
        await new Promise((r) => setTimeout(r, 100));
        // Later, b rebalances the client back to a: a connection that lasted, so this is hop 1 of 1 again.
        b.latest!.send({
          type: 'disconnect',
          reasonCode: 0x9c,
          properties: { serverReference: `127.0.0.1:${a.port}` },
        });
        await a.until(() => a.connects.length === 2, 3000, 'moved back to a');
        assert.equal(b.connects.length, 1, 'not back to b, which told it to leave');
      } finally {
        await client.end({ force: true });
      }
    });
  });

  test('Server Reference forms: host:port, [v6]:port, host alone (our port), a list, a URL; junk is not followed', () => {
    const current: ResolvedTarget = { protocol: 'mqtts', host: 'a.example', port: 8883, path: '/mqtt' };
    const at = (ref: string | undefined) => {
      const t = redirectTarget(ref, current);
      return t === undefined ? undefined : `${t.protocol}://${t.host}:${t.port}`;
    };
    assert.equal(at('b.example:9000'), 'mqtts://b.example:9000');
    assert.equal(at('[::1]:9001'), 'mqtts://::1:9001');
    assert.equal(at('b.example'), 'mqtts://b.example:8883');
    assert.equal(at('c.example:1 d.example:2'), 'mqtts://c.example:1');
    assert.equal(at('mqtt://e.example:1884'), 'mqtts://e.example:1884', 'the scheme stays ours');
    for (const junk of [undefined, '', 'host:notaport', 'host:70000', '[::1', 'a:b:c']) {
      assert.equal(at(junk), undefined, String(junk));
    }
  });
});
