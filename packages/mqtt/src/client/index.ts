// The MQTT client: connect(url | options) → MqttClient. Node transports load on demand, so this module runs in
// a browser over ws:// and wss://.
export {
  type ClientEvents,
  type ClientState,
  connect,
  type EndOptions,
  type Message,
  MqttClient,
  MqttSubscription,
  type PublishOptions,
  type PublishResult,
  type SubscribeOptions,
  type UnsubscribeResult,
} from './client.js';
export { MessageStream } from './message-stream.js';
export type { AuthHook, ClientOptions, QueueOptions, ReconnectOptions, WillOptions } from './options.js';
export { MqttRedirectError } from './redirect.js';
export type { FileStore, FileStoreOptions } from './store/file-store.js';
export { MemoryStore } from './store/memory-store.js';
export { openFileStore } from './store/open-file-store.js';
export type { MessageStore } from './store/store.js';
export type { TlsOptions, Transport, TransportFactory, TransportHandlers, TransportTarget } from './transport.js';
export { type MemoryConnection, memoryTransport } from './transports/memory.js';
