// @otalink/broker: the MQTT 3.1.1/5.0 broker.

export * from './auth/index.js';
export { type Broker, createBroker, type PublishOptions } from './broker.js';
export * from './config/index.js';
export type { BrokerEvents } from './core.js';
export { BrokerError, type BrokerErrorCode } from './errors.js';
export type { Message } from './message.js';
export * from './metrics/index.js';
export * from './options.js';
export type { SessionState, SubscriptionEntry } from './session.js';
export { type BrokerStats, createStats } from './stats.js';
export * from './store/index.js';
export { BROKER_VERSION, sysValues } from './sys.js';
