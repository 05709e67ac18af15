// The packets of MQTT 3.1.1 (protocol level 4) and 5.0 (level 5) as plain objects.
// One object shape serves both versions: fields that exist only in 5.0 (reason codes, properties) are optional and
// ignored when encoding for 3.1.1. Binary data is a Uint8Array; the decoder returns views into the bytes it was
// given (no copy), so a caller that reuses its input buffers must copy payloads it keeps.

export type ProtocolVersion = 4 | 5;
export type QoS = 0 | 1 | 2;

/** Every MQTT 5.0 property (section 2.2.2.2), by name. Which packets may carry which is in `properties.ts`. */
export interface Properties {
  payloadFormatIndicator?: 0 | 1;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  /** One in SUBSCRIBE; one or more in a PUBLISH from the server. */
  subscriptionIdentifiers?: number[];
  sessionExpiryInterval?: number;
  assignedClientIdentifier?: string;
  serverKeepAlive?: number;
  authenticationMethod?: string;
  authenticationData?: Uint8Array;
  requestProblemInformation?: 0 | 1;
  willDelayInterval?: number;
  requestResponseInformation?: 0 | 1;
  responseInformation?: string;
  serverReference?: string;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  topicAlias?: number;
  maximumQoS?: 0 | 1;
  retainAvailable?: 0 | 1;
  /** In order; a name may repeat. */
  userProperties?: Array<[string, string]>;
  maximumPacketSize?: number;
  wildcardSubscriptionAvailable?: 0 | 1;
  subscriptionIdentifierAvailable?: 0 | 1;
  sharedSubscriptionAvailable?: 0 | 1;
}

export type PropertyName = keyof Properties;

export type ConnectProperties = Pick<
  Properties,
  | 'sessionExpiryInterval'
  | 'authenticationMethod'
  | 'authenticationData'
  | 'requestProblemInformation'
  | 'requestResponseInformation'
  | 'receiveMaximum'
  | 'topicAliasMaximum'
  | 'userProperties'
  | 'maximumPacketSize'
>;
export type WillProperties = Pick<
  Properties,
  | 'payloadFormatIndicator'
  | 'messageExpiryInterval'
  | 'contentType'
  | 'responseTopic'
  | 'correlationData'
  | 'willDelayInterval'
  | 'userProperties'
>;
export type ConnackProperties = Pick<
  Properties,
  | 'sessionExpiryInterval'
  | 'assignedClientIdentifier'
  | 'serverKeepAlive'
  | 'authenticationMethod'
  | 'authenticationData'
  | 'responseInformation'
  | 'serverReference'
  | 'reasonString'
  | 'receiveMaximum'
  | 'topicAliasMaximum'
  | 'maximumQoS'
  | 'retainAvailable'
  | 'userProperties'
  | 'maximumPacketSize'
  | 'wildcardSubscriptionAvailable'
  | 'subscriptionIdentifierAvailable'
  | 'sharedSubscriptionAvailable'
>;
export type PublishProperties = Pick<
  Properties,
  | 'payloadFormatIndicator'
  | 'messageExpiryInterval'
  | 'contentType'
  | 'responseTopic'
  | 'correlationData'
  | 'subscriptionIdentifiers'
  | 'topicAlias'
  | 'userProperties'
>;
export type AckProperties = Pick<Properties, 'reasonString' | 'userProperties'>;
export type SubscribeProperties = Pick<Properties, 'subscriptionIdentifiers' | 'userProperties'>;
export type UnsubscribeProperties = Pick<Properties, 'userProperties'>;
export type DisconnectProperties = Pick<
  Properties,
  'sessionExpiryInterval' | 'serverReference' | 'reasonString' | 'userProperties'
>;
export type AuthProperties = Pick<
  Properties,
  'authenticationMethod' | 'authenticationData' | 'reasonString' | 'userProperties'
>;

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties?: WillProperties;
}

export interface ConnectPacket {
  type: 'connect';
  protocolVersion: ProtocolVersion;
  /** As sent; 'MQTT' for both versions. */
  protocolName?: string;
  clientId: string;
  /** Clean Session (3.1.1) or Clean Start (5.0). */
  clean: boolean;
  keepalive: number;
  username?: string;
  password?: Uint8Array;
  will?: Will;
  properties?: ConnectProperties;
}

export interface ConnackPacket {
  type: 'connack';
  sessionPresent: boolean;
  /** 5.0 reason code, or the 3.1.1 return code (0..5). */
  reasonCode: number;
  properties?: ConnackProperties;
}

export interface PublishPacket {
  type: 'publish';
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present for QoS 1 and 2. */
  packetId?: number;
  properties?: PublishProperties;
}

export interface PubackPacket {
  type: 'puback';
  packetId: number;
  reasonCode?: number;
  properties?: AckProperties;
}
export interface PubrecPacket {
  type: 'pubrec';
  packetId: number;
  reasonCode?: number;
  properties?: AckProperties;
}
export interface PubrelPacket {
  type: 'pubrel';
  packetId: number;
  reasonCode?: number;
  properties?: AckProperties;
}
export interface PubcompPacket {
  type: 'pubcomp';
  packetId: number;
  reasonCode?: number;
  properties?: AckProperties;
}

export type RetainHandling = 0 | 1 | 2;

export interface Subscription {
  topicFilter: string;
  qos: QoS;
  /** 5.0 subscription options; false / 0 when absent. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: RetainHandling;
}

export interface SubscribePacket {
  type: 'subscribe';
  packetId: number;
  subscriptions: Subscription[];
  properties?: SubscribeProperties;
}

export interface SubackPacket {
  type: 'suback';
  packetId: number;
  /** One per requested filter: granted QoS (0..2) or a failure code (0x80 and, in 5.0, the others). */
  reasonCodes: number[];
  properties?: AckProperties;
}

export interface UnsubscribePacket {
  type: 'unsubscribe';
  packetId: number;
  topicFilters: string[];
  properties?: UnsubscribeProperties;
}

export interface UnsubackPacket {
  type: 'unsuback';
  packetId: number;
  /** 5.0 only: one per filter. */
  reasonCodes?: number[];
  properties?: AckProperties;
}

export interface PingreqPacket {
  type: 'pingreq';
}
export interface PingrespPacket {
  type: 'pingresp';
}

export interface DisconnectPacket {
  type: 'disconnect';
  reasonCode?: number;
  properties?: DisconnectProperties;
}

export interface AuthPacket {
  type: 'auth';
  reasonCode?: number;
  properties?: AuthProperties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;

export type PacketType = Packet['type'];

/** Whether `id` can be a packet identifier: an integer from 1 to 65535 (MQTT 3.1.1 2.3.1, 5.0 2.2.1). */
export function isPacketId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 1 && id <= 0xffff;
}

/** Control packet type numbers (the high nibble of the first byte). */
export const PacketTypeCode = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
} as const satisfies Record<PacketType, number>;
