// Forwarding a received PUBLISH frame unchanged: whenever forwardableFrame accepts a frame, the bytes a subscriber
// gets must be exactly what encoding the delivery would give; frames that differ in any way must be refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Decoder, encode, type ProtocolVersion, type PublishPacket, type QoS } from '@otalink/mqtt';
import type { Message } from '../src/message.js';
import { forwardableFrame, PublishTemplates, publishPacket } from '../src/publish-encoding.js';

/** What the broker's decoder returns for `packet` sent by a client, and the frame it reports. */
function received(packet: PublishPacket, version: ProtocolVersion): { decoded: PublishPacket; frame: Uint8Array } {
  const decoder = new Decoder({ role: 'server' });
  decoder.push(
    encode({ type: 'connect', protocolVersion: version, clientId: 'c', clean: true, keepalive: 0 }, version),
  );
  decoder.next();
  decoder.push(encode(packet, version));
  const decoded = decoder.next() as PublishPacket;
  return { decoded, frame: decoder.lastFrame() };
}

/** The bytes a subscriber gets from a form: senders patch their own packet id in (here 1, as encoded). */
function sent(form: { bytes: Uint8Array; idOffset: number }): Buffer {
  const bytes = Buffer.from(form.bytes);
  if (form.idOffset >= 0) bytes.writeUInt16BE(1, form.idOffset);
  return bytes;
}

function messageOf(packet: PublishPacket): Message {
  return {
    topic: packet.topic,
    payload: packet.payload,
    qos: packet.qos,
    retain: packet.retain,
    properties: undefined,
    expiresAt: 0,
    origin: 'c',
  };
}

describe('forwarding received PUBLISH frames', () => {
  for (const version of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      // 127/128 and 16 383/16 384 bytes of remaining length change the varint's size.
      for (const payloadBytes of [0, 16, 110, 126, 16_360, 16_380]) {
        for (const topic of ['a/b', 'sensor/ünïcödé/温度']) {
          test(`v${version} QoS ${qos}, ${payloadBytes} B payload, topic ${topic}`, () => {
            const packet: PublishPacket = {
              type: 'publish',
              topic,
              payload: new Uint8Array(payloadBytes).fill(7),
              qos,
              retain: false,
              dup: false,
              packetId: qos > 0 ? 0x1234 : undefined,
            };
            const { decoded, frame } = received(packet, version);
            assert.ok(forwardableFrame(frame, version, decoded.properties !== undefined));
            const message = messageOf(decoded);
            const templates = new PublishTemplates(message, 0, frame, version);
            for (const outQos of [0, 1, 2] as QoS[]) {
              for (const retain of [false, true]) {
                const form = templates.get(version, outQos, retain, undefined);
                const expected = encode(
                  publishPacket(message, version, outQos, retain, undefined, 0, 1, false),
                  version,
                );
                assert.deepEqual(sent(form), Buffer.from(expected), `QoS ${outQos} retain ${retain}`);
              }
            }
            // Another version never gets this version's frame.
            const other = version === 4 ? 5 : 4;
            const otherForm = templates.get(other, qos, false, undefined);
            const otherExpected = encode(publishPacket(message, other, qos, false, undefined, 0, 1, false), other);
            assert.deepEqual(sent(otherForm), Buffer.from(otherExpected));
          });
        }
      }
    }
  }

  test('frames with RETAIN, DUP, properties or a longer-than-needed length are not forwarded', () => {
    const base: PublishPacket = {
      type: 'publish',
      topic: 't',
      payload: new Uint8Array([1]),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
    };
    const retained = received({ ...base, retain: true }, 4);
    assert.equal(forwardableFrame(retained.frame, 4, false), false);
    const dup = received({ ...base, dup: true }, 4);
    assert.equal(forwardableFrame(dup.frame, 4, false), false);
    const withProperties = received({ ...base, properties: { contentType: 'x' } }, 5);
    assert.equal(forwardableFrame(withProperties.frame, 5, withProperties.decoded.properties !== undefined), false);
    // Remaining length 6 written in two bytes (0x86 0x00): valid to decode, but not what we would send.
    const long = Uint8Array.from([0x32, 0x86, 0x00, 0x00, 0x01, 0x74, 0x00, 0x01, 0x01]);
    assert.equal(forwardableFrame(long, 4, false), false);
  });
});
