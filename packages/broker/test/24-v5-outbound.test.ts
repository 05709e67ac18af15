// MQTT 5.0 on the way out: what the broker sends must fit the client's Maximum Packet Size (too large: dropped for
// that client alone, as if delivered), its Topic Alias Maximum and Receive Maximum, carry the subscription
// identifiers of the subscriptions it matched, the publisher's properties unchanged, and nothing 5.0-only to 3.1.1.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PublishPacket } from '@otalink/mqtt';
import { createBroker } from '../src/index.js';
import {
  connectClient,
  connected,
  persistent,
  RawClient,
  silent,
  startBroker,
  str,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

const version = 5 as const;

/** Publishes with QoS 1 from a fresh 5.0 client and waits for PUBACK. */
async function publishFrom(
  port: number,
  clientId: string,
  packet: Partial<PublishPacket> & { topic: string; payload: Uint8Array },
): Promise<number> {
  const pub = await connected(port, { version, clientId });
  pub.send({ type: 'publish', qos: 1, retain: false, dup: false, packetId: 1, ...packet } as PublishPacket);
  const ack = await pub.expect('puback');
  pub.end();
  return ack.reasonCode ?? 0;
}

async function disconnect(client: RawClient): Promise<void> {
  client.send({ type: 'disconnect' });
  await client.closedPromise;
}

describe('24 MQTT 5.0 outbound properties and sizes', () => {
  let b: TestBroker;
  let n = 0;
  const id = (name: string) => `${name}-${++n}`;
  before(async () => {
    b = await startBroker({
      limits: { topicAliasMaximum: 5, receiveMaximum: 10 },
      authorize: (_identity, action, topic) => !(action === 'subscribe' && topic.startsWith('denied/')),
    });
  });
  after(() => b.close());

  describe('Maximum Packet Size [MQTT-3.1.2-24, -25]', () => {
    test('a retained message too large for the subscriber is not sent on SUBSCRIBE; one that fits is', async () => {
      b.broker.publish({ topic: 'mps/ret/big', payload: 'x'.repeat(300), qos: 1, retain: true });
      b.broker.publish({ topic: 'mps/ret/small', payload: 'ok', qos: 1, retain: true });
      const sub = await connected(b.port, { version, clientId: id('mps-ret'), properties: { maximumPacketSize: 100 } });
      await subscribe(sub, 'mps/ret/+', 1);
      const m = await sub.expect('publish');
      assert.equal(str(m.payload), 'ok');
      assert.ok(await sub.silentFor(150));
      sub.end();
    });

    test('a queued message too large for the resumed connection is dropped; the rest flow', async () => {
      const clientId = id('mps-queue');
      const first = await connected(b.port, persistent(clientId));
      await subscribe(first, 'mps/q', 1);
      await disconnect(first);
      b.broker.publish({ topic: 'mps/q', payload: 'x'.repeat(300), qos: 1 });
      b.broker.publish({ topic: 'mps/q', payload: 'fits', qos: 1 });
      const before = b.broker.stats.droppedTooLarge;
      const again = await connected(b.port, {
        ...persistent(clientId),
        properties: { sessionExpiryInterval: 3600, maximumPacketSize: 100 },
      });
      const m = await again.expect('publish');
      assert.equal(str(m.payload), 'fits');
      assert.equal(b.broker.stats.droppedTooLarge - before, 1);
      again.send({ type: 'puback', packetId: m.packetId! });
      assert.ok(await again.silentFor(150));
      again.end();
    });

    test('an unacknowledged message too large for the resumed connection is not resent, and frees its slot', async () => {
      const clientId = id('mps-inflight');
      const first = await connected(b.port, {
        ...persistent(clientId),
        properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 },
      });
      await subscribe(first, 'mps/i', 1);
      b.broker.publish({ topic: 'mps/i', payload: 'x'.repeat(300), qos: 1 });
      b.broker.publish({ topic: 'mps/i', payload: 'next', qos: 1 });
      assert.equal((await first.expect('publish')).payload.length, 300);
      first.end(); // unacknowledged
      await first.closedPromise;
      const again = await connected(b.port, {
        ...persistent(clientId),
        properties: { sessionExpiryInterval: 3600, maximumPacketSize: 100, receiveMaximum: 1 },
      });
      const m = await again.expect('publish');
      assert.equal(str(m.payload), 'next');
      again.end();
    });

    test('a will too large for one subscriber reaches the others', async () => {
      const small = await connected(b.port, {
        version,
        clientId: id('mps-will-s'),
        properties: { maximumPacketSize: 64 },
      });
      await subscribe(small, 'mps/will', 0);
      const large = await connected(b.port, { version, clientId: id('mps-will-l') });
      await subscribe(large, 'mps/will', 0);
      const dying = await connected(b.port, {
        version,
        clientId: id('mps-will-d'),
        will: { topic: 'mps/will', payload: text('w'.repeat(200)), qos: 0, retain: false },
      });
      dying.end();
      assert.equal((await large.expect('publish')).payload.length, 200);
      assert.ok(await small.silentFor(150));
      small.end();
      large.end();
    });

    test('a shared-subscription copy too large for the member picked is dropped, not handed on', async () => {
      const small = await connected(b.port, {
        version,
        clientId: id('mps-sh-s'),
        properties: { maximumPacketSize: 64 },
      });
      await subscribe(small, '$share/mg/mps/sh', 1);
      const large = await connected(b.port, { version, clientId: id('mps-sh-l') });
      await subscribe(large, '$share/mg/mps/sh', 1);
      const before = b.broker.stats.droppedTooLarge;
      // Round-robin: one of the two messages goes to each member.
      b.broker.publish({ topic: 'mps/sh', payload: 'y'.repeat(200), qos: 1 });
      b.broker.publish({ topic: 'mps/sh', payload: 'y'.repeat(200), qos: 1 });
      const got = await large.expect('publish');
      assert.equal(got.payload.length, 200);
      large.send({ type: 'puback', packetId: got.packetId! });
      assert.ok(await large.silentFor(150));
      assert.ok(await small.silentFor(10));
      assert.equal(b.broker.stats.droppedTooLarge - before, 1);
      small.end();
      large.end();
    });

    test('$SYS messages too large are not sent', async () => {
      const sys = await startBroker({ sysIntervalSeconds: 1 });
      try {
        const small = await connected(sys.port, {
          version,
          clientId: 'sys-small',
          properties: { maximumPacketSize: 30 },
        });
        await subscribe(small, '$SYS/broker/version', 0);
        const large = await connected(sys.port, { version, clientId: 'sys-large' });
        await subscribe(large, '$SYS/broker/version', 0);
        assert.equal(str((await large.expect('publish', 3000)).payload).startsWith('otalink'), true);
        assert.ok(await small.silentFor(100));
        small.end();
        large.end();
      } finally {
        await sys.close();
      }
    });

    test('a DISCONNECT that would not fit with its Reason String goes without it', async () => {
      for (const [maximumPacketSize, expected] of [
        [20, undefined],
        // 43 bytes with it: it fits.
        [60, 'a client must send CONNECT only once'],
      ] as const) {
        const c = await connected(b.port, { version, clientId: id('mps-disc'), properties: { maximumPacketSize } });
        c.send({ type: 'connect', protocolVersion: 5, clientId: 'again', clean: true, keepalive: 60 });
        const packets = await c.expectClose();
        assert.equal(packets.length, 1);
        const disconnect = packets[0]!;
        assert.equal(disconnect.type === 'disconnect' && disconnect.reasonCode, 0x82);
        assert.equal(disconnect.type === 'disconnect' && disconnect.properties?.reasonString, expected);
      }
    });
  });

  describe('Topic aliases towards the client [MQTT-3.1.2-26, -27]', () => {
    test('Topic Alias Maximum 0 (or absent): never an alias', async () => {
      const sub = await connected(b.port, { version, clientId: id('ta0'), properties: { topicAliasMaximum: 0 } });
      await subscribe(sub, 'ta0/t', 0);
      b.broker.publish({ topic: 'ta0/t', payload: 'a' });
      b.broker.publish({ topic: 'ta0/t', payload: 'b' });
      for (const m of [await sub.expect('publish'), await sub.expect('publish')]) {
        assert.equal(m.topic, 'ta0/t');
        assert.equal(m.properties?.topicAlias, undefined);
      }
      sub.end();
    });

    test('broker.publish passes on no topic alias or subscription identifier of its own (JavaScript callers)', async () => {
      const sub = await connected(b.port, { version, clientId: id('ta-api') });
      await subscribe(sub, 'ta/api', 0);
      const properties = { topicAlias: 3, subscriptionIdentifiers: [9], contentType: 'c' };
      b.broker.publish({ topic: 'ta/api', payload: 'a', properties: properties as { contentType: string } });
      const m = await sub.expect('publish');
      assert.deepEqual([m.topic, m.properties], ['ta/api', { contentType: 'c' }]);
      sub.end();
    });

    test('no alias above the maximum: a second topic goes with its name', async () => {
      const sub = await connected(b.port, { version, clientId: id('ta1'), properties: { topicAliasMaximum: 1 } });
      await subscribe(sub, 'ta1/+', 0);
      for (const t of ['a', 'b', 'a', 'b']) b.broker.publish({ topic: `ta1/${t}`, payload: t });
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await sub.expect('publish'));
      assert.deepEqual(
        got.map((m) => [m.topic, m.properties?.topicAlias]),
        [
          ['ta1/a', 1],
          ['ta1/b', undefined],
          ['', 1],
          ['ta1/b', undefined],
        ],
      );
      sub.end();
    });

    test('an alias whose first use was dropped for size is set again by the next packet, with the name', async () => {
      const sub = await connected(b.port, {
        version,
        clientId: id('ta-drop'),
        properties: { topicAliasMaximum: 2, maximumPacketSize: 100 },
      });
      await subscribe(sub, 'ta/drop', 0);
      b.broker.publish({ topic: 'ta/drop', payload: 'z'.repeat(300) });
      b.broker.publish({ topic: 'ta/drop', payload: 'a' });
      b.broker.publish({ topic: 'ta/drop', payload: 'b' });
      const first = await sub.expect('publish');
      const second = await sub.expect('publish');
      assert.deepEqual([first.topic, str(first.payload)], ['ta/drop', 'a']);
      assert.equal(first.properties?.topicAlias, 1);
      assert.deepEqual([second.topic, second.properties?.topicAlias, str(second.payload)], ['', 1, 'b']);
      sub.end();
    });

    test('aliases start over with each connection: a resent and a queued message carry the topic name', async () => {
      const clientId = id('ta-resume');
      const props = { sessionExpiryInterval: 3600, topicAliasMaximum: 3, receiveMaximum: 1 };
      const first = await connected(b.port, { ...persistent(clientId), properties: props });
      await subscribe(first, 'ta/r', 1);
      b.broker.publish({ topic: 'ta/r', payload: '1', qos: 1 });
      const m1 = await first.expect('publish');
      first.send({ type: 'puback', packetId: m1.packetId! });
      b.broker.publish({ topic: 'ta/r', payload: '2', qos: 1 });
      const m2 = await first.expect('publish');
      assert.deepEqual([m2.topic, m2.properties?.topicAlias], ['', 1]);
      b.broker.publish({ topic: 'ta/r', payload: '3', qos: 1 }); // queued behind the window of 1
      first.end();
      await first.closedPromise;
      const again = await connected(b.port, { ...persistent(clientId), properties: props });
      const r2 = await again.expect('publish');
      assert.deepEqual([r2.topic, r2.dup, str(r2.payload)], ['ta/r', true, '2']);
      again.send({ type: 'puback', packetId: r2.packetId! });
      const r3 = await again.expect('publish');
      assert.deepEqual([r3.topic, r3.properties?.topicAlias, str(r3.payload)], ['', r2.properties?.topicAlias, '3']);
      again.end();
    });
  });

  describe('Subscription identifiers', () => {
    test('a shared copy carries only its own subscription identifier', async () => {
      const sub = await connected(b.port, { version, clientId: id('sid-sh') });
      await subscribe(sub, 'sidsh/t', 0, {}, { subscriptionIdentifiers: [11] });
      await subscribe(sub, '$share/g/sidsh/t', 0, { packetId: 2 }, { subscriptionIdentifiers: [12] });
      b.broker.publish({ topic: 'sidsh/t', payload: 'x' });
      const ids = [await sub.expect('publish'), await sub.expect('publish')].map(
        (m) => m.properties?.subscriptionIdentifiers,
      );
      assert.deepEqual(
        ids.sort((x, y) => x![0]! - y![0]!),
        [[11], [12]],
      );
      sub.end();
    });

    test('a retained message sent on SUBSCRIBE carries that subscription identifier only', async () => {
      b.broker.publish({ topic: 'sidret/t', payload: 'r', retain: true });
      const sub = await connected(b.port, { version, clientId: id('sid-ret') });
      await subscribe(sub, 'sidret/#', 0, {}, { subscriptionIdentifiers: [21] });
      assert.deepEqual((await sub.expect('publish')).properties?.subscriptionIdentifiers, [21]);
      await subscribe(sub, 'sidret/+', 0, { packetId: 2 }, { subscriptionIdentifiers: [22] });
      assert.deepEqual((await sub.expect('publish')).properties?.subscriptionIdentifiers, [22]);
      sub.end();
    });

    test('Subscription Identifier 0 in SUBSCRIBE is a Protocol Error (0x82)', async () => {
      const sub = await connected(b.port, { version, clientId: id('sid0') });
      // SUBSCRIBE id 1, properties: 0x0B 0x00, filter "a", options 0.
      sub.writeRaw([0x82, 0x08, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00]);
      const packets = await sub.expectClose();
      assert.deepEqual(
        packets.map((p) => p.type === 'disconnect' && p.reasonCode),
        [0x82],
      );
    });
  });

  describe('Publisher properties passed through [MQTT-3.3.2-4, -15 .. -20]', () => {
    test('a Response Topic with a wildcard is a Protocol Error, not forwarded [MQTT-3.3.2-14]', async () => {
      const sub = await connected(b.port, { version, clientId: id('rt-sub') });
      await subscribe(sub, 'rt/t', 0);
      const pub = await connected(b.port, { version, clientId: id('rt-pub') });
      // Our encoder refuses the wildcard: written over a valid topic of the same length.
      pub.sendPatched(
        {
          type: 'publish',
          topic: 'rt/t',
          payload: text('q'),
          qos: 0,
          retain: false,
          dup: false,
          properties: { responseTopic: 'replies/x' },
        },
        'replies/x',
        'replies/+',
      );
      const packets = await pub.expectClose();
      assert.deepEqual(
        packets.map((p) => p.type === 'disconnect' && p.reasonCode),
        [0x82],
      );
      assert.ok(await sub.silentFor(100));
      sub.end();
    });

    test('a will whose Response Topic has a wildcard is refused with 0x82', async () => {
      const client = await RawClient.open(b.port, version);
      client.sendPatched(
        {
          type: 'connect',
          protocolVersion: version,
          clientId: id('rt-will'),
          clean: true,
          keepalive: 60,
          will: {
            topic: 'rt/will',
            payload: text('w'),
            qos: 0,
            retain: false,
            properties: { responseTopic: 'replies/x' },
          },
        },
        'replies/x',
        'replies/#',
      );
      assert.equal((await client.expect('connack')).reasonCode, 0x82);
      await client.expectClose();
    });

    test('broker.publish refuses a Response Topic with a wildcard', () => {
      assert.throws(
        () => b.broker.publish({ topic: 'rt/api', payload: 'q', properties: { responseTopic: 'replies/#' } }),
        { code: 'BROKER_ERR_INVALID_MESSAGE' },
      );
    });

    test('Payload Format Indicator 1 with invalid UTF-8 is passed through unchanged (not validated)', async () => {
      const sub = await connected(b.port, { version, clientId: id('pfi-sub') });
      await subscribe(sub, 'pfi/t', 1);
      const bad = Uint8Array.from([0xff, 0xfe, 0x41]);
      const reason = await publishFrom(b.port, id('pfi-pub'), {
        topic: 'pfi/t',
        payload: bad,
        properties: { payloadFormatIndicator: 1 },
      });
      assert.equal(reason, 0);
      const m = await sub.expect('publish');
      assert.deepEqual([...m.payload], [...bad]);
      assert.equal(m.properties?.payloadFormatIndicator, 1);
      sub.end();
    });

    test('user properties keep their order, correlation data and content type their bytes, through a retained message', async () => {
      const userProperties: Array<[string, string]> = [
        ['z', '1'],
        ['a', '2'],
        ['z', '0'],
      ];
      await publishFrom(b.port, id('up-pub'), {
        topic: 'up/t',
        payload: text('p'),
        retain: true,
        properties: {
          userProperties,
          correlationData: Uint8Array.from([0, 1, 255]),
          contentType: 'ct/ü',
          responseTopic: 'up/reply',
        },
      });
      const sub = await connected(b.port, { version, clientId: id('up-sub') });
      await subscribe(sub, 'up/t', 1);
      const m = await sub.expect('publish');
      assert.deepEqual(m.properties?.userProperties, userProperties);
      assert.deepEqual([...(m.properties?.correlationData ?? [])], [0, 1, 255]);
      assert.equal(m.properties?.contentType, 'ct/ü');
      assert.equal(m.properties?.responseTopic, 'up/reply');
      sub.end();
    });
  });

  describe('Receive Maximum towards the client [MQTT-3.3.4-9]', () => {
    test('never more unacknowledged QoS 1/2 PUBLISHes than the client allows, across a resume too', async () => {
      const clientId = id('rm');
      const first = await connected(b.port, {
        ...persistent(clientId),
        properties: { sessionExpiryInterval: 3600, receiveMaximum: 3 },
      });
      await subscribe(first, 'rm/out', 2);
      for (let i = 0; i < 6; i++) b.broker.publish({ topic: 'rm/out', payload: `${i}`, qos: i % 2 ? 1 : 2 });
      const got = [];
      for (let i = 0; i < 3; i++) got.push(await first.expect('publish'));
      assert.ok(await first.silentFor(100));
      // PUBREC does not free a slot (PUBCOMP does).
      first.send({ type: 'pubrec', packetId: got[0]!.packetId! });
      await first.expect('pubrel');
      assert.ok(await first.silentFor(100));
      first.end();
      await first.closedPromise;
      const again = await connected(b.port, {
        ...persistent(clientId),
        properties: { sessionExpiryInterval: 3600, receiveMaximum: 2 },
      });
      // The PUBREL goes again, and it holds a slot: one PUBLISH resent.
      assert.equal((await again.expect('pubrel')).packetId, got[0]!.packetId);
      const resent = await again.expect('publish');
      assert.equal(resent.dup, true);
      assert.ok(await again.silentFor(100));
      again.send({ type: 'pubcomp', packetId: got[0]!.packetId! });
      assert.equal((await again.expect('publish')).dup, true);
      assert.ok(await again.silentFor(100));
      again.end();
    });
  });

  describe('CONNACK', () => {
    test('Assigned Client Identifier for an empty id; no Response Information unless asked, none either way', async () => {
      const { client, connack } = await connectClient(b.port, {
        version,
        clientId: '',
        properties: { requestResponseInformation: 0 },
      });
      assert.match(connack.properties?.assignedClientIdentifier ?? '', /^otalink-/);
      assert.equal(connack.properties?.responseInformation, undefined);
      client.end();
    });

    test('Server Keep Alive when the broker caps the keepalive', async () => {
      const capped = await startBroker({ limits: { maxKeepAlive: 30 } });
      try {
        const { client, connack } = await connectClient(capped.port, { version, clientId: 'ka', keepalive: 600 });
        assert.equal(connack.properties?.serverKeepAlive, 30);
        client.end();
      } finally {
        await capped.close();
      }
    });
  });

  test('limits the CONNACK cannot carry are refused when the broker is made', () => {
    for (const limits of [{ topicAliasMaximum: 0x10000 }, { maxPacketSize: 0 }, { maxPacketSize: 2 ** 29 }]) {
      assert.throws(() => createBroker({ limits, logger: silent }), { code: 'BROKER_ERR_INVALID_OPTION' });
    }
  });

  describe('Request Problem Information 0 [MQTT-3.1.2-29]', () => {
    test('no Reason String or User Property on PUBACK or SUBACK', async () => {
      const c = await connected(b.port, {
        version,
        clientId: id('rpi'),
        properties: { requestProblemInformation: 0 },
      });
      c.send({ type: 'subscribe', packetId: 3, subscriptions: [{ topicFilter: 'denied/x', qos: 1 }] });
      const suback = await c.expect('suback');
      assert.deepEqual(suback.reasonCodes, [0x87]);
      assert.equal(suback.properties, undefined);
      c.send({
        type: 'publish',
        topic: 'nobody/here',
        payload: text('x'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 4,
      });
      const puback = await c.expect('puback');
      assert.equal(puback.reasonCode, 0x10);
      assert.equal(puback.properties, undefined);
      c.end();
    });
  });

  describe('3.1.1 clients get nothing 5.0-only', () => {
    test('a 5.0 message with properties reaches a 3.1.1 subscriber without them; a refused SUBSCRIBE is 0x80', async () => {
      const sub = await connected(b.port, { version: 4, clientId: id('v4') });
      sub.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: 'v4/t', qos: 1 },
          { topicFilter: 'denied/y', qos: 1 },
        ],
      });
      assert.deepEqual((await sub.expect('suback')).reasonCodes, [1, 0x80]);
      await publishFrom(b.port, id('v5-pub'), {
        topic: 'v4/t',
        payload: text('body'),
        properties: { userProperties: [['k', 'v']], contentType: 'c', messageExpiryInterval: 60 },
      });
      const m = await sub.expect('publish');
      assert.equal(str(m.payload), 'body');
      assert.equal(m.properties, undefined);
      sub.end();
    });
  });
});
