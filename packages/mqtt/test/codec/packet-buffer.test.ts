// Encoded packets cut from the shared slab and decoded payload views: Buffers on Node, exact, never overlapping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decoder, encode, type PublishPacket } from '../../src/codec/index.js';

function publish(i: number, payloadBytes: number): PublishPacket {
  return {
    type: 'publish',
    topic: `t/${i}`,
    payload: Buffer.alloc(payloadBytes, i & 0xff),
    qos: 1,
    retain: false,
    dup: false,
    packetId: i + 1,
    properties: undefined,
  };
}

test('encode returns a separate Buffer per packet, across slab boundaries', () => {
  // Sizes from 9 bytes to above the slab cut-off, enough packets to fill several slabs.
  const sizes = [0, 1, 7, 100, 1000, 3000, 5000];
  const encoded: { bytes: Uint8Array; i: number; size: number }[] = [];
  for (let i = 0; i < 300; i++) {
    const size = sizes[i % sizes.length]!;
    const bytes = encode(publish(i, size), 4);
    assert.ok(Buffer.isBuffer(bytes), 'a Buffer on Node');
    encoded.push({ bytes, i, size });
  }
  // Every packet still decodes to what was encoded: no later packet wrote over an earlier one.
  for (const { bytes, i, size } of encoded) {
    const decoder = new Decoder({ protocolVersion: 4 });
    decoder.push(bytes);
    const packet = decoder.next() as PublishPacket;
    assert.equal(packet.topic, `t/${i}`);
    assert.equal(packet.packetId, i + 1);
    assert.deepEqual(packet.payload, Buffer.alloc(size, i & 0xff));
    assert.equal(decoder.buffered, 0);
  }
});

test('decoded payloads are Buffer views of the received chunk, for each of several chunks', () => {
  const decoder = new Decoder({ protocolVersion: 5 });
  for (let round = 0; round < 3; round++) {
    const chunk = Buffer.concat([encode(publish(round, 20), 5), encode(publish(round + 10, 30), 5)]);
    decoder.push(chunk);
    const first = decoder.next() as PublishPacket;
    const second = decoder.next() as PublishPacket;
    for (const [packet, size, fill] of [
      [first, 20, round],
      [second, 30, round + 10],
    ] as const) {
      assert.ok(Buffer.isBuffer(packet.payload));
      assert.equal(packet.payload.buffer, chunk.buffer, 'zero copy');
      assert.deepEqual(packet.payload, Buffer.alloc(size, fill));
    }
    assert.equal(second.payload.byteOffset, chunk.byteOffset + chunk.length - 30);
  }
  // A plain Uint8Array chunk gives plain Uint8Array views, as before.
  const plain = new Uint8Array(encode(publish(1, 5), 5));
  decoder.push(plain);
  const packet = decoder.next() as PublishPacket;
  assert.ok(!Buffer.isBuffer(packet.payload));
  assert.equal(packet.payload.buffer, plain.buffer);
});
