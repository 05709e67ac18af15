// A client attached to a bare core through an in-memory socket: each read() is exactly one socket read, and every
// write the broker makes is recorded, so unit tests can tell what one event-loop turn did.
import { Duplex } from 'node:stream';
import { encode, type Packet } from '@otalink/mqtt';
import { Connection } from '../../src/connection.js';
import type { BrokerCore } from '../../src/core.js';

export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What a connection over an in-memory socket says of its transport: plain MQTT from loopback. */
export const MEMORY_TRANSPORT = {
  protocol: 'mqtt' as const,
  remoteAddress: '127.0.0.1',
  certificateIdentity: undefined,
  identityFromCertificate: false,
};

export interface Peer {
  socket: Duplex;
  /** Every write the broker made to this socket, one entry per write. */
  writes: Uint8Array[];
  /** Delivers the packets' bytes as one socket read. */
  read(...packets: Packet[]): void;
}

export function attach(core: BrokerCore): Peer {
  const writes: Uint8Array[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Uint8Array, _encoding, callback) {
      writes.push(chunk);
      callback();
    },
  });
  core.connections.add(new Connection(core, socket, MEMORY_TRANSPORT, false));
  return {
    socket,
    writes,
    read: (...packets) => socket.emit('data', Buffer.concat(packets.map((packet) => encode(packet, 4)))),
  };
}

/** A 3.1.1 client with a clean session, its CONNACK already taken. */
export async function connected(core: BrokerCore, clientId: string): Promise<Peer> {
  const peer = attach(core);
  peer.read({ type: 'connect', protocolVersion: 4, clientId, clean: true, keepalive: 0 });
  await nextTurn();
  peer.writes.length = 0;
  return peer;
}
