// DISCONNECT from the client: no will after a normal one (0x00; any other 5.0 reason keeps it, [MQTT-3.1.2-8] and
// [MQTT-3.14.4-3]), optionally a new session expiry, then close.
import type { DisconnectPacket } from '@otalink/mqtt/codec';
import { type Connection, violation } from '../connection.js';

const NORMAL_DISCONNECTION = 0x00;
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
  const reasonCode = packet.reasonCode ?? 0;
  // 0x04 asks for the will; an error reason (0x80 and up) ends the connection as abnormally as a lost link.
  if (connection.protocolVersion === 4 || reasonCode === NORMAL_DISCONNECTION) connection.will = undefined;
  connection.setCloseReason(
    reasonCode === NORMAL_DISCONNECTION ? NORMAL : `client disconnected (0x${reasonCode.toString(16)})`,
  );
  connection.closeAfterDisconnect();
}
