// Authentication and authorization hooks: refused CONNECTs, refused SUBSCRIBE (0x80 / 0x87), refused PUBLISH
// never delivered (3.1.1 acknowledged normally, 5.0 with 0x87), identity (%u) from the authentication result.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { ClientIdentity } from '../src/index.js';
import {
  connectClient,
  connected,
  RawClient,
  startBroker,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`08 acl and auth, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    const seen: ClientIdentity[] = [];
    const logged: Array<{ msg: string; reasonCode?: number }> = [];
    before(async () => {
      b = await startBroker({
        logger: pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line)) }),
        allowAnonymous: false,
        authenticate: async (request) => {
          await new Promise((resolve) => setTimeout(resolve, 10)); // an asynchronous check, like scrypt
          if (request.username === 'banned') return { ok: false, reasonCode: 0x8a };
          if (request.username === 'vehicle' && new TextDecoder().decode(request.password) === 'pw') {
            return { ok: true, username: `car-${request.clientId}` };
          }
          return { ok: false, reasonCode: 0x86 };
        },
        // A vehicle may only use ota/<identity>/...
        authorize: (client, _action, topic) => {
          seen.push(client);
          return topic.startsWith(`ota/${client.username}/`);
        },
      });
    });
    after(() => b.close());

    const login = (clientId: string) => ({ version, clientId, username: 'vehicle', password: text('pw') });

    test('refused credentials and bans get the version-specific CONNACK code', async () => {
      const bad = await connectClient(b.port, {
        version,
        clientId: id('x'),
        username: 'vehicle',
        password: text('no'),
      });
      assert.equal(bad.connack.reasonCode, version === 5 ? 0x86 : 0x04);
      await bad.client.expectClose();
      const banned = await connectClient(b.port, { version, clientId: id('x'), username: 'banned' });
      assert.equal(banned.connack.reasonCode, version === 5 ? 0x8a : 0x05);
      await banned.client.expectClose();
      // The log names the code the client got (3.1.1: the return code, not the 5.0 reason behind it).
      const refusals = logged.filter((l) => l.msg.startsWith('refused a connection'));
      assert.equal(refusals.at(-1)?.reasonCode, version === 5 ? 0x8a : 0x05);
      const anonymous = await connectClient(b.port, { version, clientId: id('x') });
      assert.notEqual(anonymous.connack.reasonCode, 0);
      await anonymous.client.expectClose();
    });

    test('packets sent right behind CONNECT wait for the asynchronous authentication', async () => {
      const clientId = id('pipelined');
      const client = await RawClient.open(b.port, version);
      const { version: _v, ...credentials } = login(clientId);
      client.send({ type: 'connect', protocolVersion: version, clean: true, keepalive: 60, ...credentials });
      client.send({ type: 'pingreq' });
      assert.equal((await client.expect('connack')).reasonCode, 0);
      await client.expect('pingresp');
      client.end();
    });

    test('a refused subscription gets 0x80 (3.1.1) or 0x87 (5.0); an allowed one its QoS', async () => {
      const clientId = id('sub');
      const c = await connected(b.port, login(clientId));
      c.send({
        type: 'subscribe',
        packetId: 4,
        subscriptions: [
          { topicFilter: `ota/car-${clientId}/cmd`, qos: 1 },
          { topicFilter: 'ota/other/cmd', qos: 1 },
          { topicFilter: `$share/g/ota/car-${clientId}/jobs`, qos: 0 },
        ],
      });
      const suback = await c.expect('suback');
      assert.deepEqual(suback.reasonCodes, [1, version === 5 ? 0x87 : 0x80, 0]);
      assert.equal(seen.at(-1)?.username, `car-${clientId}`);
      c.end();
    });

    test('a refused publish is never delivered; 3.1.1 acknowledges it normally, 5.0 with 0x87', async () => {
      const pubId = id('pub');
      const pub = await connected(b.port, login(pubId));
      // Every message the broker accepts is emitted as 'message': a refused one must not be.
      const delivered: string[] = [];
      const onMessage = (m: { topic: string }) => delivered.push(m.topic);
      b.broker.events.on('message', onMessage);
      const before = b.broker.stats.droppedNotAuthorized;
      pub.send({
        type: 'publish',
        topic: 'ota/someone-else/status',
        payload: text('x'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 9,
      });
      const puback = await pub.expect('puback');
      assert.equal(puback.reasonCode ?? 0, version === 5 ? 0x87 : 0);
      pub.send({
        type: 'publish',
        topic: 'ota/someone-else/status',
        payload: text('x'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 10,
      });
      const pubrec = await pub.expect('pubrec');
      assert.equal(pubrec.reasonCode ?? 0, version === 5 ? 0x87 : 0);
      if (version === 4) {
        pub.send({ type: 'pubrel', packetId: 10 });
        await pub.expect('pubcomp');
      }
      pub.send({
        type: 'publish',
        topic: `ota/car-${pubId}/status`,
        payload: text('ok'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 11,
      });
      await pub.expect('puback');
      b.broker.events.off('message', onMessage);
      assert.deepEqual(delivered, [`ota/car-${pubId}/status`]);
      assert.equal(b.broker.stats.droppedNotAuthorized - before, 2);
      pub.end();
    });

    test('the authorized identity is what authenticate returned', async () => {
      const clientId = id('ident');
      const c = await connected(b.port, login(clientId));
      assert.deepEqual(await subscribe(c, `ota/car-${clientId}/#`, 0), [0]);
      c.end();
    });
  });
}

describe('08 a failing authenticate hook', () => {
  for (const mode of ['throws', 'rejects'] as const) {
    test(`a hook that ${mode} refuses the CONNECT (0x80 / 0x03) and the broker keeps serving`, async () => {
      const b = await startBroker({
        allowAnonymous: false,
        authenticate: (request) => {
          if (request.username === 'ok') return { ok: true };
          if (mode === 'throws') throw new Error('database down');
          return Promise.reject(new Error('database down'));
        },
      });
      try {
        for (const version of [4, 5] as const) {
          const { client, connack } = await connectClient(b.port, { version, clientId: 'x', username: 'u' });
          assert.equal(connack.reasonCode, version === 5 ? 0x80 : 0x03);
          await client.expectClose();
        }
        const ok = await connected(b.port, { version: 5, clientId: 'y', username: 'ok' });
        ok.end();
      } finally {
        await b.close();
      }
    });
  }
});
