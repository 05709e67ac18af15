// Counters the broker keeps on its hot path as plain numbers (cheap to increment); $SYS topics and the
// Prometheus exposition read them. Index 0..2 of the per-QoS arrays is the QoS level.

export interface BrokerStats {
  startedAt: number;
  connectionsCurrent: number;
  connectionsTotal: number;
  connectionsRejected: number;
  sessionsCurrent: number;
  /** Persistent sessions whose client is not connected. */
  sessionsOffline: number;
  subscriptionsCurrent: number;
  retainedCurrent: number;
  messagesIn: [number, number, number];
  messagesOut: [number, number, number];
  bytesIn: number;
  bytesOut: number;
  /** Messages dropped because a session queue was full, by policy. */
  droppedQueueFull: number;
  /** Messages dropped because their message expiry passed while queued. */
  droppedExpired: number;
  /** QoS 0 messages dropped because the subscriber's socket was backed up beyond the per-subscriber bound. */
  droppedSlowSubscriber: number;
  /** Messages not sent because they exceed the client's Maximum Packet Size. */
  droppedTooLarge: number;
  /** PUBLISH refused by ACL. */
  droppedNotAuthorized: number;
  /** Messages still queued for a session when it ended (expired, or ended by a clean start). */
  droppedSessionEnded: number;
  /** Subscriptions refused because the session held maxSubscriptionsPerClient already. */
  subscriptionsRefusedLimit: number;
  /** Connections closed for malformed packets or protocol errors. */
  protocolErrors: number;
  /** Connections closed because their output made no progress for sendTimeoutMs. */
  sendTimeouts: number;
  /** Connections closed for publishing faster than maxPublishRate (5.0: DISCONNECT 0x96). */
  rateLimited: number;
  /** Messages queued for offline sessions right now. */
  queuedCurrent: number;
  /** Bytes the durable store takes on disk (0 without a data directory); refreshed when read for $SYS or metrics. */
  storeBytes: number;
  /** Messages the store holds (queued, in flight or retained), counted once however many sessions share them. */
  storeMessages: number;
  /** PUBLISH packets not taken because the store refused or failed to keep them (BROKER_ERR_STORE_FULL). */
  storeRefused: number;
  /** 0 while the store refuses new messages (disk full, write error), else 1. */
  storeWritable: number;
  /** Bytes of damaged log skipped when the store was loaded (their records lost; BROKER_ERR_STORE_CORRUPT). */
  storeCorruptBytes: number;
}

export function createStats(now = Date.now()): BrokerStats {
  return {
    startedAt: now,
    connectionsCurrent: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    sessionsCurrent: 0,
    sessionsOffline: 0,
    subscriptionsCurrent: 0,
    retainedCurrent: 0,
    messagesIn: [0, 0, 0],
    messagesOut: [0, 0, 0],
    bytesIn: 0,
    bytesOut: 0,
    droppedQueueFull: 0,
    droppedExpired: 0,
    droppedSlowSubscriber: 0,
    droppedTooLarge: 0,
    droppedNotAuthorized: 0,
    droppedSessionEnded: 0,
    subscriptionsRefusedLimit: 0,
    protocolErrors: 0,
    sendTimeouts: 0,
    rateLimited: 0,
    queuedCurrent: 0,
    storeBytes: 0,
    storeMessages: 0,
    storeWritable: 1,
    storeRefused: 0,
    storeCorruptBytes: 0,
  };
}
