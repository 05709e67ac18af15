// The 5.0 properties a model message carries, all made from its note (`n<number>`) so that what a subscriber must
// see follows from the note alone: a user property always, and by the number's bits a content type, a response
// topic with correlation data, the payload format indicator and a message expiry interval. A broker passes them
// through unchanged, except the expiry, which it counts down ([MQTT-3.3.2-6]). A run on virtual time gives a message
// an expiry of its own, which the model counts down to the second.
import type { PublishProperties } from '../../packages/mqtt/src/codec/packets.js';

const EXPIRY = 3600;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function propertiesOf(note: string, expiry?: number): PublishProperties {
  const n = Number(note.slice(1));
  const p: PublishProperties = { userProperties: [['note', note]] };
  if (n & 1) p.contentType = `text/model-${n}`;
  if (n & 2) {
    p.responseTopic = `reply/${n}`;
    p.correlationData = encoder.encode(`c${n}`);
  }
  if (n & 4) p.payloadFormatIndicator = 1;
  if (n & 8) p.messageExpiryInterval = EXPIRY;
  if (expiry !== undefined) p.messageExpiryInterval = expiry;
  return p;
}

/**
 * What a subscriber's copy must show of them, as one string: the expiry counts as present when it is at most the
 * one sent and more than a minute of it is left (a model run is shorter than that).
 */
export function signatureOf(p: PublishProperties | undefined): string | undefined {
  if (p === undefined) return undefined;
  const parts: string[] = [];
  const user = p.userProperties?.map(([k, v]) => `${k}=${v}`).join('&');
  if (user !== undefined) parts.push(`user:${user}`);
  if (p.contentType !== undefined) parts.push(`ct:${p.contentType}`);
  if (p.responseTopic !== undefined) parts.push(`rt:${p.responseTopic}`);
  if (p.correlationData !== undefined) parts.push(`cd:${decoder.decode(p.correlationData)}`);
  if (p.payloadFormatIndicator !== undefined) parts.push(`pfi:${p.payloadFormatIndicator}`);
  const expiry = p.messageExpiryInterval;
  if (expiry !== undefined) parts.push(expiry <= EXPIRY && expiry > EXPIRY - 60 ? 'expiry' : `expiry:${expiry}`);
  return parts.length === 0 ? undefined : parts.join(' ');
}

/** The signature a copy of a message with `note` must show; `expiry`: the seconds left when it was sent. */
export const expectedSignature = (note: string | undefined, expiry?: number): string | undefined =>
  note === undefined ? undefined : signatureOf(propertiesOf(note, expiry));
