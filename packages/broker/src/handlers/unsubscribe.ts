// UNSUBSCRIBE: remove each filter; 5.0 says per filter whether it existed.
import type { UnsubscribePacket } from '@otalink/mqtt/codec';
import type { Connection } from '../connection.js';

const NO_SUBSCRIPTION_EXISTED = 0x11;

export function handleUnsubscribe(connection: Connection, packet: UnsubscribePacket): void {
  const session = connection.session!;
  const core = connection.core;
  const reasonCodes: number[] = [];
  for (const filter of packet.topicFilters) {
    const existed = session.unsubscribe(filter);
    if (existed) {
      core.router.unsubscribe(session, filter);
      core.stats.subscriptionsCurrent--;
    }
    reasonCodes.push(existed ? 0 : NO_SUBSCRIPTION_EXISTED);
  }
  connection.send({
    type: 'unsuback',
    packetId: packet.packetId,
    reasonCodes: connection.protocolVersion === 5 ? reasonCodes : undefined,
  });
}
