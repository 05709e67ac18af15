// One error class for the MQTT layer. Every error carries a stable `code` (MQTT_ERR_*) and, where it comes from
// bytes on the wire, the MQTT 5 reason code the receiver should send before closing (0x81, 0x82, 0x95, ...).

import type { AckProperties } from './packets.js';

export type MqttErrorCode =
  // Format errors found while decoding (the connection is closed with `reasonCode`).
  | 'MQTT_ERR_MALFORMED_PACKET'
  | 'MQTT_ERR_PROTOCOL_ERROR'
  | 'MQTT_ERR_PACKET_TOO_LARGE'
  | 'MQTT_ERR_UNKNOWN_PACKET_TYPE'
  | 'MQTT_ERR_RESERVED_FLAGS'
  | 'MQTT_ERR_INVALID_QOS'
  | 'MQTT_ERR_MISSING_PACKET_ID'
  | 'MQTT_ERR_VARINT_TOO_LONG'
  | 'MQTT_ERR_VARINT_NOT_MINIMAL'
  | 'MQTT_ERR_INVALID_UTF8'
  | 'MQTT_ERR_INVALID_TOPIC_NAME'
  | 'MQTT_ERR_INVALID_TOPIC_FILTER'
  | 'MQTT_ERR_EMPTY_TOPIC_FILTER'
  | 'MQTT_ERR_DUPLICATE_PROPERTY'
  | 'MQTT_ERR_PROPERTY_NOT_ALLOWED'
  | 'MQTT_ERR_UNKNOWN_PROPERTY'
  | 'MQTT_ERR_INVALID_PROPERTY_VALUE'
  | 'MQTT_ERR_LENGTH_MISMATCH'
  | 'MQTT_ERR_INVALID_REASON_CODE'
  | 'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION'
  | 'MQTT_ERR_INVALID_PROTOCOL_NAME'
  | 'MQTT_ERR_EMPTY_PAYLOAD_LIST'
  | 'MQTT_ERR_UNEXPECTED_PACKET'
  // Misuse found while encoding (nothing is written).
  | 'MQTT_ERR_INVALID_PACKET'
  | 'MQTT_ERR_VALUE_OUT_OF_RANGE'
  // Client and session layers.
  | 'MQTT_ERR_CONNECTION_REFUSED'
  /** The line could not be made (TCP, TLS, WebSocket): the transport's own error is the `cause`. */
  | 'MQTT_ERR_CONNECT_FAILED'
  | 'MQTT_ERR_CONNECTION_CLOSED'
  | 'MQTT_ERR_TIMEOUT'
  | 'MQTT_ERR_KEEPALIVE_TIMEOUT'
  | 'MQTT_ERR_CLIENT_CLOSED'
  | 'MQTT_ERR_QUEUE_FULL'
  /** A queued message whose Message Expiry Interval ran out before it could be sent: it is not sent at all. */
  | 'MQTT_ERR_MESSAGE_EXPIRED'
  | 'MQTT_ERR_PACKET_ID_EXHAUSTED'
  | 'MQTT_ERR_STORE'
  | 'MQTT_ERR_STORE_LOCKED'
  | 'MQTT_ERR_INVALID_OPTION'
  | 'MQTT_ERR_SUBSCRIBE_FAILED'
  | 'MQTT_ERR_PUBLISH_FAILED'
  | 'MQTT_ERR_POISON_MESSAGE';

export interface MqttErrorOptions {
  /** MQTT 5 reason code to send to the peer (DISCONNECT / CONNACK), if the error came from the wire. */
  reasonCode?: number;
  /** What the server said with a refusal it sent (5.0): its reason string and user properties. */
  properties?: AckProperties | undefined;
  cause?: unknown;
}

export class MqttError extends Error {
  override readonly name = 'MqttError';
  readonly code: MqttErrorCode;
  readonly reasonCode: number | undefined;
  readonly properties: AckProperties | undefined;

  constructor(code: MqttErrorCode, message: string, options: MqttErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reasonCode = options.reasonCode;
    this.properties = options.properties;
  }
}

/** Reason codes most decode errors map to. */
export const MALFORMED = 0x81;
export const PROTOCOL_ERROR = 0x82;

export function malformed(code: MqttErrorCode, message: string): MqttError {
  return new MqttError(code, message, { reasonCode: MALFORMED });
}

export function protocolError(code: MqttErrorCode, message: string): MqttError {
  return new MqttError(code, message, { reasonCode: PROTOCOL_ERROR });
}
