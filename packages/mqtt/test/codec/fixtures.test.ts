// The hand-written fixtures through the decoder and the encoder: decode, encode, round trip, any chunking.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Decoder,
  encode,
  encodedLength,
  encodeInto,
  type Packet,
  type ProtocolVersion,
} from '../../src/codec/index.js';
import { concatBytes, plain, prng, randomSplit, toHex } from './bytes.js';
import { type Fixture, fixtures } from './fixtures.js';

function decodeAll(version: ProtocolVersion, chunks: Iterable<Uint8Array>): Packet[] {
  const decoder = new Decoder({ protocolVersion: version });
  const out: Packet[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) out.push(p);
  }
  assert.equal(decoder.buffered, 0, 'no bytes left over');
  return out;
}

function* bytewise(bytes: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

function assertSamePacket(actual: Packet | undefined, expected: Packet, message?: string): void {
  assert.deepStrictEqual(plain(actual), plain(expected), message);
}

test('every packet type appears in both versions (AUTH only in 5.0)', () => {
  const all: Packet['type'][] = [
    'connect',
    'connack',
    'publish',
    'puback',
    'pubrec',
    'pubrel',
    'pubcomp',
    'subscribe',
    'suback',
    'unsubscribe',
    'unsuback',
    'pingreq',
    'pingresp',
    'disconnect',
    'auth',
  ];
  for (const version of [4, 5] as const) {
    const types = new Set(fixtures.filter((f) => f.version === version).map((f) => f.packet.type));
    for (const type of all) {
      if (type === 'auth' && version === 4) assert.ok(!types.has(type));
      else assert.ok(types.has(type), `${type} has a ${version} fixture`);
    }
  }
});

for (const version of [4, 5] as const) {
  describe(`MQTT ${version === 4 ? '3.1.1' : '5.0'} fixtures`, () => {
    for (const f of fixtures.filter((x) => x.version === version)) {
      test(f.name, () => checkFixture(f));
    }

    test('all fixtures concatenated in one chunk decode in order', () => {
      const list = fixtures.filter((x) => x.version === version);
      const packets = decodeAll(version, [concatBytes(...list.map((f) => f.bytes))]);
      assert.equal(packets.length, list.length);
      for (const [i, f] of list.entries()) assertSamePacket(packets[i], f.packet, f.name);
    });

    test('all fixtures concatenated, in random splits, decode in order', () => {
      const list = fixtures.filter((x) => x.version === version);
      const all = concatBytes(...list.map((f) => f.bytes));
      const random = prng(version * 1000);
      for (let round = 0; round < 5; round++) {
        const packets = decodeAll(version, randomSplit(all, random, 40));
        assert.equal(packets.length, list.length);
        for (const [i, f] of list.entries()) assertSamePacket(packets[i], f.packet, f.name);
      }
    });
  });
}

function checkFixture(f: Fixture): void {
  const { version, packet, bytes } = f;

  // Decode the whole packet in one chunk, as a Uint8Array and as a Buffer (what sockets deliver).
  const decoded = decodeAll(version, [bytes]);
  assert.equal(decoded.length, 1);
  assertSamePacket(decoded[0], packet);
  assertSamePacket(decodeAll(version, [Buffer.from(bytes)])[0], packet, 'from a Buffer');

  // Encode: exact bytes, exact length, and encodeInto at an offset touches only its own range.
  assert.equal(toHex(encode(packet, version)), toHex(bytes));
  assert.equal(encodedLength(packet, version), bytes.length);
  const target = new Uint8Array(bytes.length + 7).fill(0xee);
  assert.equal(encodeInto(packet, version, target, 3), 3 + bytes.length);
  assert.equal(toHex(target.subarray(3, 3 + bytes.length)), toHex(bytes));
  assert.deepEqual([...target.subarray(0, 3), ...target.subarray(3 + bytes.length)], new Array(7).fill(0xee));

  // Round trips both ways.
  const reencoded = encode(decoded[0] as Packet, version);
  assert.equal(toHex(reencoded), toHex(bytes));
  assertSamePacket(decodeAll(version, [encode(packet, version)])[0], packet);

  // One byte at a time.
  const byByte = decodeAll(version, bytewise(bytes));
  assert.equal(byByte.length, 1);
  assertSamePacket(byByte[0], packet, 'byte by byte');

  // Twenty seeded random splits.
  for (let seed = 1; seed <= 20; seed++) {
    const pieces = randomSplit(bytes, prng(seed * 7919 + bytes.length));
    const chunks = seed % 2 === 0 ? pieces : pieces.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    const got = decodeAll(version, chunks);
    assert.equal(got.length, 1, `seed ${seed}`);
    assertSamePacket(got[0], packet, `split seed ${seed}: ${chunks.map((c) => c.length).join('+')}`);
  }
}
