// Valid but unusual input the fixtures do not show: the decoder must accept it and keep it exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder, encode, type Packet, type ProtocolVersion } from '../../src/codec/index.js';
import { hex, plain, toHex } from './bytes.js';

function decodeOne(bytes: Uint8Array, version: ProtocolVersion): Packet | undefined {
  const decoder = new Decoder({ protocolVersion: version });
  decoder.push(bytes);
  const packet = decoder.next();
  assert.equal(decoder.buffered, 0);
  return packet;
}

test('EF BB BF in a topic is U+FEFF and is kept, not stripped [MQTT-1.5.4-3]', () => {
  const bytes = hex`30 06 00 04 ef bb bf "a"`;
  for (const chunk of [bytes, Buffer.from(bytes)]) {
    const packet = decodeOne(chunk, 4);
    assert.ok(packet?.type === 'publish');
    assert.equal(packet.topic, '\ufeffa');
    assert.equal(toHex(encode(packet, 4)), toHex(bytes));
  }
});

test('a 5.0 CONNECT may carry a password without a user name (3.1.2.9)', () => {
  const bytes = hex`10 13 | 00 04 "MQTT" 05 40 00 3c | 00 | 00 02 "c1" | 00 02 "pw"`;
  const packet = decodeOne(bytes, 5);
  assert.ok(packet?.type === 'connect');
  assert.equal(packet.username, undefined);
  assert.deepEqual(plain(packet.password), new TextEncoder().encode('pw'));
  assert.equal(toHex(encode(packet, 5)), toHex(bytes));
});

test('user properties interleaved with other properties keep their order', () => {
  const bytes = hex`
    30 1b 00 01 "t"              # 27 = 3 + 1 + 23
    17                           # property length 23 = 7 + 2 + 7 + 7
    26 00 01 "b" 00 01 "1"   # user property b=1
    01 01                    # payload format indicator
    26 00 01 "a" 00 01 "2"   # user property a=2
    26 00 01 "b" 00 01 "3"   # user property b=3 (the name repeats)
  `;
  const packet = decodeOne(bytes, 5);
  assert.ok(packet?.type === 'publish');
  assert.deepEqual(packet.properties?.userProperties, [
    ['b', '1'],
    ['a', '2'],
    ['b', '3'],
  ]);
  assert.equal(packet.properties?.payloadFormatIndicator, 1);
});

test('a 3.1.1 topic of 65535 bytes and a payload of 0 bytes', () => {
  const topic = 'x'.repeat(65535);
  const packet: Packet = { type: 'publish', topic, payload: new Uint8Array(0), qos: 0, retain: false, dup: false };
  const bytes = encode(packet, 4);
  assert.equal(toHex(bytes.subarray(0, 6)), '30 81 80 04 ff ff'); // 65537 = 0x01 + 0x00 * 128 + 0x04 * 16384
  assert.deepEqual(plain(decodeOne(bytes, 4)), plain(packet));
});

test('remaining length 127 takes one byte and 128 takes two', () => {
  const one = encode(
    { type: 'publish', topic: 'a', payload: new Uint8Array(124), qos: 0, retain: false, dup: false },
    4,
  );
  assert.equal(toHex(one.subarray(0, 2)), '30 7f');
  const two = encode(
    { type: 'publish', topic: 'a', payload: new Uint8Array(125), qos: 0, retain: false, dup: false },
    4,
  );
  assert.equal(toHex(two.subarray(0, 3)), '30 80 01');
  assert.equal(decodeOne(two, 4)?.type, 'publish');
});

test('decoded payloads are views: a packet inside one chunk shares its bytes', () => {
  const chunk = hex`30 07 00 03 "a/b" "hi"`;
  const packet = decodeOne(chunk, 4);
  assert.ok(packet?.type === 'publish');
  assert.equal(packet.payload.buffer, chunk.buffer);
});
