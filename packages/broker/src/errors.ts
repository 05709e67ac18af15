// The broker's error class and the stable codes it throws and logs (BROKER_ERR_*).

export type BrokerErrorCode =
  | 'BROKER_ERR_INVALID_OPTION'
  | 'BROKER_ERR_LISTEN'
  | 'BROKER_ERR_CLOSED'
  | 'BROKER_ERR_INVALID_MESSAGE'
  // The durable store: cannot open or write the data directory; a damaged record; disk full or write error; the
  // directory is used by another broker; a compaction that failed (nothing lost, retried later).
  | 'BROKER_ERR_STORE'
  | 'BROKER_ERR_STORE_CORRUPT'
  | 'BROKER_ERR_STORE_FULL'
  // A batch was written but its fdatasync failed: it may or may not be on disk (the restart will tell).
  | 'BROKER_ERR_STORE_SYNC'
  | 'BROKER_ERR_STORE_LOCKED'
  | 'BROKER_ERR_STORE_COMPACT'
  // Log codes for why a connection ended.
  | 'BROKER_ERR_MALFORMED_PACKET'
  | 'BROKER_ERR_PROTOCOL_ERROR'
  | 'BROKER_ERR_UNSUPPORTED_PROTOCOL'
  | 'BROKER_ERR_CONNECT_TIMEOUT'
  | 'BROKER_ERR_KEEPALIVE_TIMEOUT'
  | 'BROKER_ERR_SEND_TIMEOUT'
  | 'BROKER_ERR_NOT_AUTHORIZED'
  | 'BROKER_ERR_AUTHENTICATION_FAILED'
  | 'BROKER_ERR_CLIENT_ID_REJECTED'
  | 'BROKER_ERR_KEEPALIVE_REJECTED'
  | 'BROKER_ERR_TOO_MANY_CONNECTIONS'
  | 'BROKER_ERR_RATE_LIMIT'
  | 'BROKER_ERR_SUBSCRIPTION_LIMIT'
  | 'BROKER_ERR_RECEIVE_MAXIMUM_EXCEEDED'
  | 'BROKER_ERR_TOPIC_ALIAS_INVALID'
  | 'BROKER_ERR_SESSION_TAKEN_OVER'
  | 'BROKER_ERR_SOCKET'
  | 'BROKER_ERR_CLOSE_TIMEOUT';

export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  readonly code: BrokerErrorCode;

  constructor(code: BrokerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
