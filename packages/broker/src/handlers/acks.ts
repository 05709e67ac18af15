// Acknowledgements: PUBACK/PUBREC/PUBCOMP for messages the broker sent, PUBREL for QoS 2 messages it received.
// One for an id with nothing in flight is ignored (PUBREC: answered with PUBREL 0x92); one of the wrong kind for the
// message in flight is a Protocol Error, as Mosquitto takes it: a QoS 2 message stays unacknowledged until its PUBREC
// and its PUBREL until PUBCOMP ([MQTT-4.3.3-3], [MQTT-4.3.3-5]), so a PUBACK or PUBCOMP must not end it.
import type { PubackPacket, PubcompPacket, PubrecPacket, PubrelPacket } from '@otalink/mqtt/codec';
import { type Connection, violation } from '../connection.js';
import type { Session } from '../session.js';

const PACKET_ID_NOT_FOUND = 0x92;

/** Throws a Protocol Error when the message in flight under `packetId` waits for another acknowledgement. */
function expectAck(session: Session, packetId: number, type: 'puback' | 'pubcomp'): void {
  const awaited = session.awaits(packetId);
  if (awaited !== undefined && awaited !== type)
    throw violation(0x82, `${type} for packet ${packetId}, which awaits ${awaited}`);
}

export function handlePuback(connection: Connection, packet: PubackPacket): void {
  const session = connection.session;
  if (session === undefined) return;
  expectAck(session, packet.packetId, 'puback');
  const now = Date.now();
  connection.ackedAt = now;
  session.complete(packet.packetId, now);
}

export function handlePubrec(connection: Connection, packet: PubrecPacket): void {
  const session = connection.session;
  if (session === undefined) return;
  if (session.awaits(packet.packetId) === 'puback') {
    throw violation(0x82, `pubrec for packet ${packet.packetId}, which awaits puback`);
  }
  connection.ackedAt = Date.now();
  // A failure code ends the QoS 2 exchange without PUBREL.
  if ((packet.reasonCode ?? 0) >= 0x80) {
    session.complete(packet.packetId, Date.now());
    return;
  }
  if (session.released(packet.packetId)) return;
  connection.send({
    type: 'pubrel',
    packetId: packet.packetId,
    reasonCode: connection.protocolVersion === 5 ? PACKET_ID_NOT_FOUND : undefined,
  });
}

export function handlePubrel(connection: Connection, packet: PubrelPacket): void {
  const store = connection.core.store;
  const before = store.operations;
  const found = connection.session?.releaseQos2(packet.packetId) ?? false;
  // The release must be durable before PUBCOMP: a client may reuse the id at once, and a restart that still held it
  // would take the next message as a duplicate and drop it. If it cannot be stored, no PUBCOMP: the client resends.
  // A resent PUBREL finds the id gone while the first one's release may still wait to be written (a failed write
  // is written again first): its PUBCOMP waits for what is pending too.
  connection.ackAfter(
    store.durable && (store.operations !== before || !store.idle) ? store.commit() : undefined,
    () =>
      connection.send({
        type: 'pubcomp',
        packetId: packet.packetId,
        reasonCode: found || connection.protocolVersion === 4 ? 0 : PACKET_ID_NOT_FOUND,
      }),
    () => {},
  );
}

export function handlePubcomp(connection: Connection, packet: PubcompPacket): void {
  const session = connection.session;
  if (session === undefined) return;
  expectAck(session, packet.packetId, 'pubcomp');
  const now = Date.now();
  connection.ackedAt = now;
  session.complete(packet.packetId, now);
}
