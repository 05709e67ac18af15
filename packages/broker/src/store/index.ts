// The broker's persistence: the store interface and its two implementations.
export { nodeStoreFs, type StoreFs } from './fs.js';
export { LogStore, type LogStoreOptions, STORE_FORMAT, type SyncPolicy } from './log.js';
export { MemoryStore } from './memory.js';
export type { StoreOp } from './ops.js';
export type {
  BrokerStore,
  StoreContents,
  StoredDelivery,
  StoredInflight,
  StoredSession,
  StoredWill,
  StoreLiveView,
  StoreSize,
} from './types.js';
