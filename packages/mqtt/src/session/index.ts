// Pure protocol state for the client end: no I/O, no timers.
export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export {
  type AckToken,
  ClientSession,
  type OutgoingMessage,
  type ServerLimits,
  type SessionEvent,
  type SessionOptions,
  type SessionState,
  type Step,
} from './client-session.js';
export {
  type IncomingRecord,
  incomingKey,
  type OutgoingRecord,
  outgoingKey,
  recordKey,
  type StoredRecord,
} from './records.js';
export { type AliasChoice, IncomingTopicAliases, OutgoingTopicAliases } from './topic-alias.js';
