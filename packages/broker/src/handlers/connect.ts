// CONNECT: version and client id rules, authentication (plain or enhanced), session takeover and resumption,
// keepalive, CONNACK with the server's limits, then redelivery of whatever the session had in flight.
import { randomUUID } from 'node:crypto';
import { type ConnackProperties, type ConnectPacket, encode, MAX_PACKET_SIZE } from '@otalink/mqtt/codec';
import { topicNameProblem } from '@otalink/mqtt/topic';
import type { Connection } from '../connection.js';
import type { BrokerErrorCode } from '../errors.js';
import type { AuthenticationResult, BrokerLimits } from '../options.js';
import { recheckSubscriptions } from '../reauthorize.js';
import { authStep } from './auth.js';

/** What CONNECT asked for, kept while authentication runs. */
export interface PendingConnect {
  packet: ConnectPacket;
  clientId: string;
  assigned: boolean;
}

const pendingConnects = new WeakMap<Connection, PendingConnect>();

export function handleConnect(connection: Connection, packet: ConnectPacket): Promise<void> | undefined {
  if (connection.state !== 'awaiting-connect') {
    connection.core.stats.protocolErrors++;
    connection.close(0x82, 'a second CONNECT');
    return undefined;
  }
  const core = connection.core;
  const limits = core.limits;
  const v5 = packet.protocolVersion === 5;
  connection.protocolVersion = packet.protocolVersion;
  connection.identity.protocolVersion = packet.protocolVersion;
  connection.identity.username = packet.username;
  if (connection.overLimit || core.closing) {
    refuse(connection, 0x89, 0x03, 'BROKER_ERR_TOO_MANY_CONNECTIONS', 'connection limit reached');
    return undefined;
  }
  let clientId = packet.clientId;
  connection.identity.clientId = clientId;
  if (clientId.length > limits.maxClientIdLength) {
    refuse(connection, 0x85, 0x02, 'BROKER_ERR_CLIENT_ID_REJECTED', 'client id too long');
    return undefined;
  }
  // 3.1.1 has no Server Keep Alive to tell a client a shorter keepalive: one over the cap, or none at all (0), is
  // refused as Mosquitto refuses it (return code 0x02), rather than the link cut at 1.5x a keepalive it never heard of.
  if (!v5 && limits.maxKeepAlive > 0 && (packet.keepalive > limits.maxKeepAlive || packet.keepalive === 0)) {
    const why = `keepalive ${packet.keepalive} s of a 3.1.1 client, max_keepalive is ${limits.maxKeepAlive} s`;
    refuse(connection, 0x85, 0x02, 'BROKER_ERR_KEEPALIVE_REJECTED', why);
    return undefined;
  }
  let assigned = false;
  if (clientId.length === 0) {
    // 3.1.1 has no way to tell the client its id, so a session it could resume makes no sense (MQTT-3.1.3-8).
    if (!v5 && !packet.clean) {
      refuse(connection, 0x85, 0x02, 'BROKER_ERR_CLIENT_ID_REJECTED', 'empty client id without clean session');
      return undefined;
    }
    clientId = `otalink-${randomUUID()}`;
    assigned = v5;
    connection.identity.clientId = clientId;
  }
  const properties = packet.properties;
  if (v5) {
    connection.sendWindow = Math.min(properties?.receiveMaximum ?? 0xffff, limits.receiveMaximum);
    connection.clientMaximumPacketSize = properties?.maximumPacketSize ?? MAX_PACKET_SIZE;
    connection.clientTopicAliasMaximum = properties?.topicAliasMaximum ?? 0;
  }
  const willResponseTopic = packet.will?.properties?.responseTopic;
  if (willResponseTopic !== undefined && topicNameProblem(willResponseTopic) !== undefined) {
    // [MQTT-3.3.2-14]: the will's PUBLISH would carry it to every subscriber.
    refuse(connection, 0x82, 0x02, 'BROKER_ERR_PROTOCOL_ERROR', 'will response topic with a wildcard or U+0000');
    return undefined;
  }
  connection.will = packet.will;
  const method = v5 ? properties?.authenticationMethod : undefined;
  if (method !== undefined) {
    const authenticator = core.options.enhancedAuth.get(method);
    if (authenticator === undefined) {
      refuse(connection, 0x8c, 0x05, 'BROKER_ERR_AUTHENTICATION_FAILED', `unknown authentication method ${method}`);
      return undefined;
    }
    connection.state = 'authenticating';
    connection.authMethod = method;
    connection.auth = { authenticator, step: 0, reauth: false };
    pendingConnects.set(connection, { packet, clientId, assigned });
    return authStep(connection, properties?.authenticationData);
  }
  return checkCredentials(connection, packet, clientId, assigned);
}

/**
 * Runs the authenticate hook and accepts or refuses. A check still running when the credentials change (updateAuth,
 * SIGHUP) is done again under the new ones: a revocation must not miss a CONNECT that was mid-way through it.
 */
function checkCredentials(
  connection: Connection,
  packet: ConnectPacket,
  clientId: string,
  assigned: boolean,
): Promise<void> | undefined {
  const core = connection.core;
  let result: AuthenticationResult | Promise<AuthenticationResult>;
  try {
    result = authenticate(connection, packet);
  } catch (error) {
    core.logger.error({ err: error, clientId }, 'authenticate hook failed');
    refuse(connection, 0x80, 0x03, 'BROKER_ERR_AUTHENTICATION_FAILED', 'the authenticate hook failed');
    return undefined;
  }
  if (!(result instanceof Promise)) {
    authenticated(connection, packet, clientId, assigned, result);
    return undefined;
  }
  connection.state = 'authenticating';
  const generation = core.authGeneration;
  return result.then(
    (settled) => {
      if (core.authGeneration !== generation && connection.state === 'authenticating') {
        return checkCredentials(connection, packet, clientId, assigned);
      }
      authenticated(connection, packet, clientId, assigned, settled);
      return undefined;
    },
    (error: unknown) => {
      core.logger.error({ err: error, clientId }, 'authenticate hook failed');
      refuse(connection, 0x80, 0x03, 'BROKER_ERR_AUTHENTICATION_FAILED', 'the authenticate hook failed');
    },
  );
}

/** The answer when no credential needs checking: made once, not per CONNECT. */
const ACCEPTED: AuthenticationResult = { ok: true };
const NO_IDENTITY: AuthenticationResult = { ok: false, reasonCode: 0x87 };

function authenticate(
  connection: Connection,
  packet: ConnectPacket,
): AuthenticationResult | Promise<AuthenticationResult> {
  const { authenticate: hook, allowAnonymous } = connection.core.options;
  const transport = connection.transport;
  // A verified client certificate is the credential when the listener takes identities from certificates.
  if (transport.identityFromCertificate) {
    // A certificate without a CN names nobody: refused, as Mosquitto does, rather than falling back to a user name
    // the listener was configured not to trust.
    if (transport.certificateIdentity === undefined) return NO_IDENTITY;
    return { ok: true, username: transport.certificateIdentity };
  }
  if (packet.username === undefined && packet.password === undefined && allowAnonymous) return ACCEPTED;
  if (hook !== undefined) {
    return hook({
      clientId: connection.identity.clientId,
      username: packet.username,
      password: packet.password,
      certificateIdentity: transport.certificateIdentity,
      protocolVersion: packet.protocolVersion,
      remoteAddress: connection.remoteAddress,
    });
  }
  if (allowAnonymous) return ACCEPTED;
  return { ok: false, reasonCode: 0x87 };
}

function authenticated(
  connection: Connection,
  packet: ConnectPacket,
  clientId: string,
  assigned: boolean,
  result: AuthenticationResult,
): void {
  if (connection.state !== 'authenticating' && connection.state !== 'awaiting-connect') return;
  if (!result.ok) {
    refuse(connection, result.reasonCode, to311(result.reasonCode), 'BROKER_ERR_NOT_AUTHORIZED', 'authentication');
    return;
  }
  accept(connection, packet, clientId, assigned, result.username ?? packet.username, undefined);
}

/** Finishes an enhanced authentication started by CONNECT. */
export function finishEnhancedConnect(
  connection: Connection,
  username: string | undefined,
  data: Uint8Array | undefined,
): void {
  const pending = pendingConnects.get(connection);
  pendingConnects.delete(connection);
  if (pending === undefined) return;
  const { packet, clientId, assigned } = pending;
  accept(connection, packet, clientId, assigned, username ?? packet.username, data);
}

/** Refuses a CONNECT: 5.0 reason code or the 3.1.1 return code, then close. */
export function refuse(
  connection: Connection,
  reasonCode: number,
  returnCode311: number,
  logCode: BrokerErrorCode,
  why: string,
): void {
  const core = connection.core;
  core.stats.connectionsRejected++;
  // The log names the code the client got: a 3.1.1 client's return code, not the 5.0 reason behind it.
  const code = connection.protocolVersion === 5 ? reasonCode : returnCode311;
  core.logger.info(
    { code: logCode, clientId: connection.identity.clientId, remote: connection.remoteAddress, reasonCode: code },
    `refused a connection: ${why}`,
  );
  connection.send({ type: 'connack', sessionPresent: false, reasonCode: code });
  connection.close();
}

/**
 * Accepting 5.0 CONNACKs that carry nothing but the server's limits, the usual answer: encoded once per limits
 * object (never changed after the broker is made) and session present flag, shared by every such CONNECT.
 */
const plainConnacks5 = new WeakMap<BrokerLimits, [notPresent: Uint8Array, present: Uint8Array]>();

function plainConnack5(limits: BrokerLimits, present: boolean): Uint8Array {
  let pair = plainConnacks5.get(limits);
  if (pair === undefined) {
    const encoded = (sessionPresent: boolean): Uint8Array => {
      const properties: ConnackProperties = {};
      if (limits.receiveMaximum < 0xffff) properties.receiveMaximum = limits.receiveMaximum;
      properties.maximumPacketSize = limits.maxPacketSize;
      properties.topicAliasMaximum = limits.topicAliasMaximum;
      return encode({ type: 'connack', sessionPresent, reasonCode: 0, properties }, 5);
    };
    pair = [encoded(false), encoded(true)];
    plainConnacks5.set(limits, pair);
  }
  return present ? pair[1] : pair[0];
}

function to311(reasonCode: number): number {
  switch (reasonCode) {
    case 0x86:
      return 0x04;
    case 0x85:
      return 0x02;
    case 0x88:
    case 0x89:
      return 0x03;
    default:
      return 0x05;
  }
}

function accept(
  connection: Connection,
  packet: ConnectPacket,
  clientId: string,
  assigned: boolean,
  username: string | undefined,
  authenticationData: Uint8Array | undefined,
): void {
  const core = connection.core;
  const limits = core.limits;
  const v5 = packet.protocolVersion === 5;
  if (core.options.clientIdFromUsername) {
    // use_username_as_clientid: the session is the user's, whatever id the client named. A client without a user
    // name (anonymous access on; an empty one is none, or all would share client id "") has no id it may use, and
    // naming a vehicle's would take over or wipe its session: refused with 0x87, as Mosquitto does.
    if (username === undefined || username === '') {
      refuse(connection, 0x87, 0x05, 'BROKER_ERR_NOT_AUTHORIZED', 'use_username_as_clientid: no user name');
      return;
    }
    if (username !== clientId) {
      clientId = username;
      assigned = v5;
      connection.identity.clientId = clientId;
    }
  }
  connection.identity.username = username;
  // Whatever sees the identity later (ACL, the will, client events) gets the peer's address, read while the socket
  // is open; without any of them it is not read at all (see Connection.remoteAddress).
  const events = core.events;
  if (
    core.options.authorize !== undefined ||
    connection.will !== undefined ||
    events.listenerCount('clientConnected') > 0 ||
    events.listenerCount('clientDisconnected') > 0
  ) {
    connection.keepRemoteAddress();
  }
  // Takeover: the old connection's will follows the usual rules (its delay, or the session ending).
  const previous = core.client(clientId);
  if (previous !== undefined && previous !== connection) previous.takenOver();
  const requestedExpiry = v5 ? (packet.properties?.sessionExpiryInterval ?? 0) : packet.clean ? 0 : Infinity;
  const expiryInterval = Math.min(requestedExpiry, limits.maxSessionExpiryInterval);
  const { session, present } = core.openSession(clientId, packet.clean, expiryInterval, username ?? null);
  // The ACL is checked at SUBSCRIBE: a session resumed after the ACL changed (or one restored from a store that
  // did not name its owner) keeps only what this identity may read.
  if (present) recheckSubscriptions(core, session, connection.identity, true);
  connection.session = session;
  connection.state = 'connected';
  core.armWill(connection);

  let keepalive = packet.keepalive;
  if (v5 && limits.maxKeepAlive > 0 && (keepalive > limits.maxKeepAlive || keepalive === 0)) {
    keepalive = limits.maxKeepAlive;
  }
  const plain =
    keepalive === packet.keepalive &&
    !assigned &&
    expiryInterval === requestedExpiry &&
    connection.authMethod === undefined;
  if (v5 && plain) {
    connection.sendEncoded(plainConnack5(limits, present));
  } else if (v5) {
    const properties: ConnackProperties = {};
    if (keepalive !== packet.keepalive) properties.serverKeepAlive = keepalive;
    if (assigned) properties.assignedClientIdentifier = clientId;
    if (expiryInterval !== requestedExpiry) properties.sessionExpiryInterval = expiryInterval;
    if (limits.receiveMaximum < 0xffff) properties.receiveMaximum = limits.receiveMaximum;
    properties.maximumPacketSize = limits.maxPacketSize;
    properties.topicAliasMaximum = limits.topicAliasMaximum;
    if (connection.authMethod !== undefined) {
      properties.authenticationMethod = connection.authMethod;
      if (authenticationData !== undefined) properties.authenticationData = authenticationData;
    }
    connection.send({ type: 'connack', sessionPresent: present, reasonCode: 0, properties });
  } else {
    connection.sendConnack311(present);
  }
  // A CONNACK promises the armed will even across a crash: it waits for the will's record if a write fails.
  if (connection.willStored) connection.needsLog();
  connection.startKeepalive(keepalive);
  session.resume(connection, Date.now());
  if (core.logger.isLevelEnabled('debug')) {
    core.logger.debug({ clientId, username, sessionPresent: present, version: packet.protocolVersion }, 'connected');
  }
  if (events.listenerCount('clientConnected') > 0) {
    events.emit('clientConnected', { ...connection.identity, sessionPresent: present });
  }
}
