// Valid but unusual input the fixtures do not show: the decoder must accept it and keep it exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  allowedReasonCodes,
  Decoder,
  decodePacket,
  encode,
  MqttError,
  type Packet,
  PROPERTY_DEFS,
  type ProtocolVersion,
  propertyById,
  reasonName,
} from '../../src/codec/index.js';
import { hex, plain, prng, toHex } from './bytes.js';

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

test('decodePacket takes exactly one packet', () => {
  assert.deepEqual(plain(decodePacket(hex`c0 00`, { protocolVersion: 4 })), { type: 'pingreq' });
  assert.throws(() => decodePacket(hex`c0 00 c0`, { protocolVersion: 4 }), { code: 'MQTT_ERR_LENGTH_MISMATCH' });
  assert.throws(() => decodePacket(hex`30 05 00 03 "a"`, { protocolVersion: 4 }), { code: 'MQTT_ERR_LENGTH_MISMATCH' });
});

test('a decoder with neither role nor version still wants CONNECT first', () => {
  const decoder = new Decoder();
  decoder.push(hex`c0 00`);
  assert.throws(() => decoder.next(), { code: 'MQTT_ERR_UNEXPECTED_PACKET', reasonCode: 0x82 });
});

test('reasonName names codes per version and packet', () => {
  assert.equal(reasonName(0x87), '0x87 Not authorized');
  assert.equal(reasonName(0x00, 5, 'disconnect'), '0x00 Normal disconnection');
  assert.equal(reasonName(0x05, 4, 'connack'), '0x05 Connection Refused, not authorized');
  assert.equal(reasonName(0x03), '0x03 Unknown reason code');
});

test('the 5.0 reason code tables match the specification', () => {
  // 5.0 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1.
  const expected: Record<keyof typeof allowedReasonCodes, number[]> = {
    connack: [
      0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b,
      0x9c, 0x9d, 0x9f,
    ],
    puback: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
    pubrec: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
    pubrel: [0x00, 0x92],
    pubcomp: [0x00, 0x92],
    suback: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
    unsuback: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
    disconnect: [
      0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
      0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
    ],
    auth: [0x00, 0x18, 0x19],
  };
  for (const [type, codes] of Object.entries(expected)) {
    assert.deepEqual(
      [...allowedReasonCodes[type as keyof typeof allowedReasonCodes]].sort((a, b) => a - b),
      codes,
      type,
    );
  }
});

test('the property table matches 5.0 2.2.2.2', () => {
  // id: [name, packets]; 'will' is the will properties inside CONNECT.
  const acks = ['connack', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'disconnect', 'auth'];
  const all = ['connect', 'will', 'publish', 'subscribe', 'unsubscribe', ...acks];
  const table: Record<number, [string, string[]]> = {
    1: ['payloadFormatIndicator', ['publish', 'will']],
    2: ['messageExpiryInterval', ['publish', 'will']],
    3: ['contentType', ['publish', 'will']],
    8: ['responseTopic', ['publish', 'will']],
    9: ['correlationData', ['publish', 'will']],
    11: ['subscriptionIdentifiers', ['publish', 'subscribe']],
    17: ['sessionExpiryInterval', ['connect', 'connack', 'disconnect']],
    18: ['assignedClientIdentifier', ['connack']],
    19: ['serverKeepAlive', ['connack']],
    21: ['authenticationMethod', ['connect', 'connack', 'auth']],
    22: ['authenticationData', ['connect', 'connack', 'auth']],
    23: ['requestProblemInformation', ['connect']],
    24: ['willDelayInterval', ['will']],
    25: ['requestResponseInformation', ['connect']],
    26: ['responseInformation', ['connack']],
    28: ['serverReference', ['connack', 'disconnect']],
    31: ['reasonString', acks],
    33: ['receiveMaximum', ['connect', 'connack']],
    34: ['topicAliasMaximum', ['connect', 'connack']],
    35: ['topicAlias', ['publish']],
    36: ['maximumQoS', ['connack']],
    37: ['retainAvailable', ['connack']],
    38: ['userProperties', all],
    39: ['maximumPacketSize', ['connect', 'connack']],
    40: ['wildcardSubscriptionAvailable', ['connack']],
    41: ['subscriptionIdentifierAvailable', ['connack']],
    42: ['sharedSubscriptionAvailable', ['connack']],
  };
  assert.equal(PROPERTY_DEFS.length, Object.keys(table).length);
  for (const [id, [name]] of Object.entries(table)) {
    const def = propertyById(Number(id));
    assert.ok(def, `property 0x${Number(id).toString(16)}`);
    assert.equal(def.name, name);
  }
  // Placement, checked through the decoder: each property id in each 5.0 packet's property block.
  for (const [id, [name, packets]] of Object.entries(table)) {
    for (const context of all) {
      const allowed = packets.includes(context);
      const error = placementError(Number(id), context);
      assert.equal(error === 'MQTT_ERR_PROPERTY_NOT_ALLOWED', !allowed, `${name} in ${context}: ${error}`);
    }
  }
});

/** Decodes a 5.0 packet of type `context` whose property block holds one valid value of property `id`. */
function placementError(id: number, context: string): string | undefined {
  const def = propertyById(id);
  assert.ok(def);
  const value: Record<string, number[]> = {
    bool: [1],
    byte: [1],
    u16: [0, 1],
    u32: [0, 0, 0, 1],
    varint: [1],
    utf8: [0, 1, 0x61],
    binary: [0, 1, 0xff],
    pair: [0, 1, 0x61, 0, 1, 0x62],
  };
  const prop = [id, ...(value[def.kind] ?? [])];
  const block = [prop.length, ...prop];
  let body: number[];
  let first: number;
  switch (context) {
    case 'connect':
      first = 0x10;
      body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 2, 0, 60, ...block, 0, 1, 0x63];
      break;
    case 'will':
      first = 0x10;
      body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 6, 0, 60, 0, 0, 1, 0x63, ...block, 0, 1, 0x74, 0, 0];
      break;
    case 'publish':
      first = 0x30;
      body = [0, 1, 0x74, ...block];
      break;
    case 'subscribe':
      first = 0x82;
      body = [0, 1, ...block, 0, 1, 0x74, 0];
      break;
    case 'unsubscribe':
      first = 0xa2;
      body = [0, 1, ...block, 0, 1, 0x74];
      break;
    case 'connack':
      first = 0x20;
      body = [0, 0, ...block];
      break;
    case 'suback':
    case 'unsuback':
      first = context === 'suback' ? 0x90 : 0xb0;
      body = [0, 1, ...block, 0];
      break;
    case 'disconnect':
      first = 0xe0;
      body = [0, ...block];
      break;
    case 'auth':
      // AUTH needs its method; add one unless the property under test is the method.
      first = 0xf0;
      body = id === 0x15 ? [0x18, ...block] : [0x18, prop.length + 5, ...prop, 0x15, 0, 2, 0x6d, 0x6d];
      break;
    default: {
      const type = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 }[context];
      assert.ok(type !== undefined, context);
      first = type;
      body = [0, 1, 0, ...block];
    }
  }
  const decoder = new Decoder({ protocolVersion: 5 });
  decoder.push(Uint8Array.from([first, body.length, ...body]));
  try {
    assert.ok(decoder.next(), `${context} decodes`);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof MqttError, String(error));
    return error.code;
  }
}

test('a drained decoder lets go of the last chunk; payloads handed out and later split packets are unaffected', () => {
  const decoder = new Decoder({ protocolVersion: 4, role: 'client' });
  const first = encode(
    { type: 'publish', topic: 'a/b', payload: new Uint8Array([1, 2, 3]), qos: 0, retain: false, dup: false },
    4,
  );
  const second = encode(
    { type: 'publish', topic: 'c', payload: new Uint8Array([9]), qos: 0, retain: false, dup: false },
    4,
  );
  decoder.push(Buffer.concat([first, second]));
  const one = decoder.next();
  assert.deepEqual(toHex(decoder.lastFrame()), toHex(first));
  const two = decoder.next();
  assert.deepEqual(toHex(decoder.lastFrame()), toHex(second));
  assert.equal(decoder.next(), undefined);
  // Nothing is left to return: the chunk is no longer referenced (an idle connection does not keep it alive).
  assert.equal(decoder.lastFrame().length, 0);
  assert.ok(one?.type === 'publish' && two?.type === 'publish');
  assert.deepEqual([...one.payload], [1, 2, 3]);
  assert.deepEqual([...two.payload], [9]);
  decoder.push(first.subarray(0, 3));
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.buffered, 3);
  decoder.push(first.subarray(3));
  const again = decoder.next();
  assert.ok(again?.type === 'publish');
  assert.equal(again.topic, 'a/b');
  assert.deepEqual([...again.payload], [1, 2, 3]);
});

test('restart drops what is buffered and takes the stream state given: version, CONNECT seen, packet size limit', () => {
  const decoder = new Decoder({ role: 'server' });
  const connect5 = encode({ type: 'connect', protocolVersion: 5, clientId: 'a', clean: true, keepalive: 0 }, 5);
  const publish = (version: ProtocolVersion) =>
    encode(
      {
        type: 'publish',
        topic: 't',
        payload: new Uint8Array([7]),
        qos: 0,
        retain: false,
        dup: false,
        properties: version === 5 ? { contentType: 'x' } : undefined,
      },
      version,
    );
  // Half a packet of one stream, then another stream that has seen a 5.0 CONNECT.
  decoder.push(connect5.subarray(0, 5));
  assert.equal(decoder.next(), undefined);
  decoder.restart(5, true, 1000);
  assert.equal(decoder.buffered, 0);
  decoder.push(publish(5));
  const five = decoder.next();
  assert.ok(five?.type === 'publish');
  assert.equal(five.properties?.contentType, 'x');
  assert.throws(() => {
    decoder.push(connect5);
    decoder.next();
  }, /CONNECT only once/);
  // A stream that has not: CONNECT first, and once; then the limit given holds.
  decoder.restart(undefined, false, 10);
  assert.equal(decoder.connectSeen, false);
  decoder.push(publish(4));
  assert.throws(() => decoder.next(), /first packet must be CONNECT/);
  decoder.restart(undefined, false, 100);
  decoder.push(connect5);
  assert.equal(decoder.next()?.type, 'connect');
  assert.equal(decoder.connectSeen, true);
  assert.equal(decoder.protocolVersion, 5);
  decoder.restart(4, true, 5);
  decoder.push(publish(4));
  assert.throws(() => decoder.next(), /exceeds the maximum packet size of 5/);
  // Only decoding and restart say whether CONNECT was seen.
  assert.throws(() => {
    (decoder as { connectSeen: boolean }).connectSeen = false;
  }, TypeError);
  assert.equal(decoder.connectSeen, true);
});

test('frameOwnsMemory: only a Buffer of its own holding the one packet, whole, owns its memory', () => {
  const frame = encode(
    { type: 'publish', topic: 't', payload: new Uint8Array([1, 2]), qos: 1, packetId: 5, retain: false, dup: false },
    4,
  );
  const owns = (chunks: Uint8Array[]): boolean[] => {
    const decoder = new Decoder({ protocolVersion: 4 });
    const seen: boolean[] = [];
    for (const chunk of chunks) {
      decoder.push(chunk);
      while (decoder.next() !== undefined) seen.push(decoder.frameOwnsMemory());
    }
    return seen;
  };
  const own = (bytes: Uint8Array): Buffer => {
    const buf = Buffer.allocUnsafeSlow(bytes.length);
    buf.set(bytes);
    return buf;
  };
  // A read of its own that carried the packet alone.
  assert.deepEqual(owns([own(frame)]), [true]);
  // Two packets in one read: each shares the chunk with the other.
  assert.deepEqual(owns([own(Buffer.concat([frame, frame]))]), [false, false]);
  // A slice of a larger (pooled) ArrayBuffer, and a plain Uint8Array: views would pin more than the packet.
  const pooled = Buffer.from(frame);
  assert.ok(pooled.buffer.byteLength > pooled.length);
  assert.deepEqual(owns([pooled]), [false]);
  assert.deepEqual(owns([new Uint8Array(frame)]), [false]);
  // Split across reads: assembled into a buffer of the decoder's, which it does not take for a read of its own.
  assert.deepEqual(owns([own(frame.subarray(0, 3)), own(frame.subarray(3))]), [false]);
});

test('a PUBLISH topic after a plain one is still scanned: wildcards refused, non-ASCII measured in UTF-8', () => {
  const publish = (topic: string): Packet => ({
    type: 'publish',
    topic,
    payload: new Uint8Array(0),
    qos: 0,
    retain: false,
    dup: false,
  });
  const plainLength = encode(publish('t/a'), 4).length;
  assert.equal(encode(publish('t/a'), 4).length, plainLength);
  assert.throws(() => encode(publish('t/#'), 4), { code: 'MQTT_ERR_INVALID_TOPIC_NAME' });
  assert.throws(() => encode(publish('t/+'), 5), { code: 'MQTT_ERR_INVALID_TOPIC_NAME' });
  encode(publish('t/a'), 4);
  // 't/ä' is three UTF-16 code units and four UTF-8 bytes: its length field says 4, its packet is one byte longer.
  const umlaut = encode(publish('t/ä'), 4);
  assert.equal(umlaut.length, plainLength + 1);
  assert.deepEqual(Array.from(umlaut.subarray(2, 4)), [0, 4]);
});

test('a header claiming a large packet reserves memory only as its bytes arrive', () => {
  // No maximum packet size (a client that set none): the header claims 268 435 455 bytes of body.
  const decoders: Decoder[] = [];
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 8; i++) {
    const decoder = new Decoder({ protocolVersion: 5, role: 'client' });
    decoder.push(hex`30 ff ff ff 7f 00 01 "a" 00`);
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.buffered, 9);
    decoders.push(decoder);
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 8 * 1024 * 1024, `8 headers of 9 bytes reserved ${grown} bytes`);
});

test('a large packet split into chunks of any size is assembled exactly, with the packet after it', () => {
  const random = prng(7);
  for (const size of [64 * 1024 - 7, 64 * 1024 + 1, 300_000, 1_100_000]) {
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
    const big = encode({ type: 'publish', topic: 'a/b', payload, qos: 1, packetId: 9, retain: false, dup: false }, 5);
    const next = encode({ type: 'pingresp' }, 5);
    const stream = new Uint8Array(big.length + next.length);
    stream.set(big);
    stream.set(next, big.length);
    for (const maxChunk of [1 + (size >> 4), 64 * 1024, size]) {
      const decoder = new Decoder({ protocolVersion: 5, role: 'client' });
      const packets: Packet[] = [];
      for (let at = 0; at < stream.length; ) {
        // Mostly large reads, some tiny: the doubling path and the byte-by-byte path both run.
        const n = Math.min(
          stream.length - at,
          random() < 0.2 ? 1 + Math.floor(random() * 3) : 1 + Math.floor(random() * maxChunk),
        );
        decoder.push(stream.slice(at, at + n));
        at += n;
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) packets.push(p);
      }
      assert.deepEqual(
        packets.map((p) => p.type),
        ['publish', 'pingresp'],
      );
      const got = packets[0]!;
      assert.ok(got.type === 'publish');
      assert.equal(got.payload.length, size);
      assert.ok(Buffer.from(got.payload).equals(Buffer.from(payload)), `payload of ${size} bytes intact`);
      assert.equal(decoder.buffered, 0);
    }
  }
});
