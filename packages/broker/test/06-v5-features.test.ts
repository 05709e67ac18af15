// MQTT 5.0 features: subscription identifiers, no local, topic aliases both ways, properties passed through,
// maximum packet size both ways, receive maximum both ways, enhanced authentication and re-authentication.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  connectClient,
  connected,
  RawClient,
  startBroker,
  str,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

const version = 5 as const;

describe('06 MQTT 5.0 features', () => {
  let b: TestBroker;
  let n = 0;
  const id = (name: string) => `${name}-${++n}`;
  before(async () => {
    b = await startBroker({
      limits: { topicAliasMaximum: 5, receiveMaximum: 3, maxPacketSize: 2048 },
      enhancedAuth: [
        {
          method: 'CHALLENGE',
          step: (state, data) => {
            if (state.step === 0) return { result: 'continue', data: text('nonce') };
            return str(data ?? new Uint8Array()) === 'nonce-signed'
              ? { result: 'success', data: text('welcome'), username: 'signed-user' }
              : { result: 'fail', reasonCode: 0x87 };
          },
        },
      ],
    });
  });
  after(() => b.close());

  test('subscription identifiers: each matching subscription contributes its identifier', async () => {
    const sub = await connected(b.port, { version, clientId: id('sid') });
    await subscribe(sub, 'sid/+', 0, {}, { subscriptionIdentifiers: [7] });
    await subscribe(sub, 'sid/#', 0, { packetId: 2 }, { subscriptionIdentifiers: [300] });
    b.broker.publish({ topic: 'sid/a', payload: 'x' });
    const m = await sub.expect('publish');
    assert.deepEqual(
      [...(m.properties?.subscriptionIdentifiers ?? [])].sort((x, y) => x - y),
      [7, 300],
    );
    sub.end();
  });

  test('no local: a client does not receive its own messages on such a subscription', async () => {
    const c = await connected(b.port, { version, clientId: id('nl') });
    await subscribe(c, 'nl/t', 0, { noLocal: true });
    c.send({ type: 'publish', topic: 'nl/t', payload: text('mine'), qos: 0, retain: false, dup: false });
    assert.ok(await c.silentFor(200));
    const other = await connected(b.port, { version, clientId: id('nl-other') });
    other.send({ type: 'publish', topic: 'nl/t', payload: text('theirs'), qos: 0, retain: false, dup: false });
    assert.equal(str((await c.expect('publish')).payload), 'theirs');
    c.end();
    other.end();
  });

  test('inbound topic aliases: set, then use with an empty topic', async () => {
    const sub = await connected(b.port, { version, clientId: id('alias-sub') });
    await subscribe(sub, 'alias/long/topic', 0);
    const pub = await connected(b.port, { version, clientId: id('alias-pub') });
    pub.send({
      type: 'publish',
      topic: 'alias/long/topic',
      payload: text('1'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 2 },
    });
    pub.send({
      type: 'publish',
      topic: '',
      payload: text('2'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 2 },
    });
    for (const expected of ['1', '2']) {
      const m = await sub.expect('publish');
      assert.equal(m.topic, 'alias/long/topic');
      assert.equal(str(m.payload), expected);
      assert.equal(m.properties?.topicAlias, undefined);
    }
    sub.end();
    pub.end();
  });

  test('a topic alias above the maximum closes with 0x94; an unknown alias with 0x82', async () => {
    const pub = await connected(b.port, { version, clientId: id('alias-bad') });
    pub.send({
      type: 'publish',
      topic: 't',
      payload: text('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 6 },
    });
    const closing = await pub.expectClose();
    assert.deepEqual(
      closing.map((p) => p.type === 'disconnect' && p.reasonCode),
      [0x94],
    );
    // The reason string says why.
    const reason = closing[0]?.type === 'disconnect' ? closing[0].properties?.reasonString : undefined;
    assert.match(reason ?? '', /topic alias 6/);
    const pub2 = await connected(b.port, { version, clientId: id('alias-unknown') });
    pub2.send({
      type: 'publish',
      topic: '',
      payload: text('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 3 },
    });
    assert.deepEqual(
      (await pub2.expectClose()).map((p) => p.type === 'disconnect' && p.reasonCode),
      [0x82],
    );
  });

  test('outbound topic aliases for a client that allows them: the second message has an empty topic', async () => {
    const sub = await connected(b.port, { version, clientId: id('out-alias'), properties: { topicAliasMaximum: 4 } });
    await subscribe(sub, 'oa/t', 0);
    b.broker.publish({ topic: 'oa/t', payload: 'a' });
    b.broker.publish({ topic: 'oa/t', payload: 'b' });
    const first = await sub.expect('publish');
    const second = await sub.expect('publish');
    assert.equal(first.topic, 'oa/t');
    assert.ok(first.properties?.topicAlias !== undefined);
    assert.equal(second.topic, '');
    assert.equal(second.properties?.topicAlias, first.properties?.topicAlias);
    sub.end();
  });

  test('request/response, user properties, content type and payload format are passed through', async () => {
    const sub = await connected(b.port, { version, clientId: id('props-sub') });
    await subscribe(sub, 'req/t', 1);
    const pub = await connected(b.port, { version, clientId: id('props-pub') });
    const properties = {
      responseTopic: 'resp/t',
      correlationData: text('corr-1'),
      userProperties: [
        ['a', '1'],
        ['a', '2'],
      ] as Array<[string, string]>,
      contentType: 'application/json',
      payloadFormatIndicator: 1 as const,
    };
    pub.send({
      type: 'publish',
      topic: 'req/t',
      payload: text('{}'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
      properties,
    });
    await pub.expect('puback');
    const m = await sub.expect('publish');
    assert.equal(m.properties?.responseTopic, 'resp/t');
    assert.equal(str(m.properties?.correlationData ?? new Uint8Array()), 'corr-1');
    assert.deepEqual(m.properties?.userProperties, properties.userProperties);
    assert.equal(m.properties?.contentType, 'application/json');
    assert.equal(m.properties?.payloadFormatIndicator, 1);
    sub.end();
    pub.end();
  });

  test("a message larger than the client's Maximum Packet Size is not sent to it", async () => {
    const small = await connected(b.port, { version, clientId: id('small'), properties: { maximumPacketSize: 64 } });
    await subscribe(small, 'big/t', 1);
    const before = b.broker.stats.droppedTooLarge;
    b.broker.publish({ topic: 'big/t', payload: 'x'.repeat(200), qos: 1 });
    b.broker.publish({ topic: 'big/t', payload: 'small', qos: 1 });
    const m = await small.expect('publish');
    assert.equal(str(m.payload), 'small');
    assert.equal(b.broker.stats.droppedTooLarge - before, 1);
    small.end();
  });

  test('a packet larger than our Maximum Packet Size closes with 0x95', async () => {
    const pub = await connected(b.port, { version, clientId: id('too-big') });
    pub.send({ type: 'publish', topic: 't', payload: new Uint8Array(3000), qos: 0, retain: false, dup: false });
    assert.deepEqual(
      (await pub.expectClose()).map((p) => p.type === 'disconnect' && p.reasonCode),
      [0x95],
    );
  });

  test('receive maximum inbound: more unreleased QoS 2 messages than allowed closes with 0x93', async () => {
    const pub = await connected(b.port, { version, clientId: id('rm') });
    for (let i = 1; i <= 4; i++) {
      pub.send({ type: 'publish', topic: 'rm/t', payload: text('x'), qos: 2, retain: false, dup: false, packetId: i });
    }
    const packets = await pub.expectClose();
    assert.deepEqual(
      packets.map((p) => p.type),
      ['pubrec', 'pubrec', 'pubrec', 'disconnect'],
    );
    const last = packets[3];
    assert.equal(last?.type === 'disconnect' && last.reasonCode, 0x93);
  });

  test('3.1.1 has no Receive Maximum: more unreleased QoS 2 messages than the 5.0 limit are taken, not closed', async () => {
    const pub = await connected(b.port, { version: 4, clientId: id('rm311') });
    for (let i = 1; i <= 6; i++) {
      pub.send({ type: 'publish', topic: 'rm/t', payload: text('x'), qos: 2, retain: false, dup: false, packetId: i });
    }
    for (let i = 1; i <= 6; i++) assert.equal((await pub.expect('pubrec')).packetId, i);
    for (let i = 1; i <= 6; i++) pub.send({ type: 'pubrel', packetId: i });
    for (let i = 1; i <= 6; i++) assert.equal((await pub.expect('pubcomp')).packetId, i);
    pub.end();
  });

  test('enhanced authentication: challenge, response, CONNACK with the method; re-authentication', async () => {
    const client = await RawClient.open(b.port, 5);
    client.send({
      type: 'connect',
      protocolVersion: 5,
      clientId: id('enh'),
      clean: true,
      keepalive: 60,
      properties: { authenticationMethod: 'CHALLENGE' },
    });
    const challenge = await client.expect('auth');
    assert.equal(challenge.reasonCode, 0x18);
    assert.equal(str(challenge.properties?.authenticationData ?? new Uint8Array()), 'nonce');
    client.send({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'CHALLENGE', authenticationData: text('nonce-signed') },
    });
    const connack = await client.expect('connack');
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, 'CHALLENGE');
    assert.equal(str(connack.properties?.authenticationData ?? new Uint8Array()), 'welcome');
    client.send({ type: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'CHALLENGE' } });
    assert.equal((await client.expect('auth')).reasonCode, 0x18);
    client.send({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'CHALLENGE', authenticationData: text('nonce-signed') },
    });
    assert.equal((await client.expect('auth')).reasonCode, 0x00);
    client.end();
  });

  test('enhanced authentication: a wrong response is refused, an unknown method gets 0x8C', async () => {
    const client = await RawClient.open(b.port, 5);
    client.send({
      type: 'connect',
      protocolVersion: 5,
      clientId: id('enh-bad'),
      clean: true,
      keepalive: 60,
      properties: { authenticationMethod: 'CHALLENGE' },
    });
    await client.expect('auth');
    client.send({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'CHALLENGE', authenticationData: text('wrong') },
    });
    const refused = await client.expectClose();
    assert.equal(refused[0]?.type === 'connack' && refused[0].reasonCode, 0x87);
    const { client: other, connack } = await connectClient(b.port, {
      version,
      clientId: id('enh-unknown'),
      properties: { authenticationMethod: 'NOPE' },
    });
    assert.equal(connack.reasonCode, 0x8c);
    await other.expectClose();
  });
});
