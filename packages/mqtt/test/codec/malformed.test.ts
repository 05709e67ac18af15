// Malformed and forbidden input: each row is bytes that break one rule of MQTT 3.1.1 or 5.0, and the MqttError
// code and MQTT 5 reason code the decoder must throw. Every row is fed whole and one byte at a time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Decoder,
  type DecoderOptions,
  MqttError,
  type MqttErrorCode,
  type Packet,
  type ProtocolVersion,
  UnsupportedProtocolError,
} from '../../src/codec/index.js';
import { hex, toHex } from './bytes.js';

interface Row {
  name: string;
  /** Decoder protocol version; omitted with role 'server' to make the decoder learn it from CONNECT. */
  version?: ProtocolVersion;
  role?: 'server' | 'client';
  bytes: Uint8Array;
  code: MqttErrorCode;
  reasonCode: number;
  protocolLevel?: number;
}

const MALFORMED = 0x81;
const PROTOCOL = 0x82;

const rows: Row[] = [
  // ---- Fixed header flags (3.1.1 2.2.2, 5.0 2.1.3: any other value is malformed) ----
  {
    name: 'CONNECT flags 0001',
    version: 4,
    bytes: hex`11 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNACK flags 1000',
    version: 4,
    bytes: hex`28 02 00 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK flags 0001',
    version: 4,
    bytes: hex`41 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREC flags 0100',
    version: 5,
    bytes: hex`54 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREL flags 0000 (must be 0010)',
    version: 4,
    bytes: hex`60 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREL flags 0011',
    version: 5,
    bytes: hex`63 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREL flags 1010',
    version: 4,
    bytes: hex`6a 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBCOMP flags 1000',
    version: 4,
    bytes: hex`78 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE flags 0000 (must be 0010)',
    version: 4,
    bytes: hex`80 08 00 01 00 03 "a/b" 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE flags 0011',
    version: 5,
    bytes: hex`83 09 00 01 00 00 03 "a/b" 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBACK flags 0010',
    version: 4,
    bytes: hex`92 03 00 01 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE flags 0000 (must be 0010)',
    version: 4,
    bytes: hex`a0 07 00 01 00 03 "a/b"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE flags 1010',
    version: 5,
    bytes: hex`aa 08 00 01 00 00 03 "a/b"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBACK flags 0001',
    version: 4,
    bytes: hex`b1 02 00 01`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  { name: 'PINGREQ flags 1000', version: 4, bytes: hex`c8 00`, code: 'MQTT_ERR_RESERVED_FLAGS', reasonCode: MALFORMED },
  {
    name: 'PINGRESP flags 0100',
    version: 5,
    bytes: hex`d4 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'DISCONNECT flags 0010',
    version: 4,
    bytes: hex`e2 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'DISCONNECT flags 1111',
    version: 5,
    bytes: hex`ef 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  { name: 'AUTH flags 0010', version: 5, bytes: hex`f2 00`, code: 'MQTT_ERR_RESERVED_FLAGS', reasonCode: MALFORMED },
  {
    name: 'packet type 0 (3.1.1)',
    version: 4,
    bytes: hex`00 00`,
    code: 'MQTT_ERR_UNKNOWN_PACKET_TYPE',
    reasonCode: MALFORMED,
  },
  {
    name: 'packet type 0 (5.0)',
    version: 5,
    bytes: hex`00 00`,
    code: 'MQTT_ERR_UNKNOWN_PACKET_TYPE',
    reasonCode: MALFORMED,
  },
  {
    name: 'AUTH (type 15) in 3.1.1',
    version: 4,
    bytes: hex`f0 00`,
    code: 'MQTT_ERR_UNKNOWN_PACKET_TYPE',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH QoS 3 (3.1.1)',
    version: 4,
    bytes: hex`36 07 00 03 "a/b" 00 01`,
    code: 'MQTT_ERR_INVALID_QOS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH QoS 3 (5.0)',
    version: 5,
    bytes: hex`36 08 00 03 "a/b" 00 01 00`,
    code: 'MQTT_ERR_INVALID_QOS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH DUP with QoS 0 (3.1.1)',
    version: 4,
    bytes: hex`38 05 00 03 "a/b"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH DUP with QoS 0 (5.0)',
    version: 5,
    bytes: hex`38 06 00 03 "a/b" 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },

  // ---- Packet identifiers (2.3.1: non-zero) ----
  {
    name: 'PUBLISH QoS 1 with packet id 0',
    version: 4,
    bytes: hex`32 07 00 03 "a/b" 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH QoS 2 with packet id 0 (5.0)',
    version: 5,
    bytes: hex`34 08 00 03 "a/b" 00 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK packet id 0',
    version: 4,
    bytes: hex`40 02 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK packet id 0 (5.0)',
    version: 5,
    bytes: hex`40 03 00 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREC packet id 0',
    version: 4,
    bytes: hex`50 02 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREL packet id 0',
    version: 4,
    bytes: hex`62 02 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBCOMP packet id 0',
    version: 5,
    bytes: hex`70 02 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE packet id 0',
    version: 4,
    bytes: hex`82 08 00 00 00 03 "a/b" 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBACK packet id 0',
    version: 4,
    bytes: hex`90 03 00 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE packet id 0',
    version: 5,
    bytes: hex`a2 08 00 00 00 00 03 "a/b"`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBACK packet id 0',
    version: 4,
    bytes: hex`b0 02 00 00`,
    code: 'MQTT_ERR_MISSING_PACKET_ID',
    reasonCode: MALFORMED,
  },

  // ---- Variable byte integers (5.0 1.5.5; 3.1.1 2.2.3) ----
  {
    name: 'remaining length of 5 bytes',
    version: 4,
    bytes: hex`30 80 80 80 80 01`,
    code: 'MQTT_ERR_VARINT_TOO_LONG',
    reasonCode: MALFORMED,
  },
  {
    name: 'remaining length ff ff ff ff 7f',
    version: 5,
    bytes: hex`30 ff ff ff ff 7f`,
    code: 'MQTT_ERR_VARINT_TOO_LONG',
    reasonCode: MALFORMED,
  },
  {
    name: 'remaining length 0 as 80 00',
    version: 4,
    bytes: hex`c0 80 00`,
    code: 'MQTT_ERR_VARINT_NOT_MINIMAL',
    reasonCode: MALFORMED,
  },
  {
    name: 'remaining length 5 as 85 00',
    version: 4,
    bytes: hex`30 85 00 00 03 "a/b"`,
    code: 'MQTT_ERR_VARINT_NOT_MINIMAL',
    reasonCode: MALFORMED,
  },
  {
    name: 'property length 0 as 80 00',
    version: 5,
    bytes: hex`30 07 00 03 "a/b" 80 00`,
    code: 'MQTT_ERR_VARINT_NOT_MINIMAL',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription identifier 1 as 81 00',
    version: 5,
    bytes: hex`30 09 00 03 "a/b" 03 0b 81 00`,
    code: 'MQTT_ERR_VARINT_NOT_MINIMAL',
    reasonCode: MALFORMED,
  },

  // ---- Remaining length shorter ("short") or longer ("long") than the content ----
  {
    name: 'CONNECT short (client id cut)',
    version: 4,
    bytes: hex`10 0d 00 04 "MQTT" 04 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT long (trailing byte)',
    version: 4,
    bytes: hex`10 0f 00 04 "MQTT" 04 02 00 3c 00 02 "c1" 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT short (5.0)',
    version: 5,
    bytes: hex`10 0e 00 04 "MQTT" 05 02 00 3c 00 00 02 "c1"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT long (5.0)',
    version: 5,
    bytes: hex`10 10 00 04 "MQTT" 05 02 00 3c 00 00 02 "c1" 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT short inside the variable header',
    version: 4,
    bytes: hex`10 08 00 04 "MQTT" 04 02`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT property length past the end',
    version: 5,
    bytes: hex`10 0f 00 04 "MQTT" 05 02 00 3c 05 00 02 "c1"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'CONNACK short', version: 4, bytes: hex`20 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'CONNACK long',
    version: 4,
    bytes: hex`20 03 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNACK short (5.0: no property length)',
    version: 5,
    bytes: hex`20 02 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNACK long (5.0)',
    version: 5,
    bytes: hex`20 04 00 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH short (topic cut)',
    version: 4,
    bytes: hex`30 04 00 03 "a/b"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH short (no topic length)',
    version: 4,
    bytes: hex`30 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH QoS 1 short (packet id cut)',
    version: 4,
    bytes: hex`32 06 00 03 "a/b" 00 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH short (5.0: no property length)',
    version: 5,
    bytes: hex`30 05 00 03 "a/b"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH property length past the end',
    version: 5,
    bytes: hex`30 08 00 03 "a/b" 05 01 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH property value past its block',
    version: 5,
    bytes: hex`30 08 00 03 "a/b" 01 02 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBLISH user property value past its block',
    version: 5,
    bytes: hex`30 0c 00 03 "a/b" 06 26 00 01 "k" 00 05`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'PUBACK short', version: 4, bytes: hex`40 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'PUBACK long',
    version: 4,
    bytes: hex`40 03 00 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK short (5.0)',
    version: 5,
    bytes: hex`40 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK long (5.0)',
    version: 5,
    bytes: hex`40 05 00 01 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBACK property length past the end (5.0)',
    version: 5,
    bytes: hex`40 04 00 01 00 05`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'PUBREC short', version: 4, bytes: hex`50 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'PUBREC long',
    version: 4,
    bytes: hex`50 03 00 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREC long (5.0)',
    version: 5,
    bytes: hex`50 05 00 01 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'PUBREL short', version: 4, bytes: hex`62 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'PUBREL long',
    version: 4,
    bytes: hex`62 03 00 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBREL long (5.0)',
    version: 5,
    bytes: hex`62 05 00 03 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'PUBCOMP short', version: 4, bytes: hex`70 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'PUBCOMP long',
    version: 4,
    bytes: hex`70 03 00 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'PUBCOMP short (5.0)',
    version: 5,
    bytes: hex`70 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE short (options byte cut)',
    version: 4,
    bytes: hex`82 07 00 01 00 03 "a/b" 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE long (trailing byte)',
    version: 4,
    bytes: hex`82 09 00 01 00 03 "a/b" 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE short (packet id cut)',
    version: 4,
    bytes: hex`82 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE short (5.0: no property length)',
    version: 5,
    bytes: hex`82 02 00 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE long (5.0)',
    version: 5,
    bytes: hex`82 0a 00 01 00 00 03 "a/b" 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'SUBACK short', version: 4, bytes: hex`90 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'SUBACK short (5.0: no property length)',
    version: 5,
    bytes: hex`90 02 00 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE short (filter cut)',
    version: 4,
    bytes: hex`a2 06 00 01 00 03 "a/b"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE long (trailing byte)',
    version: 4,
    bytes: hex`a2 08 00 01 00 03 "a/b" 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE short (5.0: no property length)',
    version: 5,
    bytes: hex`a2 02 00 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'UNSUBACK short', version: 4, bytes: hex`b0 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'UNSUBACK long',
    version: 4,
    bytes: hex`b0 03 00 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBACK short (5.0: no property length)',
    version: 5,
    bytes: hex`b0 02 00 01`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBACK property length past the end',
    version: 5,
    bytes: hex`b0 04 00 01 05 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  { name: 'PINGREQ long', version: 4, bytes: hex`c0 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  { name: 'PINGRESP long', version: 5, bytes: hex`d0 01 00`, code: 'MQTT_ERR_LENGTH_MISMATCH', reasonCode: MALFORMED },
  {
    name: 'DISCONNECT long',
    version: 4,
    bytes: hex`e0 01 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'DISCONNECT long (5.0)',
    version: 5,
    bytes: hex`e0 03 00 00 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'DISCONNECT property length past the end',
    version: 5,
    bytes: hex`e0 02 00 05`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'AUTH long',
    version: 5,
    bytes: hex`f0 0b 18 08 15 00 05 "TOKEN" 00`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'AUTH property length past the end',
    version: 5,
    bytes: hex`f0 02 18 05`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },

  // ---- UTF-8 strings (3.1.1 1.5.3, 5.0 1.5.4: well-formed, no surrogates, no U+0000) ----
  {
    name: 'topic with overlong sequence C0 AF',
    version: 4,
    bytes: hex`30 05 00 03 61 c0 af`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with overlong NUL C0 80',
    version: 4,
    bytes: hex`30 04 00 02 c0 80`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with a truncated 3-byte sequence',
    version: 4,
    bytes: hex`30 05 00 03 61 e6 b8`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with a truncated 4-byte sequence',
    version: 5,
    bytes: hex`30 06 00 03 f0 9f 9a 00`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with byte FF',
    version: 4,
    bytes: hex`30 05 00 03 61 ff 62`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with a lone continuation byte',
    version: 4,
    bytes: hex`30 05 00 03 61 80 62`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with encoded surrogate ED A0 80',
    version: 4,
    bytes: hex`30 05 00 03 ed a0 80`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with U+0000 (short string)',
    version: 4,
    bytes: hex`30 05 00 03 61 00 62`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic with U+0000 (long string)',
    version: 5,
    bytes: hex`30 0d 00 0a "abcdefghi" 00 00`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic above U+10FFFF (F4 90 80 80)',
    version: 4,
    bytes: hex`30 06 00 04 f4 90 80 80`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'client id with C0 80',
    version: 4,
    bytes: hex`10 0e 00 04 "MQTT" 04 02 00 3c 00 02 c0 80`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'client id with ED A0 80 (5.0)',
    version: 5,
    bytes: hex`10 10 00 04 "MQTT" 05 02 00 3c 00 00 03 ed a0 80`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'user name with FF',
    version: 4,
    bytes: hex`10 11 00 04 "MQTT" 04 82 00 3c 00 02 "c1" 00 01 ff`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'user property name with FF',
    version: 5,
    bytes: hex`30 0d 00 03 "a/b" 07 26 00 01 ff 00 01 "v"`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'user property value U+0000',
    version: 5,
    bytes: hex`30 0d 00 03 "a/b" 07 26 00 01 "k" 00 01 00`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'content type with ED BF BF',
    version: 5,
    bytes: hex`30 0c 00 03 "a/b" 06 03 00 03 ed bf bf`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },
  {
    name: 'topic filter with FF',
    version: 4,
    bytes: hex`82 08 00 01 00 03 61 ff 62 00`,
    code: 'MQTT_ERR_INVALID_UTF8',
    reasonCode: MALFORMED,
  },

  // ---- Topic names (4.7: no wildcards; 3.3.2.1: not empty unless a 5.0 topic alias) ----
  {
    name: 'PUBLISH topic with +',
    version: 4,
    bytes: hex`30 05 00 03 "a/+"`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'PUBLISH topic with #',
    version: 4,
    bytes: hex`30 05 00 03 "a/#"`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'PUBLISH topic with + (5.0)',
    version: 5,
    bytes: hex`30 06 00 03 "+/b" 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'PUBLISH empty topic (3.1.1)',
    version: 4,
    bytes: hex`30 02 00 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'PUBLISH empty topic without topic alias (5.0)',
    version: 5,
    bytes: hex`30 03 00 00 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: PROTOCOL,
  },
  {
    name: 'will topic with #',
    version: 4,
    bytes: hex`10 15 00 04 "MQTT" 04 06 00 3c 00 02 "c1" 00 03 "a/#" 00 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'will topic with + (5.0)',
    version: 5,
    bytes: hex`10 17 00 04 "MQTT" 05 06 00 3c 00 00 02 "c1" 00 00 03 "a/+" 00 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },
  {
    name: 'empty will topic',
    version: 4,
    bytes: hex`10 12 00 04 "MQTT" 04 06 00 3c 00 02 "c1" 00 00 00 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_NAME',
    reasonCode: 0x90,
  },

  // ---- Topic filters and subscription options ----
  {
    name: 'SUBSCRIBE empty filter',
    version: 4,
    bytes: hex`82 05 00 01 00 00 00`,
    code: 'MQTT_ERR_EMPTY_TOPIC_FILTER',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE empty filter (5.0)',
    version: 5,
    bytes: hex`82 06 00 01 00 00 00 00`,
    code: 'MQTT_ERR_EMPTY_TOPIC_FILTER',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE empty filter',
    version: 4,
    bytes: hex`a2 04 00 01 00 00`,
    code: 'MQTT_ERR_EMPTY_TOPIC_FILTER',
    reasonCode: MALFORMED,
  },
  {
    name: 'UNSUBSCRIBE empty filter (5.0)',
    version: 5,
    bytes: hex`a2 05 00 01 00 00 00`,
    code: 'MQTT_ERR_EMPTY_TOPIC_FILTER',
    reasonCode: MALFORMED,
  },
  {
    name: 'SUBSCRIBE "a/#/b" (# not last)',
    version: 4,
    bytes: hex`82 0a 00 01 00 05 "a/#/b" 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_FILTER',
    reasonCode: 0x8f,
  },
  {
    name: 'SUBSCRIBE "a+/b"',
    version: 5,
    bytes: hex`82 0a 00 01 00 00 04 "a+/b" 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_FILTER',
    reasonCode: 0x8f,
  },
  {
    name: 'UNSUBSCRIBE "a#"',
    version: 4,
    bytes: hex`a2 06 00 01 00 02 "a#"`,
    code: 'MQTT_ERR_INVALID_TOPIC_FILTER',
    reasonCode: 0x8f,
  },
  {
    name: 'SUBSCRIBE "$share/g" without a filter',
    version: 5,
    bytes: hex`82 0e 00 01 00 00 08 "$share/g" 00`,
    code: 'MQTT_ERR_INVALID_TOPIC_FILTER',
    reasonCode: 0x8f,
  },
  {
    name: 'SUBSCRIBE with no filters',
    version: 4,
    bytes: hex`82 02 00 01`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBSCRIBE with no filters (5.0)',
    version: 5,
    bytes: hex`82 03 00 01 00`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBSCRIBE with no filters',
    version: 4,
    bytes: hex`a2 02 00 01`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBSCRIBE with no filters (5.0)',
    version: 5,
    bytes: hex`a2 03 00 01 00`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK with no reason codes',
    version: 4,
    bytes: hex`90 02 00 01`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK with no reason codes (5.0)',
    version: 5,
    bytes: hex`90 03 00 01 00`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBACK with no reason codes (5.0)',
    version: 5,
    bytes: hex`b0 03 00 01 00`,
    code: 'MQTT_ERR_EMPTY_PAYLOAD_LIST',
    reasonCode: PROTOCOL,
  },
  {
    name: 'subscription options bit 2 set (3.1.1)',
    version: 4,
    bytes: hex`82 08 00 01 00 03 "a/b" 04`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription options bit 7 set (3.1.1)',
    version: 4,
    bytes: hex`82 08 00 01 00 03 "a/b" 80`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription options bit 6 set (5.0)',
    version: 5,
    bytes: hex`82 09 00 01 00 00 03 "a/b" 40`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription options bits 6-7 set (5.0)',
    version: 5,
    bytes: hex`82 09 00 01 00 00 03 "a/b" c1`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription QoS 3 (3.1.1: malformed)',
    version: 4,
    bytes: hex`82 08 00 01 00 03 "a/b" 03`,
    code: 'MQTT_ERR_INVALID_QOS',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription QoS 3 (5.0: protocol error)',
    version: 5,
    bytes: hex`82 09 00 01 00 00 03 "a/b" 03`,
    code: 'MQTT_ERR_INVALID_QOS',
    reasonCode: PROTOCOL,
  },
  {
    name: 'retain handling 3',
    version: 5,
    bytes: hex`82 09 00 01 00 00 03 "a/b" 30`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'no local on a $share filter',
    version: 5,
    bytes: hex`82 10 00 01 00 00 0a "$share/g/a" 04`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },

  // ---- CONNECT (3.1.2) ----
  {
    name: 'CONNECT reserved flag bit 0',
    version: 4,
    bytes: hex`10 0e 00 04 "MQTT" 04 03 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT reserved flag bit 0 (5.0)',
    version: 5,
    bytes: hex`10 0f 00 04 "MQTT" 05 03 00 3c 00 00 02 "c1"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT will QoS 3',
    version: 4,
    bytes: hex`10 15 00 04 "MQTT" 04 1e 00 3c 00 02 "c1" 00 03 "a/b" 00 00`,
    code: 'MQTT_ERR_INVALID_QOS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT will QoS 1 without will flag',
    version: 4,
    bytes: hex`10 0e 00 04 "MQTT" 04 0a 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT will retain without will flag',
    version: 5,
    bytes: hex`10 0f 00 04 "MQTT" 05 22 00 3c 00 00 02 "c1"`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT password without user name (3.1.1)',
    version: 4,
    bytes: hex`10 12 00 04 "MQTT" 04 42 00 3c 00 02 "c1" 00 02 "pw"`,
    code: 'MQTT_ERR_MALFORMED_PACKET',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT user name flag without user name',
    version: 4,
    bytes: hex`10 0e 00 04 "MQTT" 04 82 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_LENGTH_MISMATCH',
    reasonCode: MALFORMED,
  },
  {
    name: 'CONNECT unknown protocol name',
    role: 'server',
    bytes: hex`10 0e 00 04 "MQTX" 04 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_INVALID_PROTOCOL_NAME',
    reasonCode: 0x84,
  },
  {
    name: 'CONNECT protocol level 3',
    role: 'server',
    bytes: hex`10 0e 00 04 "MQTT" 03 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION',
    reasonCode: 0x84,
    protocolLevel: 3,
  },
  {
    name: 'CONNECT MQIsdp level 3 (MQTT 3.1)',
    role: 'server',
    bytes: hex`10 10 00 06 "MQIsdp" 03 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION',
    reasonCode: 0x84,
    protocolLevel: 3,
  },
  {
    name: 'CONNECT protocol level 6',
    role: 'server',
    bytes: hex`10 0e 00 04 "MQTT" 06 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION',
    reasonCode: 0x84,
    protocolLevel: 6,
  },
  {
    name: 'CONNECT protocol level 0',
    role: 'server',
    bytes: hex`10 0e 00 04 "MQTT" 00 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_UNSUPPORTED_PROTOCOL_VERSION',
    reasonCode: 0x84,
    protocolLevel: 0,
  },

  // ---- Properties (5.0 2.2.2) ----
  {
    name: 'duplicated message expiry interval',
    version: 5,
    bytes: hex`30 10 00 03 "a/b" 0a 02 00 00 00 01 02 00 00 00 02`,
    code: 'MQTT_ERR_DUPLICATE_PROPERTY',
    reasonCode: PROTOCOL,
  },
  {
    name: 'duplicated reason string in PUBACK',
    version: 5,
    bytes: hex`40 0c 00 01 00 08 1f 00 01 "a" 1f 00 01 "b"`,
    code: 'MQTT_ERR_DUPLICATE_PROPERTY',
    reasonCode: PROTOCOL,
  },
  {
    name: 'two subscription identifiers in SUBSCRIBE',
    version: 5,
    bytes: hex`82 0d 00 01 04 0b 01 0b 02 00 03 "a/b" 00`,
    code: 'MQTT_ERR_DUPLICATE_PROPERTY',
    reasonCode: PROTOCOL,
  },
  {
    name: 'duplicated will delay interval',
    version: 5,
    bytes: hex`10 1f 00 04 "MQTT" 05 06 00 3c 00 00 02 "c1" 0a 18 00 00 00 01 18 00 00 00 02 00 01 "t" 00 00`,
    code: 'MQTT_ERR_DUPLICATE_PROPERTY',
    reasonCode: PROTOCOL,
  },
  {
    name: 'topic alias in CONNECT',
    version: 5,
    bytes: hex`10 12 00 04 "MQTT" 05 02 00 3c 03 23 00 01 00 02 "c1"`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'will delay interval in CONNECT properties',
    version: 5,
    bytes: hex`10 14 00 04 "MQTT" 05 02 00 3c 05 18 00 00 00 01 00 02 "c1"`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'session expiry interval in will properties',
    version: 5,
    bytes: hex`10 19 00 04 "MQTT" 05 06 00 3c 00 00 02 "c1" 05 11 00 00 00 01 00 01 "t" 00 00`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'session expiry interval in PUBLISH',
    version: 5,
    bytes: hex`30 0b 00 03 "a/b" 05 11 00 00 00 01`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'reason string in SUBSCRIBE',
    version: 5,
    bytes: hex`82 0d 00 01 04 1f 00 01 "r" 00 03 "a/b" 00`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'subscription identifier in UNSUBSCRIBE',
    version: 5,
    bytes: hex`a2 0a 00 01 02 0b 01 00 03 "a/b"`,
    code: 'MQTT_ERR_PROPERTY_NOT_ALLOWED',
    reasonCode: MALFORMED,
  },
  {
    name: 'unknown property 0x05',
    version: 5,
    bytes: hex`30 08 00 03 "a/b" 02 05 00`,
    code: 'MQTT_ERR_UNKNOWN_PROPERTY',
    reasonCode: MALFORMED,
  },
  {
    name: 'unknown property 0x80 (two-byte identifier)',
    version: 5,
    bytes: hex`30 09 00 03 "a/b" 03 80 01 00`,
    code: 'MQTT_ERR_UNKNOWN_PROPERTY',
    reasonCode: MALFORMED,
  },
  {
    name: 'payload format indicator 2',
    version: 5,
    bytes: hex`30 08 00 03 "a/b" 02 01 02`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'request problem information 2',
    version: 5,
    bytes: hex`10 11 00 04 "MQTT" 05 02 00 3c 02 17 02 00 02 "c1"`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'maximum QoS 2 in CONNACK',
    version: 5,
    bytes: hex`20 05 00 00 02 24 02`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'receive maximum 0 in CONNECT',
    version: 5,
    bytes: hex`10 12 00 04 "MQTT" 05 02 00 3c 03 21 00 00 00 02 "c1"`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'receive maximum 0 in CONNACK',
    version: 5,
    bytes: hex`20 06 00 00 03 21 00 00`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'maximum packet size 0',
    version: 5,
    bytes: hex`10 14 00 04 "MQTT" 05 02 00 3c 05 27 00 00 00 00 00 02 "c1"`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'topic alias 0',
    version: 5,
    bytes: hex`30 09 00 03 "a/b" 03 23 00 00`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: 0x94,
  },
  {
    name: 'subscription identifier 0 in SUBSCRIBE',
    version: 5,
    bytes: hex`82 0b 00 01 02 0b 00 00 03 "a/b" 00`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'subscription identifier 0 in PUBLISH',
    version: 5,
    bytes: hex`30 08 00 03 "a/b" 02 0b 00`,
    code: 'MQTT_ERR_INVALID_PROPERTY_VALUE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'authentication data without method in CONNECT',
    version: 5,
    bytes: hex`10 13 00 04 "MQTT" 05 02 00 3c 04 16 00 01 ff 00 02 "c1"`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'AUTH reason only, without method',
    version: 5,
    bytes: hex`f0 01 18`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'AUTH with properties but no method',
    version: 5,
    bytes: hex`f0 07 18 05 1f 00 02 "hi"`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },

  // ---- Reason codes (5.0 2.4 and each packet's table; 3.1.1 3.2.2.3, 3.9.3) ----
  {
    name: 'CONNACK return code 6 (3.1.1)',
    version: 4,
    bytes: hex`20 02 00 06`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK reason 0x01 (5.0)',
    version: 5,
    bytes: hex`20 03 00 01 00`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK reason 0x8b (5.0)',
    version: 5,
    bytes: hex`20 03 00 8b 00`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PUBACK reason 0x01',
    version: 5,
    bytes: hex`40 03 00 01 01`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PUBREC reason 0x92',
    version: 5,
    bytes: hex`50 03 00 01 92`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PUBREL reason 0x10',
    version: 5,
    bytes: hex`62 03 00 01 10`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PUBCOMP reason 0x80',
    version: 5,
    bytes: hex`70 03 00 01 80`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK return code 3 (3.1.1)',
    version: 4,
    bytes: hex`90 03 00 01 03`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK return code 0x87 (3.1.1)',
    version: 4,
    bytes: hex`90 03 00 01 87`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK reason 0x03 (5.0)',
    version: 5,
    bytes: hex`90 04 00 01 00 03`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBACK reason 0x01',
    version: 5,
    bytes: hex`b0 04 00 01 00 01`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'DISCONNECT reason 0x01',
    version: 5,
    bytes: hex`e0 01 01`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'DISCONNECT reason 0x18',
    version: 5,
    bytes: hex`e0 01 18`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'AUTH reason 0x01',
    version: 5,
    bytes: hex`f0 01 01`,
    code: 'MQTT_ERR_INVALID_REASON_CODE',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK session present with a failure (3.1.1)',
    version: 4,
    bytes: hex`20 02 01 05`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK session present with a failure (5.0)',
    version: 5,
    bytes: hex`20 03 01 87 00`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK acknowledge flags bit 1',
    version: 4,
    bytes: hex`20 02 02 00`,
    code: 'MQTT_ERR_RESERVED_FLAGS',
    reasonCode: MALFORMED,
  },

  // ---- Direction and order ----
  {
    name: 'first packet PINGREQ to a server',
    role: 'server',
    bytes: hex`c0 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'first packet PUBLISH to a server',
    role: 'server',
    bytes: hex`30 05 00 03 "a/b"`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBACK to a server',
    version: 4,
    role: 'server',
    bytes: hex`90 03 00 01 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNACK to a server',
    version: 5,
    role: 'server',
    bytes: hex`20 03 00 00 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PINGRESP to a server',
    version: 4,
    role: 'server',
    bytes: hex`d0 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBACK to a server',
    version: 4,
    role: 'server',
    bytes: hex`b0 02 00 01`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'SUBSCRIBE to a client',
    version: 4,
    role: 'client',
    bytes: hex`82 08 00 01 00 03 "a/b" 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'UNSUBSCRIBE to a client',
    version: 5,
    role: 'client',
    bytes: hex`a2 08 00 01 00 00 03 "a/b"`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'CONNECT to a client',
    version: 4,
    role: 'client',
    bytes: hex`10 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c1"`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'PINGREQ to a client',
    version: 5,
    role: 'client',
    bytes: hex`c0 00`,
    code: 'MQTT_ERR_UNEXPECTED_PACKET',
    reasonCode: PROTOCOL,
  },
  {
    name: 'subscription identifier in a PUBLISH to a server',
    version: 5,
    role: 'server',
    bytes: hex`30 08 00 03 "a/b" 02 0b 01`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
  {
    name: 'session expiry interval in a DISCONNECT to a client [MQTT-3.14.2-2]',
    version: 5,
    role: 'client',
    bytes: hex`e0 07 00 05 11 00 00 00 05`,
    code: 'MQTT_ERR_PROTOCOL_ERROR',
    reasonCode: PROTOCOL,
  },
];

function feed(row: Row, chunks: Iterable<Uint8Array>): { error: unknown; packets: Packet[] } {
  const options: DecoderOptions = {};
  if (row.version !== undefined) options.protocolVersion = row.version;
  if (row.role !== undefined) options.role = row.role;
  const decoder = new Decoder(options);
  const packets: Packet[] = [];
  try {
    for (const chunk of chunks) {
      decoder.push(chunk);
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) packets.push(p);
    }
  } catch (error) {
    return { error, packets };
  }
  return { error: undefined, packets };
}

function assertRowError(row: Row, error: unknown, how: string): void {
  assert.ok(error instanceof MqttError, `${how}: expected an MqttError for ${toHex(row.bytes)}, got ${String(error)}`);
  assert.equal(error.code, row.code, `${how}: ${error.message}`);
  assert.equal(error.reasonCode, row.reasonCode, `${how}: reason code of ${error.code}: ${error.message}`);
  if (row.protocolLevel !== undefined) {
    assert.ok(error instanceof UnsupportedProtocolError, `${how}: an UnsupportedProtocolError`);
    assert.equal(error.protocolLevel, row.protocolLevel);
  }
}

describe('malformed input', () => {
  for (const row of rows) {
    test(`${row.version === undefined ? 'learned' : row.version === 4 ? '3.1.1' : '5.0'}: ${row.name}`, () => {
      const whole = feed(row, [row.bytes]);
      assert.deepEqual(whole.packets, [], 'no packet before the error');
      assertRowError(row, whole.error, 'whole');
      const buffer = feed(row, [Buffer.from(row.bytes)]);
      assert.deepEqual(buffer.packets, []);
      assertRowError(row, buffer.error, 'whole Buffer');
      const bytewise = feed(
        row,
        Array.from(row.bytes, (_, i) => row.bytes.subarray(i, i + 1)),
      );
      assert.deepEqual(bytewise.packets, []);
      assertRowError(row, bytewise.error, 'byte by byte');
    });
  }
});

describe('CONNECT only once', () => {
  test('a second CONNECT to a server is a protocol error [MQTT-3.1.0-2]', () => {
    const connect = hex`10 0f 00 04 "MQTT" 05 02 00 3c 00 00 02 "c1"`;
    const decoder = new Decoder({ role: 'server' });
    decoder.push(connect);
    decoder.push(hex`10 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c1"`);
    assert.equal(decoder.next()?.type, 'connect');
    assert.throws(() => decoder.next(), { code: 'MQTT_ERR_UNEXPECTED_PACKET', reasonCode: PROTOCOL });
    assert.equal(decoder.protocolVersion, 5, 'the second CONNECT did not switch the version');
  });

  test('a decoder without a role accepts CONNECT repeatedly (tests and tools)', () => {
    const decoder = new Decoder({ protocolVersion: 4 });
    decoder.push(hex`10 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c1" 10 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c2"`);
    assert.equal(decoder.next()?.type, 'connect');
    assert.equal(decoder.next()?.type, 'connect');
  });
});

describe('packet size limit', () => {
  test('a too large packet is refused from its fixed header, before the body arrives', () => {
    const decoder = new Decoder({ protocolVersion: 4, maximumPacketSize: 100 });
    decoder.push(hex`30 63`); // PUBLISH, remaining length 99: 101 bytes in all
    assert.throws(
      () => decoder.next(),
      (e: unknown) => e instanceof MqttError && e.code === 'MQTT_ERR_PACKET_TOO_LARGE' && e.reasonCode === 0x95,
    );
  });

  test('a two-byte remaining length is refused as soon as it is complete', () => {
    const decoder = new Decoder({ protocolVersion: 5, maximumPacketSize: 1000 });
    decoder.push(hex`30 e9`);
    assert.equal(decoder.next(), undefined, 'the length is not complete yet');
    decoder.push(hex`07`); // 0x69 + 7 * 128 = 1001
    assert.throws(() => decoder.next(), { code: 'MQTT_ERR_PACKET_TOO_LARGE' });
  });

  test('a packet of exactly the maximum size is accepted', () => {
    const decoder = new Decoder({ protocolVersion: 4, maximumPacketSize: 100 });
    const packet = new Uint8Array(100);
    packet.set(hex`30 62 00 03 "a/b"`); // 2 + 98: the rest is payload
    decoder.push(packet);
    const got = decoder.next();
    assert.equal(got?.type, 'publish');
    assert.equal(got.type === 'publish' && got.payload.length, 93);
  });

  test('the limit applies to every packet type', () => {
    const decoder = new Decoder({ protocolVersion: 5, maximumPacketSize: 4 });
    decoder.push(hex`e0 03`);
    assert.throws(() => decoder.next(), { code: 'MQTT_ERR_PACKET_TOO_LARGE' });
  });
});

describe('role server learns the version from CONNECT', () => {
  test('5.0 CONNECT, then a 5.0 PUBLISH with properties', () => {
    const decoder = new Decoder({ role: 'server' });
    decoder.push(hex`10 0f 00 04 "MQTT" 05 02 00 3c 00 00 02 "c1"`);
    decoder.push(hex`30 09 00 03 "a/b" 03 23 00 07`);
    assert.equal(decoder.next()?.type, 'connect');
    assert.equal(decoder.protocolVersion, 5);
    const publish = decoder.next();
    assert.ok(publish?.type === 'publish');
    assert.deepEqual(publish.properties, { topicAlias: 7 });
  });

  test('3.1.1 CONNECT, then AUTH is an unknown type', () => {
    const decoder = new Decoder({ role: 'server' });
    decoder.push(hex`10 0e 00 04 "MQTT" 04 02 00 3c 00 02 "c1" f0 00`);
    assert.equal(decoder.next()?.type, 'connect');
    assert.throws(() => decoder.next(), { code: 'MQTT_ERR_UNKNOWN_PACKET_TYPE' });
  });
});

test('malformed table size', () => {
  assert.ok(rows.length >= 150, `${rows.length} rows`);
});
