// Pre-encoded MQTT 3.1.1 frames, made once with our codec so the generator spends no time encoding under load:
// a PUBLISH is a template that is copied (and, for QoS 1, has its 2-byte packet id patched) per message.
import { encode, type QoS } from '@otalink/mqtt/codec';

const VERSION = 4;

export function connectFrame(clientId: string): Buffer {
  // keepalive 0: no PINGREQ traffic of ours in any measurement.
  return Buffer.from(
    encode({ type: 'connect', protocolVersion: VERSION, clientId, clean: true, keepalive: 0 }, VERSION),
  );
}

export function subscribeFrame(topicFilter: string, qos: QoS, packetId = 1): Buffer {
  return Buffer.from(encode({ type: 'subscribe', packetId, subscriptions: [{ topicFilter, qos }] }, VERSION));
}

export const DISCONNECT = Buffer.from(encode({ type: 'disconnect' }, VERSION));

export interface PublishTemplate {
  frame: Buffer;
  /** Where the 2-byte packet id sits in `frame`; -1 at QoS 0. */
  packetIdOffset: number;
  /** Where the payload starts in `frame`. */
  payloadOffset: number;
}

export function publishTemplate(topic: string, qos: QoS, payloadBytes: number): PublishTemplate {
  const payload = new Uint8Array(payloadBytes).fill(0x61);
  const frame = Buffer.from(
    encode(
      { type: 'publish', topic, payload, qos, retain: false, dup: false, packetId: qos > 0 ? 1 : undefined },
      VERSION,
    ),
  );
  const payloadOffset = frame.length - payloadBytes;
  return { frame, packetIdOffset: qos > 0 ? payloadOffset - 2 : -1, payloadOffset };
}

/** PUBACK for packet id `packetId`, written at `offset` of `out` (4 bytes). */
export function writePuback(out: Buffer, offset: number, packetId: number): void {
  out[offset] = 0x40;
  out[offset + 1] = 2;
  out[offset + 2] = packetId >> 8;
  out[offset + 3] = packetId & 0xff;
}

/** Checked once against our encoder so the hand-written PUBACK above cannot drift from the codec. */
export function checkPubackLayout(): void {
  const reference = Buffer.from(encode({ type: 'puback', packetId: 0x1234 }, VERSION));
  const mine = Buffer.alloc(4);
  writePuback(mine, 0, 0x1234);
  if (!reference.equals(mine)) throw new Error(`PUBACK layout mismatch: ${reference.toString('hex')}`);
}
