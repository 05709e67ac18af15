// Packet dispatch: one short handler per packet type. A handler returns a promise only for asynchronous steps
// (authentication); the connection holds later packets until it settles.
import type { Packet } from '@otalink/mqtt/codec';
import { type Connection, violation } from '../connection.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './acks.js';
import { handleAuth } from './auth.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePingreq } from './ping.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

export function dispatch(connection: Connection, packet: Packet): Promise<void> | undefined {
  if (packet.type === 'connect') return handleConnect(connection, packet);
  if (packet.type === 'auth') return handleAuth(connection, packet);
  if (!connection.connected) {
    throw violation(0x82, `${packet.type} before the connection was accepted`);
  }
  switch (packet.type) {
    case 'publish':
      handlePublish(connection, packet);
      return undefined;
    case 'puback':
      handlePuback(connection, packet);
      return undefined;
    case 'pubrec':
      handlePubrec(connection, packet);
      return undefined;
    case 'pubrel':
      handlePubrel(connection, packet);
      return undefined;
    case 'pubcomp':
      handlePubcomp(connection, packet);
      return undefined;
    case 'subscribe':
      handleSubscribe(connection, packet);
      return undefined;
    case 'unsubscribe':
      handleUnsubscribe(connection, packet);
      return undefined;
    case 'pingreq':
      handlePingreq(connection);
      return undefined;
    case 'disconnect':
      handleDisconnect(connection, packet);
      return undefined;
    default:
      // The server-role decoder refuses server-to-client packets before they get here.
      throw violation(0x82, `unexpected ${packet.type}`);
  }
}
