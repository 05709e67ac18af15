// Encode a PUBLISH once per distinct wire form and reuse the bytes for every subscriber that gets that form. For
// QoS 1/2 only the 2-byte packet id differs: the template is written with id 0 and `idOffset` says where to patch.
import {
  encode,
  type ProtocolVersion,
  type PublishPacket,
  type PublishProperties,
  type QoS,
} from '@otalink/mqtt/codec';
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

/** Bytes a varint of `value` takes. */
function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : 4;
}

/**
 * Whether a received PUBLISH frame is, byte for byte, what we would encode for the same delivery form: no DUP or
 * RETAIN flag, a minimally encoded remaining length, and (5.0) no properties at all.
 */
export function forwardableFrame(frame: Uint8Array, version: ProtocolVersion, hasProperties: boolean): boolean {
  if ((frame[0]! & 0x09) !== 0) return false;
  let header = 1;
  while ((frame[header]! & 0x80) !== 0) header++;
  header++;
  if (header !== 1 + varintSize(frame.length - header)) return false;
  if (version === 4) return true;
  if (hasProperties) return false;
  // The property length byte follows the topic (and packet id): it must be the single byte 0.
  const topicLength = (frame[header]! << 8) | frame[header + 1]!;
  const at = header + 2 + topicLength + ((frame[0]! & 0x06) !== 0 ? 2 : 0);
  return frame[at] === 0;
}

/** One fan-out's template cache: at most a handful of forms per message (version x QoS x retain x ids). */
export class PublishTemplates {
  readonly #message: Message;
  readonly #now: number;
  /** The received frame when it can go out unchanged (see forwardableFrame), with its version and QoS. */
  readonly #wire: Uint8Array | undefined;
  readonly #wireVersion: ProtocolVersion;
  // Most messages go out in one form only: it is kept in fields, the map holds any others.
  #firstKey: number | string | undefined;
  #first: EncodedPublish | undefined;
  #forms: Map<number | string, EncodedPublish> | undefined;

  constructor(message: Message, now: number, wire?: Uint8Array, wireVersion: ProtocolVersion = 4) {
    this.#message = message;
    this.#now = now;
    this.#wire = wire;
    this.#wireVersion = wireVersion;
  }

  get(version: ProtocolVersion, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): EncodedPublish {
    const key =
      subscriptionIds === undefined || version === 4
        ? version * 8 + qos * 2 + (retain ? 1 : 0)
        : `${version}${qos}${retain ? 1 : 0}:${subscriptionIds.join(',')}`;
    if (key === this.#firstKey) return this.#first!;
    let form = this.#forms?.get(key);
    if (form === undefined) {
      form = this.#encode(version, qos, retain, subscriptionIds);
      if (this.#firstKey === undefined) {
        this.#firstKey = key;
        this.#first = form;
      } else {
        this.#forms ??= new Map();
        this.#forms.set(key, form);
      }
    }
    return form;
  }

  #encode(version: ProtocolVersion, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): EncodedPublish {
    const wire = this.#wire;
    if (
      wire !== undefined &&
      version === this.#wireVersion &&
      !retain &&
      qos === ((wire[0]! >> 1) & 3) &&
      (version === 4 || (subscriptionIds === undefined && this.#message.expiresAt === 0))
    ) {
      return { bytes: wire, idOffset: qos > 0 ? packetIdOffset(wire) : -1 };
    }
    const packet = publishPacket(this.#message, version, qos, retain, subscriptionIds, this.#now, 1, false);
    const bytes = encode(packet, version);
    return { bytes, idOffset: qos > 0 ? packetIdOffset(bytes) : -1 };
  }
}
