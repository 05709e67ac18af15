// SUBSCRIBE: authorize each filter, add it to the session and the router, acknowledge, then send the retained
// messages the retain handling asks for (not for shared subscriptions). For a persistent session under a durable
// store, SUBACK waits for the commit holding the subscriptions: if it fails, they are taken back and SUBACK says so
// (5.0: 0x97 Quota exceeded, 3.1.1: 0x80 Failure), so a client never holds a grant that a restart would not know.
import type { QoS, SubscribePacket } from '@otalink/mqtt/codec';
import { parseSharedSubscription } from '@otalink/mqtt/topic';
import type { Connection } from '../connection.js';
import type { Delivery } from '../message.js';
import type { Session, SubscriptionEntry } from '../session.js';

const REFUSED_311 = 0x80;
const NOT_AUTHORIZED = 0x87;
const QUOTA_EXCEEDED = 0x97;

/** A subscription this SUBSCRIBE set, with the one it replaced: what a failed commit puts back. */
interface Granted {
  index: number;
  entry: SubscriptionEntry;
  previous: SubscriptionEntry | undefined;
}

export function handleSubscribe(connection: Connection, packet: SubscribePacket): void {
  const session = connection.session!;
  const core = connection.core;
  const store = core.store;
  const before = store.operations;
  const authorize = core.options.authorize;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
  const reasonCodes: number[] = [];
  const wantRetained: SubscriptionEntry[] = [];
  const granted: Granted[] = [];
  for (const requested of packet.subscriptions) {
    const shared = parseSharedSubscription(requested.topicFilter);
    const filter = shared?.filter ?? requested.topicFilter;
    if (authorize !== undefined && !authorize(connection.identity, 'subscribe', filter)) {
      reasonCodes.push(connection.protocolVersion === 5 ? NOT_AUTHORIZED : REFUSED_311);
      continue;
    }
    const limit = core.limits.maxSubscriptionsPerClient;
    const holding = session.state.subscriptions;
    if (limit > 0 && holding.size >= limit && !holding.has(requested.topicFilter)) {
      core.stats.subscriptionsRefusedLimit++;
      core.logger.debug(
        {
          code: 'BROKER_ERR_SUBSCRIPTION_LIMIT',
          clientId: connection.identity.clientId,
          filter: requested.topicFilter,
        },
        'subscription refused: the session holds max_subscriptions already',
      );
      reasonCodes.push(connection.protocolVersion === 5 ? QUOTA_EXCEEDED : REFUSED_311);
      continue;
    }
    const entry: SubscriptionEntry = {
      filter: requested.topicFilter,
      qos: requested.qos,
      noLocal: requested.noLocal ?? false,
      retainAsPublished: requested.retainAsPublished ?? false,
      retainHandling: requested.retainHandling ?? 0,
      subscriptionId,
    };
    const previous = session.state.subscriptions.get(entry.filter);
    const isNew = core.addSubscription(session, entry);
    granted.push({ index: reasonCodes.length, entry, previous });
    reasonCodes.push(requested.qos);
    if (shared === undefined && (entry.retainHandling === 0 || (entry.retainHandling === 1 && isNew))) {
      wantRetained.push(entry);
    }
  }
  const commit = store.durable && store.operations !== before ? store.commit() : undefined;
  if (commit === undefined) {
    connection.send({ type: 'suback', packetId: packet.packetId, reasonCodes });
    for (const delivery of retainedFor(connection, wantRetained)) session.offer(delivery, undefined, Date.now());
    return;
  }
  // The retained messages are held like an inbound QoS 2 message (Session.hold): their records go into the same
  // batch as the subscriptions, and they go out behind SUBACK once it is durable, without a commit of their own.
  const held = retainedFor(connection, wantRetained);
  for (const delivery of held) session.hold(delivery);
  connection.ackAfter(
    commit,
    () => {
      connection.send({ type: 'suback', packetId: packet.packetId, reasonCodes });
      // Outside the acknowledgement's turn: a held delivery that was queued may be sent with a new record, and
      // that output must wait for the store like any other.
      if (held.length > 0) {
        queueMicrotask(() => {
          const now = Date.now();
          for (const delivery of held) session.offerHeld(delivery, undefined, now);
        });
      }
    },
    () => {
      const now = Date.now();
      for (const delivery of held) session.dropHeld(delivery, now);
      takeBack(connection, session, granted);
      const failure = connection.protocolVersion === 5 ? QUOTA_EXCEEDED : REFUSED_311;
      for (const { index } of granted) reasonCodes[index] = failure;
      connection.send({ type: 'suback', packetId: packet.packetId, reasonCodes });
    },
  );
}

/**
 * The commit holding these subscriptions failed: each goes back to what it was, in memory and (records after the
 * failed ones, which the store writes again first) in the log. One changed since by a later SUBSCRIBE is left alone.
 */
function takeBack(connection: Connection, session: Session, granted: Granted[]): void {
  const core = connection.core;
  if (core.sessions.get(session.clientId) !== session) return;
  for (let i = granted.length - 1; i >= 0; i--) {
    const { entry, previous } = granted[i]!;
    if (session.state.subscriptions.get(entry.filter) !== entry) continue;
    if (previous !== undefined) core.addSubscription(session, previous);
    else core.removeSubscription(session, entry.filter);
  }
}

/** The deliveries of the retained messages the new subscriptions ask for. */
function retainedFor(connection: Connection, wantRetained: SubscriptionEntry[]): Delivery[] {
  if (wantRetained.length === 0) return [];
  const core = connection.core;
  const now = Date.now();
  const deliveries: Delivery[] = [];
  for (const entry of wantRetained) {
    for (const message of core.router.retainedMatching(entry.filter, now)) {
      deliveries.push({
        message,
        qos: Math.min(message.qos, entry.qos) as QoS,
        retain: true,
        subscriptionIds: entry.subscriptionId === undefined ? undefined : [entry.subscriptionId],
      });
    }
  }
  core.stats.retainedCurrent = core.router.retained.size;
  return deliveries;
}
