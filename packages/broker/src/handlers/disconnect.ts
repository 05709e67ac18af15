// DISCONNECT from the client: no will (unless 5.0 reason 0x04), optionally a new session expiry, then close.
import type { DisconnectPacket } from '@otalink/mqtt/codec';
import { type Connection, violation } from '../connection.js';

const DISCONNECT_WITH_WILL = 0x04;
/** The usual reason, made once rather than per disconnect. */
const NORMAL = 'client disconnected (0x0)';

export function handleDisconnect(connection: Connection, packet: DisconnectPacket): void {
  const session = connection.session;
  const expiry = packet.properties?.sessionExpiryInterval;
  if (connection.protocolVersion === 5 && expiry !== undefined && session !== undefined) {
    // MQTT 5.0 3.14.2.2.2: a session that was to end with the connection cannot be made to outlive it now.
    if (session.state.expiryInterval === 0 && expiry > 0) {
      throw violation(0x82, 'DISCONNECT sets a session expiry after CONNECT set 0');
    }
    session.setExpiryInterval(Math.min(expiry, connection.core.limits.maxSessionExpiryInterval));
  }
  if (connection.protocolVersion === 4 || (packet.reasonCode ?? 0) !== DISCONNECT_WITH_WILL)
    connection.will = undefined;
  const reasonCode = packet.reasonCode ?? 0;
  connection.setCloseReason(reasonCode === 0 ? NORMAL : `client disconnected (0x${reasonCode.toString(16)})`);
  connection.closeAfterDisconnect();
}
