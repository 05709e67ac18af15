// Changing who may connect, and what they may do, while the broker runs: `otalink broker` re-reads its password
// and ACL files on SIGHUP, as Mosquitto does, so that revoking a stolen vehicle's credentials or narrowing its ACL
// takes effect without restarting a broker that 100 000 vehicles are connected to. The new rules apply at once to
// connected clients (revoked ones are disconnected, subscriptions the ACL no longer allows are removed) and to an
// offline session when it is resumed (`recheckSubscriptions`), since the ACL is checked at SUBSCRIBE, not per message.
import { parseSharedSubscription } from '@otalink/mqtt/topic';
import type { Connection } from './connection.js';
import type { BrokerCore } from './core.js';
import type { AuthenticatedBy, AuthUpdate, AuthUpdateResult, ClientIdentity } from './options.js';
import type { Session } from './session.js';

const NOT_AUTHORIZED = 0x87;

export function authenticatedBy(connection: Connection): AuthenticatedBy {
  const transport = connection.transport;
  if (transport.identityFromCertificate && transport.certificateIdentity !== undefined) return 'certificate';
  if (connection.authMethod !== undefined) return 'enhanced';
  return connection.identity.username === undefined ? 'anonymous' : 'password';
}

export function updateAuth(core: BrokerCore, update: AuthUpdate): AuthUpdateResult {
  const options = core.options;
  // CONNECTs whose credentials are being checked under the old rules are checked again (checkCredentials).
  core.authGeneration++;
  if (update.authenticate !== undefined) options.authenticate = update.authenticate ?? undefined;
  if (update.authorize !== undefined) options.authorize = update.authorize ?? undefined;
  if (update.allowAnonymous !== undefined) options.allowAnonymous = update.allowAnonymous;
  const result: AuthUpdateResult = { disconnected: 0, subscriptionsRemoved: 0 };
  const revoke = update.revoke;
  // Closing takes a connection out of the list only once its socket closes, but it is taken apart first.
  const connected: Connection[] = [];
  for (const connection of core.connections) if (connection.state === 'connected') connected.push(connection);
  for (const connection of connected) {
    const how = authenticatedBy(connection);
    if (revoke?.(connection.identity, how) === true) {
      core.logger.info(
        { code: 'BROKER_ERR_NOT_AUTHORIZED', clientId: connection.identity.clientId, authenticatedBy: how },
        'credentials revoked: disconnecting',
      );
      connection.setCloseReason('credentials revoked');
      connection.close(NOT_AUTHORIZED, 'credentials revoked');
      result.disconnected++;
      continue;
    }
    const session = connection.session;
    if (session !== undefined) {
      result.subscriptionsRemoved += recheckSubscriptions(core, session, connection.identity, false);
    }
  }
  return result;
}

/**
 * Takes out of `session` the subscriptions `identity` may not hold under the current `authorize` (the ACL changed,
 * or a session is resumed under another user name), and the messages queued that it may not read: each stops
 * delivering at once. When `resuming`, unacknowledged ones it may not read go too, instead of being sent again:
 * the protocol's resend assumes the same principal, and another one must not get the first one's messages.
 * Returns how many subscriptions went.
 */
export function recheckSubscriptions(
  core: BrokerCore,
  session: Session,
  identity: ClientIdentity,
  resuming: boolean,
): number {
  const authorize = core.options.authorize;
  if (authorize === undefined) return 0;
  const refused: string[] = [];
  for (const filter of session.state.subscriptions.keys()) {
    const plain = parseSharedSubscription(filter)?.filter ?? filter;
    if (!authorize(identity, 'subscribe', plain)) refused.push(filter);
  }
  for (const filter of refused) core.removeSubscription(session, filter);
  // Messages are checked on every resumption, not only when a subscription went: one queued or in flight may
  // outlive its subscription (an UNSUBSCRIBE keeps what was already owed), and its reader may now be another user.
  if (refused.length === 0 && !resuming) return 0;
  // A topic name is a filter matching only itself: readable if the identity may subscribe to it.
  const dropped = session.dropRefused(
    (delivery) => !authorize(identity, 'subscribe', delivery.message.topic),
    resuming,
  );
  if (refused.length > 0 || dropped > 0) {
    core.logger.info(
      { code: 'BROKER_ERR_NOT_AUTHORIZED', clientId: session.clientId, filters: refused, dropped },
      'subscriptions and messages the ACL does not allow this client were removed',
    );
  }
  return refused.length;
}
