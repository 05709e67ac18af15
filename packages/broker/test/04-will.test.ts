// Will messages: published when the connection ends without DISCONNECT (drop, keepalive, protocol error,
// takeover), not on a normal DISCONNECT; 5.0: DISCONNECT 0x04, will delay, will properties.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Will } from '@otalink/mqtt';
import { connected, delay, startBroker, str, subscribe, type TestBroker, text } from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`04 will, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    const will = (topic: string, extra: Partial<Will> = {}): Will => ({
      topic,
      payload: text('gone'),
      qos: 1,
      retain: false,
      ...extra,
    });

    async function watcher(filter: string) {
      const sub = await connected(b.port, { version, clientId: id('watch') });
      await subscribe(sub, filter, 1);
      return sub;
    }

    test('a dropped connection publishes the will', async () => {
      const sub = await watcher('will/drop');
      const client = await connected(b.port, { version, clientId: id('c'), will: will('will/drop') });
      client.end();
      const m = await sub.expect('publish');
      assert.equal(m.topic, 'will/drop');
      assert.equal(str(m.payload), 'gone');
      assert.equal(m.qos, 1);
      sub.end();
    });

    test('a normal DISCONNECT discards the will', async () => {
      const sub = await watcher('will/normal');
      const client = await connected(b.port, { version, clientId: id('c'), will: will('will/normal') });
      client.send({ type: 'disconnect' });
      await client.closedPromise;
      assert.ok(await sub.silentFor(300));
      sub.end();
    });

    test('a retained will is stored', async () => {
      const client = await connected(b.port, {
        version,
        clientId: id('c'),
        will: will('will/retained', { retain: true }),
      });
      client.end();
      await delay(100);
      const sub = await watcher('will/retained');
      const m = await sub.expect('publish');
      assert.equal(m.retain, true);
      sub.end();
    });

    test('a keepalive timeout publishes the will', async () => {
      const sub = await watcher('will/keepalive');
      const client = await connected(b.port, {
        version,
        clientId: id('c'),
        keepalive: 1,
        will: will('will/keepalive'),
      });
      const m = await sub.expect('publish', 5000);
      assert.equal(m.topic, 'will/keepalive');
      await client.closedPromise;
      sub.end();
    });

    test('a protocol error publishes the will', async () => {
      const sub = await watcher('will/error');
      const client = await connected(b.port, { version, clientId: id('c'), will: will('will/error') });
      client.writeRaw([0x30 | 0x06, 0x00]); // PUBLISH with QoS 3
      await sub.expect('publish');
      await client.closedPromise;
      sub.end();
    });

    test('a takeover publishes the will of the old connection (no delay)', async () => {
      const sub = await watcher('will/takeover');
      const clientId = id('c');
      const first = await connected(b.port, { version, clientId, will: will('will/takeover') });
      const second = await connected(b.port, { version, clientId });
      await first.closedPromise;
      assert.equal((await sub.expect('publish')).topic, 'will/takeover');
      second.end();
      sub.end();
    });

    if (version === 5) {
      test('DISCONNECT with an error reason (0x80) publishes the will: only 0x00 discards it', async () => {
        // [MQTT-3.1.2-8], [MQTT-3.14.4-3]: a client ending on an error is as good as lost.
        const sub = await watcher('will/0x80');
        const client = await connected(b.port, { version, clientId: id('c'), will: will('will/0x80') });
        client.send({ type: 'disconnect', reasonCode: 0x80 });
        await client.closedPromise;
        assert.equal((await sub.expect('publish')).topic, 'will/0x80');
        sub.end();
      });

      test('DISCONNECT with reason 0x04 publishes the will', async () => {
        const sub = await watcher('will/0x04');
        const client = await connected(b.port, { version, clientId: id('c'), will: will('will/0x04') });
        client.send({ type: 'disconnect', reasonCode: 0x04 });
        assert.equal((await sub.expect('publish')).topic, 'will/0x04');
        sub.end();
      });

      test('will properties are passed through', async () => {
        const sub = await watcher('will/props');
        const client = await connected(b.port, {
          version,
          clientId: id('c'),
          will: will('will/props', {
            properties: {
              contentType: 'text/plain',
              responseTopic: 'reply/here',
              userProperties: [['k', 'v']],
              messageExpiryInterval: 60,
            },
          }),
        });
        client.end();
        const m = await sub.expect('publish');
        assert.equal(m.properties?.contentType, 'text/plain');
        assert.equal(m.properties?.responseTopic, 'reply/here');
        assert.deepEqual(m.properties?.userProperties, [['k', 'v']]);
        assert.ok((m.properties?.messageExpiryInterval ?? 0) > 0);
        sub.end();
      });

      test('will delay: published after the delay, not at all if the client comes back in time', async () => {
        const sub = await watcher('will/delay');
        const persistent = { version, properties: { sessionExpiryInterval: 60 }, clean: false } as const;
        const delayed = will('will/delay', { properties: { willDelayInterval: 1 } });
        const back = id('back');
        const c1 = await connected(b.port, { ...persistent, clientId: back, will: delayed });
        c1.end();
        // Back as soon as the broker saw the connection end: the 1 s will delay runs from there, and a fixed wait
        // here would eat into it on a loaded machine.
        while (b.broker.clients().includes(back)) await delay(5);
        const c1again = await connected(b.port, { ...persistent, clientId: back });
        assert.ok(await sub.silentFor(1500), 'the will was sent although the client came back');
        c1again.send({ type: 'disconnect' });

        const c2 = await connected(b.port, { ...persistent, clientId: id('late'), will: delayed });
        const dropped = Date.now();
        c2.end();
        assert.ok(await sub.silentFor(500));
        const m = await sub.expect('publish', 3000);
        assert.equal(m.topic, 'will/delay');
        assert.ok(Date.now() - dropped >= 900);
        sub.end();
      });

      test('will delay: a clean start ends the session and publishes the pending will at once', async () => {
        const sub = await watcher('will/clean');
        const clientId = id('c');
        const c = await connected(b.port, {
          version,
          clientId,
          clean: false,
          properties: { sessionExpiryInterval: 60 },
          will: will('will/clean', { properties: { willDelayInterval: 30 } }),
        });
        c.end();
        await delay(100);
        const fresh = await connected(b.port, { version, clientId, clean: true });
        assert.equal((await sub.expect('publish')).topic, 'will/clean');
        fresh.end();
        sub.end();
      });

      test('will delay: a broker on its own memory store publishes a waiting will at close, as its session ends', async () => {
        // The sessions of a store that forgets them end with the broker ([MQTT-3.1.2-8]); the embedding application
        // (the OTA backend marks a vehicle offline by its will) hears of the will through the message event.
        const own = await startBroker();
        const seen: string[] = [];
        own.broker.events.on('message', (m) => seen.push(m.topic));
        const c = await connected(own.port, {
          version,
          clientId: id('c'),
          clean: false,
          properties: { sessionExpiryInterval: 600 },
          will: will('will/at-close', { properties: { willDelayInterval: 300 } }),
        });
        c.end();
        await c.closedPromise;
        while (own.broker.clients().length > 0) await delay(5);
        assert.deepEqual(seen, []);
        await own.close();
        assert.deepEqual(seen, ['will/at-close']);
      });
    }
  });
}
