// MQTT 5.0 enhanced authentication: AUTH exchanges during CONNECT and re-authentication of a live connection.
import type { AuthPacket } from '@otalink/mqtt/codec';
import { type Connection, violation } from '../connection.js';
import { recheckSubscriptions } from '../reauthorize.js';
import { finishEnhancedConnect, refuse } from './connect.js';

const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;

export function handleAuth(connection: Connection, packet: AuthPacket): Promise<void> | undefined {
  const method = packet.properties?.authenticationMethod;
  if (connection.authMethod === undefined || method !== connection.authMethod) {
    throw violation(0x82, 'AUTH with a different or no authentication method');
  }
  const reasonCode = packet.reasonCode ?? 0;
  if (connection.state === 'authenticating') {
    if (connection.auth === undefined || reasonCode !== CONTINUE) throw violation(0x82, 'unexpected AUTH');
    return authStep(connection, packet.properties?.authenticationData);
  }
  if (!connection.connected) throw violation(0x82, 'AUTH before CONNECT');
  if (reasonCode === REAUTHENTICATE && connection.auth === undefined) {
    const authenticator = connection.core.options.enhancedAuth.get(method);
    if (authenticator === undefined) throw violation(0x8c, 'authentication method no longer available');
    connection.auth = { authenticator, step: 0, reauth: true };
    return authStep(connection, packet.properties?.authenticationData);
  }
  if (reasonCode === CONTINUE && connection.auth?.reauth === true) {
    return authStep(connection, packet.properties?.authenticationData);
  }
  throw violation(0x82, 'unexpected AUTH');
}

/** Runs one step of the authenticator and answers: AUTH 0x18 challenge, success, or failure. */
export async function authStep(connection: Connection, data: Uint8Array | undefined): Promise<void> {
  const exchange = connection.auth!;
  const method = connection.authMethod!;
  let result: Awaited<ReturnType<typeof exchange.authenticator.step>>;
  try {
    result = await exchange.authenticator.step(
      { clientId: connection.identity.clientId, username: connection.identity.username, step: exchange.step++ },
      data,
    );
  } catch (error) {
    connection.core.logger.error({ err: error, clientId: connection.identity.clientId }, 'enhanced auth failed');
    result = { result: 'fail', reasonCode: 0x80 };
  }
  if (connection.state === 'closing' || connection.state === 'closed') return;
  if (result.result === 'continue') {
    connection.send({
      type: 'auth',
      reasonCode: CONTINUE,
      properties: { authenticationMethod: method, authenticationData: result.data },
    });
    return;
  }
  connection.auth = undefined;
  if (result.result === 'success') {
    if (exchange.reauth) {
      if (result.username !== undefined && result.username !== connection.identity.username) {
        connection.identity.username = result.username;
        // Another identity now: what the first one subscribed to (and has queued) is checked against it, as a
        // session resumed under another user name is.
        const session = connection.session;
        if (session !== undefined) {
          recheckSubscriptions(connection.core, session, connection.identity, false);
          session.changeOwner(result.username);
        }
      }
      connection.send({
        type: 'auth',
        reasonCode: 0,
        properties: { authenticationMethod: method, authenticationData: result.data },
      });
    } else {
      finishEnhancedConnect(connection, result.username, result.data);
    }
    return;
  }
  const reasonCode = result.reasonCode ?? 0x87;
  if (exchange.reauth) connection.close(reasonCode);
  else refuse(connection, reasonCode, 0x05, 'BROKER_ERR_AUTHENTICATION_FAILED', 'enhanced authentication failed');
}
