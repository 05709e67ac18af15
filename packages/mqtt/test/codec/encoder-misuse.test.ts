// Packets the encoder must refuse: each throws MqttError with a stable code and writes nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  encode,
  encodedLength,
  encodeInto,
  MqttError,
  type MqttErrorCode,
  type Packet,
  type ProtocolVersion,
} from '../../src/codec/index.js';

interface Misuse {
  name: string;
  version: ProtocolVersion;
  /** Deliberately invalid, so typed loosely and cast at the call. */
  packet: Record<string, unknown>;
  code: MqttErrorCode;
}

const payload = new Uint8Array([1]);
const publish = { type: 'publish', topic: 'a/b', payload, qos: 0, retain: false, dup: false };
const connect = { type: 'connect', protocolVersion: 5, clientId: 'c', clean: true, keepalive: 60 };

const cases: Misuse[] = [
  { name: 'QoS 1 without packet id', version: 4, packet: { ...publish, qos: 1 }, code: 'MQTT_ERR_INVALID_PACKET' },
  {
    name: 'QoS 2 with packet id 0',
    version: 5,
    packet: { ...publish, qos: 2, packetId: 0 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'packet id 65536',
    version: 4,
    packet: { ...publish, qos: 1, packetId: 65536 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  { name: 'packet id 1.5', version: 4, packet: { type: 'puback', packetId: 1.5 }, code: 'MQTT_ERR_INVALID_PACKET' },
  { name: 'QoS 3', version: 4, packet: { ...publish, qos: 3, packetId: 1 }, code: 'MQTT_ERR_INVALID_PACKET' },
  { name: 'DUP with QoS 0', version: 5, packet: { ...publish, dup: true }, code: 'MQTT_ERR_INVALID_PACKET' },
  { name: 'topic with +', version: 4, packet: { ...publish, topic: 'a/+' }, code: 'MQTT_ERR_INVALID_TOPIC_NAME' },
  // [MQTT-3.3.2-14]: the server would close the line over it (Mosquitto and ours: 0x82).
  {
    name: 'response topic with a wildcard',
    version: 5,
    packet: { ...publish, properties: { responseTopic: 'replies/#' } },
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
  },
  {
    name: 'will response topic with a wildcard',
    version: 5,
    packet: { ...connect, will: { topic: 'w', payload, qos: 0, retain: false, properties: { responseTopic: 'r/+' } } },
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
  },
  { name: 'topic with #', version: 5, packet: { ...publish, topic: '#' }, code: 'MQTT_ERR_INVALID_TOPIC_NAME' },
  {
    name: 'topic with U+0000',
    version: 4,
    packet: { ...publish, topic: 'a\u0000b' },
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
  },
  {
    name: 'topic with a lone surrogate',
    version: 4,
    packet: { ...publish, topic: 'a\ud800' },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  { name: 'empty topic (3.1.1)', version: 4, packet: { ...publish, topic: '' }, code: 'MQTT_ERR_INVALID_PACKET' },
  {
    name: 'empty topic without alias (5.0)',
    version: 5,
    packet: { ...publish, topic: '' },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'topic longer than 65535 bytes',
    version: 4,
    packet: { ...publish, topic: 'x'.repeat(65536) },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  { name: 'payload not bytes', version: 4, packet: { ...publish, payload: 'hi' }, code: 'MQTT_ERR_INVALID_PACKET' },
  {
    name: 'password without user name (3.1.1)',
    version: 4,
    packet: { ...connect, protocolVersion: 4, password: payload },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'will topic with wildcard',
    version: 4,
    packet: { ...connect, will: { topic: 'a/#', payload, qos: 0, retain: false } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'will QoS 3',
    version: 5,
    packet: { ...connect, will: { topic: 'a', payload, qos: 3, retain: false } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'keep alive 65536',
    version: 4,
    packet: { ...connect, keepalive: 65536 },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'client id longer than 65535 bytes',
    version: 5,
    packet: { ...connect, clientId: 'é'.repeat(32768) },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  { name: 'AUTH in 3.1.1', version: 4, packet: { type: 'auth', reasonCode: 0 }, code: 'MQTT_ERR_INVALID_PACKET' },
  {
    name: 'AUTH continue without method',
    version: 5,
    packet: { type: 'auth', reasonCode: 0x18 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'topic alias in CONNECT',
    version: 5,
    packet: { ...connect, properties: { topicAlias: 1 } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'session expiry in PUBLISH',
    version: 5,
    packet: { ...publish, properties: { sessionExpiryInterval: 1 } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'will delay in CONNECT properties',
    version: 5,
    packet: { ...connect, properties: { willDelayInterval: 1 } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'reason string in SUBSCRIBE',
    version: 5,
    packet: {
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'a', qos: 0 }],
      properties: { reasonString: 'x' },
    },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'unknown property name',
    version: 5,
    packet: { ...publish, properties: { colour: 'red' } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'receive maximum 0',
    version: 5,
    packet: { ...connect, properties: { receiveMaximum: 0 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'receive maximum 65536',
    version: 5,
    packet: { ...connect, properties: { receiveMaximum: 65536 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'topic alias 0',
    version: 5,
    packet: { ...publish, properties: { topicAlias: 0 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'message expiry -1',
    version: 5,
    packet: { ...publish, properties: { messageExpiryInterval: -1 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'message expiry 2^32',
    version: 5,
    packet: { ...publish, properties: { messageExpiryInterval: 2 ** 32 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'payload format indicator 2',
    version: 5,
    packet: { ...publish, properties: { payloadFormatIndicator: 2 } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'subscription identifier 268435456',
    version: 5,
    packet: { ...publish, properties: { subscriptionIdentifiers: [268435456] } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'subscription identifier 0',
    version: 5,
    packet: { ...publish, properties: { subscriptionIdentifiers: [0] } },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'two subscription identifiers in SUBSCRIBE',
    version: 5,
    packet: {
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'a', qos: 0 }],
      properties: { subscriptionIdentifiers: [1, 2] },
    },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'user property not a pair',
    version: 5,
    packet: { ...publish, properties: { userProperties: [['k']] } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'user property value not a string',
    version: 5,
    packet: { ...publish, properties: { userProperties: [['k', 1]] } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  // [MQTT-1.5.4-2]: no MQTT string may hold U+0000; the peer's decoder closes the connection as on a Malformed Packet.
  {
    name: 'client id with U+0000',
    version: 5,
    packet: { ...connect, clientId: 'c\u0000' },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  {
    name: 'user name with U+0000',
    version: 4,
    packet: { ...connect, username: '\u0000' },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  {
    name: 'user property name with U+0000',
    version: 5,
    packet: { ...publish, properties: { userProperties: [['k\u0000', 'v']] } },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  {
    name: 'content type with U+0000',
    version: 5,
    packet: { ...publish, properties: { contentType: 'text/\u0000' } },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  {
    name: 'reason string with U+0000',
    version: 5,
    packet: { type: 'puback', packetId: 1, properties: { reasonString: '\u0000' } },
    code: 'MQTT_ERR_INVALID_UTF8',
  },
  {
    name: 'correlation data not bytes',
    version: 5,
    packet: { ...publish, properties: { correlationData: 'x' } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'PUBACK reason code 256',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 256 },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'CONNACK reason code -1',
    version: 4,
    packet: { type: 'connack', sessionPresent: false, reasonCode: -1 },
    code: 'MQTT_ERR_VALUE_OUT_OF_RANGE',
  },
  {
    name: 'CONNACK return code 6 (3.1.1)',
    version: 4,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 6 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'CONNACK reason 0x01 (5.0)',
    version: 5,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 1 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'CONNACK session present with a refusal',
    version: 4,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 5 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'PUBACK reason 0xa2',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 0xa2 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'PUBREL reason 0x10',
    version: 5,
    packet: { type: 'pubrel', packetId: 1, reasonCode: 0x10 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBACK return code 0x87 (3.1.1)',
    version: 4,
    packet: { type: 'suback', packetId: 1, reasonCodes: [0x87] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBACK reason 0x03 (5.0)',
    version: 5,
    packet: { type: 'suback', packetId: 1, reasonCodes: [0, 3] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'UNSUBACK reason 0x05',
    version: 5,
    packet: { type: 'unsuback', packetId: 1, reasonCodes: [5] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'DISCONNECT reason 0x01',
    version: 5,
    packet: { type: 'disconnect', reasonCode: 1 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'AUTH reason 0x11',
    version: 5,
    packet: { type: 'auth', reasonCode: 0x11, properties: { authenticationMethod: 'm' } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'authentication data without method in CONNECT',
    version: 5,
    packet: { ...connect, properties: { authenticationData: payload } },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBSCRIBE without subscriptions',
    version: 4,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBSCRIBE with empty filter',
    version: 4,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: '', qos: 0 }] },
    code: 'MQTT_ERR_EMPTY_TOPIC_FILTER',
  },
  {
    name: 'SUBSCRIBE filter a+/b',
    version: 5,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a+/b', qos: 0 }] },
    code: 'MQTT_ERR_INVALID_TOPIC_FILTER',
  },
  {
    name: 'SUBSCRIBE QoS 3',
    version: 4,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a', qos: 3 }] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBSCRIBE retain handling 3',
    version: 5,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a', qos: 0, retainHandling: 3 }] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBSCRIBE no local on a $share filter',
    version: 5,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: '$share/g/a', qos: 0, noLocal: true }] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBSCRIBE without packet id',
    version: 4,
    packet: { type: 'subscribe', subscriptions: [{ topicFilter: 'a', qos: 0 }] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'UNSUBSCRIBE without filters',
    version: 5,
    packet: { type: 'unsubscribe', packetId: 1, topicFilters: [] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'SUBACK without reason codes',
    version: 4,
    packet: { type: 'suback', packetId: 1, reasonCodes: [] },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  {
    name: 'UNSUBACK without reason codes (5.0)',
    version: 5,
    packet: { type: 'unsuback', packetId: 1 },
    code: 'MQTT_ERR_INVALID_PACKET',
  },
  { name: 'unknown packet type', version: 4, packet: { type: 'hello' }, code: 'MQTT_ERR_INVALID_PACKET' },
];

describe('encoder misuse', () => {
  for (const c of cases) {
    test(`${c.version === 4 ? '3.1.1' : '5.0'}: ${c.name}`, () => {
      const packet = c.packet as unknown as Packet;
      const matches = (e: unknown) => {
        assert.ok(e instanceof MqttError, `an MqttError, got ${String(e)}`);
        assert.equal(e.code, c.code, e.message);
        return true;
      };
      assert.throws(() => encode(packet, c.version), matches);
      assert.throws(() => encodedLength(packet, c.version), matches);
      const target = new Uint8Array(300_000).fill(0xee);
      assert.throws(() => encodeInto(packet, c.version, target, 5), matches);
      assert.ok(
        target.every((b) => b === 0xee),
        'encodeInto wrote nothing',
      );
    });
  }

  test('encodeInto refuses a buffer too small and writes nothing', () => {
    const packet: Packet = {
      type: 'publish',
      topic: 'a/b',
      payload: new Uint8Array(10),
      qos: 0,
      retain: false,
      dup: false,
    };
    const target = new Uint8Array(20).fill(0xee); // the packet takes 17 bytes: 3 would fit, offset 4 does not
    assert.throws(() => encodeInto(packet, 4, target, 4), { code: 'MQTT_ERR_VALUE_OUT_OF_RANGE' });
    assert.ok(target.every((b) => b === 0xee));
    const sub: Packet = { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a/b', qos: 1 }] };
    assert.throws(() => encodeInto(sub, 5, target, 12), { code: 'MQTT_ERR_VALUE_OUT_OF_RANGE' });
    assert.ok(target.every((b) => b === 0xee));
    assert.equal(encodeInto(packet, 4, target, 3), 20);
  });
});
