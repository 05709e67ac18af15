// UNSUBSCRIBE: remove each filter; 5.0 says per filter whether it existed. For a persistent session under a durable
// store, UNSUBACK waits for the commit holding the removals: if it fails, the subscriptions are put back (a restart
// would bring them back too) and the client is told: 5.0 UNSUBACK 0x80 Unspecified error for each, 3.1.1 (whose
// UNSUBACK has no reason codes) no UNSUBACK and the connection closed.
import type { UnsubscribePacket } from '@otalink/mqtt/codec';
import type { Connection } from '../connection.js';
import type { SubscriptionEntry } from '../session.js';

const NO_SUBSCRIPTION_EXISTED = 0x11;
const UNSPECIFIED_ERROR = 0x80;

export function handleUnsubscribe(connection: Connection, packet: UnsubscribePacket): void {
  const session = connection.session!;
  const core = connection.core;
  const store = core.store;
  const before = store.operations;
  const reasonCodes: number[] = [];
  const removed: SubscriptionEntry[] = [];
  for (const filter of packet.topicFilters) {
    const entry = session.state.subscriptions.get(filter);
    const existed = core.removeSubscription(session, filter);
    if (existed) removed.push(entry!);
    reasonCodes.push(existed ? 0 : NO_SUBSCRIPTION_EXISTED);
  }
  const v5 = connection.protocolVersion === 5;
  const send = () =>
    connection.send({ type: 'unsuback', packetId: packet.packetId, reasonCodes: v5 ? reasonCodes : undefined });
  if (!store.durable || store.operations === before) {
    send();
    return;
  }
  connection.ackAfter(store.commit(), send, () => {
    // Back as they were, unless the session ended or a later SUBSCRIBE set the filter again meanwhile.
    if (core.sessions.get(session.clientId) === session) {
      for (const entry of removed) {
        if (!session.state.subscriptions.has(entry.filter)) core.addSubscription(session, entry);
      }
    }
    if (!v5) {
      connection.close();
      return;
    }
    for (let i = 0; i < reasonCodes.length; i++) if (reasonCodes[i] === 0) reasonCodes[i] = UNSPECIFIED_ERROR;
    send();
  });
}
