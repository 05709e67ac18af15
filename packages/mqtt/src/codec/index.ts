export { Decoder, type DecoderOptions, decodePacket, MAX_PACKET_SIZE, UnsupportedProtocolError } from './decoder.js';
export { encode, encodedLength, encodeInto } from './encoder.js';
export { MqttError, type MqttErrorCode } from './errors.js';
export * from './packets.js';
export { PROPERTY_DEFS, type PropertyContext, type PropertyDef, propertyById } from './properties.js';
export { allowedReasonCodes, ConnackReturnCode311, ReasonCode, reasonName } from './reason-codes.js';
export { utf8Length } from './utf8.js';
export { VARINT_MAX } from './varint.js';
