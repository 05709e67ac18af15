// Encode a PUBLISH once per distinct wire form and reuse the bytes for every subscriber that gets that form. For
// QoS 1/2 only the 2-byte packet id differs: the template is written with id 0 and `idOffset` says where to patch.
import { encode, type ProtocolVersion, type PublishPacket, type PublishProperties, type QoS } from '@otalink/mqtt';
import { type Message, remainingExpirySeconds } from './message.js';

export interface EncodedPublish {
  bytes: Uint8Array;
  /** Offset of the packet id in `bytes`, -1 for QoS 0. */
  idOffset: number;
}

/** Builds the PUBLISH packet object for one delivery form. */
export function publishPacket(
  message: Message,
  version: ProtocolVersion,
  qos: QoS,
  retain: boolean,
  subscriptionIds: number[] | undefined,
  now: number,
  packetId: number | undefined,
  dup: boolean,
): PublishPacket {
  const packet: PublishPacket = {
    type: 'publish',
    topic: message.topic,
    payload: message.payload,
    qos,
    retain,
    dup,
    packetId: qos > 0 ? (packetId ?? 1) : undefined,
  };
  if (version === 5) {
    const expiry = remainingExpirySeconds(message, now);
    if (message.properties !== undefined || expiry !== undefined || subscriptionIds !== undefined) {
      const properties: PublishProperties = { ...message.properties };
      if (expiry !== undefined) properties.messageExpiryInterval = expiry;
      if (subscriptionIds !== undefined && subscriptionIds.length > 0) {
        properties.subscriptionIdentifiers = subscriptionIds;
      }
      packet.properties = properties;
    }
  }
  return packet;
}

/** Where the packet id sits in an encoded PUBLISH: after the fixed header and the topic name. */
export function packetIdOffset(bytes: Uint8Array): number {
  let p = 1;
  while ((bytes[p]! & 0x80) !== 0) p++;
  p++;
  const topicLength = (bytes[p]! << 8) | bytes[p + 1]!;
  return p + 2 + topicLength;
}

/** One fan-out's template cache: at most a handful of forms per message (version x QoS x retain x ids). */
export class PublishTemplates {
  readonly #message: Message;
  readonly #now: number;
  readonly #forms = new Map<string, EncodedPublish>();

  constructor(message: Message, now: number) {
    this.#message = message;
    this.#now = now;
  }

  get(version: ProtocolVersion, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): EncodedPublish {
    const key =
      subscriptionIds === undefined || version === 4
        ? `${version}${qos}${retain ? 1 : 0}`
        : `${version}${qos}${retain ? 1 : 0}:${subscriptionIds.join(',')}`;
    let form = this.#forms.get(key);
    if (form === undefined) {
      const packet = publishPacket(this.#message, version, qos, retain, subscriptionIds, this.#now, 1, false);
      const bytes = encode(packet, version);
      form = { bytes, idOffset: qos > 0 ? packetIdOffset(bytes) : -1 };
      this.#forms.set(key, form);
    }
    return form;
  }
}
