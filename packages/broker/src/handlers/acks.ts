// Acknowledgements: PUBACK/PUBREC/PUBCOMP for messages the broker sent, PUBREL for QoS 2 messages it received.
import type { PubackPacket, PubcompPacket, PubrecPacket, PubrelPacket } from '@otalink/mqtt/codec';
import type { Connection } from '../connection.js';

const PACKET_ID_NOT_FOUND = 0x92;

export function handlePuback(connection: Connection, packet: PubackPacket): void {
  const now = Date.now();
  connection.ackedAt = now;
  connection.session?.complete(packet.packetId, now);
}

export function handlePubrec(connection: Connection, packet: PubrecPacket): void {
  const session = connection.session;
  if (session === undefined) return;
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
  const now = Date.now();
  connection.ackedAt = now;
  connection.session?.complete(packet.packetId, now);
}
