// $SYS/broker/... topics, published retained every interval. They start with $, so a subscription to # or +/...
// never sees them (the topic module enforces MQTT-4.7.2-1); clients subscribe to $SYS/# explicitly.
import type { BrokerCore } from './core.js';
import type { BrokerStats } from './stats.js';

export const BROKER_VERSION = 'otalink 0.1.0';

/**
 * Topics a client may not publish to (or name in its will), whatever its ACL, as Mosquitto refuses them: $SYS is
 * the broker's own (a retained "$SYS/broker/version" from a client would pass for the broker's), and $share/ is a
 * subscription prefix, never a topic. Other $ topics stay open (MQTT 4.7.2 leaves them to the implementation).
 */
export function reservedForBroker(topic: string): boolean {
  return topic.charCodeAt(0) === 0x24 && (topic.startsWith('$SYS/') || topic === '$SYS' || topic.startsWith('$share/'));
}

export function sysValues(stats: BrokerStats, now: number): Array<[string, string]> {
  const sum = (values: number[]) => String(values[0]! + values[1]! + values[2]!);
  return [
    ['$SYS/broker/version', BROKER_VERSION],
    ['$SYS/broker/uptime', `${Math.floor((now - stats.startedAt) / 1000)} seconds`],
    ['$SYS/broker/clients/connected', String(stats.connectionsCurrent)],
    ['$SYS/broker/clients/total', String(stats.sessionsCurrent)],
    ['$SYS/broker/clients/disconnected', String(stats.sessionsOffline)],
    ['$SYS/broker/messages/received', sum(stats.messagesIn)],
    ['$SYS/broker/messages/sent', sum(stats.messagesOut)],
    ['$SYS/broker/bytes/received', String(stats.bytesIn)],
    ['$SYS/broker/bytes/sent', String(stats.bytesOut)],
    ['$SYS/broker/retained messages/count', String(stats.retainedCurrent)],
    ['$SYS/broker/subscriptions/count', String(stats.subscriptionsCurrent)],
    ['$SYS/broker/store/messages/count', String(stats.queuedCurrent)],
    ['$SYS/broker/store/bytes', String(stats.storeBytes)],
    ['$SYS/broker/store/writable', String(stats.storeWritable)],
  ];
}

const encoder = new TextEncoder();

/** Publishes the current values once; the broker calls this on its interval. */
export function publishSys(core: BrokerCore): void {
  const now = Date.now();
  core.refreshStoreStats();
  for (const [topic, value] of sysValues(core.stats, now)) {
    core.publish({
      topic,
      payload: encoder.encode(value),
      qos: 0,
      retain: true,
      properties: undefined,
      expiresAt: 0,
      origin: undefined,
    });
  }
}
