// SUBSCRIBE: authorize each filter, add it to the session and the router, acknowledge, then send the retained
// messages the retain handling asks for (not for shared subscriptions).
import type { QoS, SubscribePacket } from '@otalink/mqtt/codec';
import { parseSharedSubscription } from '@otalink/mqtt/topic';
import type { Connection } from '../connection.js';
import type { SubscriptionEntry } from '../session.js';

const REFUSED_311 = 0x80;
const NOT_AUTHORIZED = 0x87;

export function handleSubscribe(connection: Connection, packet: SubscribePacket): void {
  const session = connection.session!;
  const core = connection.core;
  const authorize = core.options.authorize;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
  const reasonCodes: number[] = [];
  const wantRetained: SubscriptionEntry[] = [];
  for (const requested of packet.subscriptions) {
    const shared = parseSharedSubscription(requested.topicFilter);
    const filter = shared?.filter ?? requested.topicFilter;
    if (authorize !== undefined && !authorize(connection.identity, 'subscribe', filter)) {
      reasonCodes.push(connection.protocolVersion === 5 ? NOT_AUTHORIZED : REFUSED_311);
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
    const isNew = core.router.subscribe(session, entry);
    if (session.subscribe(entry)) core.stats.subscriptionsCurrent++;
    reasonCodes.push(requested.qos);
    if (shared === undefined && (entry.retainHandling === 0 || (entry.retainHandling === 1 && isNew))) {
      wantRetained.push(entry);
    }
  }
  connection.send({ type: 'suback', packetId: packet.packetId, reasonCodes });
  if (wantRetained.length === 0) return;
  const now = Date.now();
  for (const entry of wantRetained) {
    for (const message of core.router.retainedMatching(entry.filter, now)) {
      session.offer(
        {
          message,
          qos: Math.min(message.qos, entry.qos) as QoS,
          retain: true,
          subscriptionIds: entry.subscriptionId === undefined ? undefined : [entry.subscriptionId],
        },
        undefined,
        now,
      );
    }
  }
  core.stats.retainedCurrent = core.router.retained.size;
}
