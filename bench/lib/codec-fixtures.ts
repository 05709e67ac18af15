// The PUBLISH fixtures both codec benchmarks use (bench/codec.ts times them, bench/codec-instructions.ts counts
// their instructions), so the two always measure the same packets.
import type { PublishPacket, QoS } from '@otalink/mqtt/codec';

const VIN_ALPHABET = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789'; // VINs never use I, O or Q

/** `count` distinct VINs from a fixed seed: every run and both benchmarks see the same ones. */
export function vins(count: number): string[] {
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const out = new Set<string>();
  while (out.size < count) {
    let vin = '';
    for (let i = 0; i < 17; i++) vin += VIN_ALPHABET[Math.floor(random() * VIN_ALPHABET.length)];
    out.add(vin);
  }
  return [...out];
}

/** `ota/<VIN>/status` over 1000 VINs, or only the first of them. */
export function statusTopics(set: 'distinct' | 'single'): string[] {
  const all = vins(1000).map((vin) => `ota/${vin}/status`);
  return set === 'single' ? [all[0]!] : all;
}

export function payloadOf(bytes: number): Buffer {
  const payload = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) payload[i] = (i * 31 + 7) & 0xff;
  return payload;
}

export interface PublishFixture {
  topics: 'distinct' | 'single';
  qos: QoS;
  payloadBytes: number;
}

/** `count` PUBLISH packets cycling through the topics, sharing one payload, packet ids 1..65535 when QoS > 0. */
export function publishPackets(f: PublishFixture, count: number): PublishPacket[] {
  const topics = statusTopics(f.topics);
  const payload = payloadOf(f.payloadBytes);
  const packets: PublishPacket[] = [];
  for (let i = 0; i < count; i++) {
    packets.push({
      type: 'publish',
      topic: topics[i % topics.length]!,
      payload,
      qos: f.qos,
      retain: false,
      dup: false,
      packetId: f.qos > 0 ? (i % 65535) + 1 : undefined,
      properties: undefined,
    });
  }
  return packets;
}
