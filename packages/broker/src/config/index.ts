// The broker config file, OTALINK_BROKER_* environment variables and flags → BrokerOptions.
export { BrokerConfigError, type SettingOrigin } from './errors.js';
export { type ConfigDraft, GLOBAL_KEYS, LISTENER_KEYS, LOG_LEVELS, type LogLevel } from './keys.js';
export {
  buildBrokerOptions,
  loadBrokerConfig,
  type ResolveBrokerConfigOptions,
  type ResolvedBrokerConfig,
  resolveBrokerConfig,
} from './load.js';
export { applyOverrides, type BrokerFlags, ENV_PREFIX, type Environment } from './overrides.js';
export { parseBrokerConfig } from './parse.js';
export { type BrokerReload, reloadBroker } from './reload.js';
