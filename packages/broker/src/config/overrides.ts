// Environment variables and command-line flags on top of the config file. Precedence, lowest first: built-in
// defaults, the config file, OTALINK_BROKER_* variables, flags. Both go through the config file's own parsers.
import { BrokerConfigError, type SettingOrigin } from './errors.js';
import { type ConfigDraft, GLOBAL_KEYS, LOG_LEVELS, type Located } from './keys.js';
import { checkListener, located } from './parse.js';
import { parseChoice, parsePort, suggestion } from './values.js';

export const ENV_PREFIX = 'OTALINK_BROKER_';

/** The `otalink broker` flags that change the configuration, as text (they are parsed here, like file values). */
export interface BrokerFlags {
  /** -p/--port: the port of the first mqtt listener, or a new mqtt listener. */
  port?: string;
  /** --host: bind address for the listeners --port and --ws-port set (or the default listener). */
  host?: string;
  /** --ws-port: the port of the first ws listener, or a new ws listener. */
  wsPort?: string;
  allowAnonymous?: boolean;
  /** --metrics-port: Prometheus /metrics on this port (host from metrics_listener, else --host, else all addresses). */
  metricsPort?: string;
  logLevel?: string;
  dataDir?: string;
}

/** Environment variables that stand for flags rather than config keys. */
const ENV_FLAGS: Record<string, keyof BrokerFlags | 'config'> = {
  OTALINK_BROKER_CONFIG: 'config',
  OTALINK_BROKER_PORT: 'port',
  OTALINK_BROKER_HOST: 'host',
  OTALINK_BROKER_WS_PORT: 'wsPort',
};

interface ListenerOverrides {
  port?: Located<number>;
  host?: Located<string>;
  wsPort?: Located<number>;
}

export type Environment = Record<string, string | undefined>;

/** The config file path from OTALINK_BROKER_CONFIG, if set. */
export function configFileFromEnvironment(env: Environment): string | undefined {
  const value = env.OTALINK_BROKER_CONFIG;
  return value === undefined || value === '' ? undefined : value;
}

/**
 * Applies OTALINK_BROKER_<KEY> (any global config key, upper-cased) and OTALINK_BROKER_PORT/HOST/WS_PORT, then the
 * flags. Returns warnings for variables in the namespace that mean nothing (they are ignored, not fatal, so other
 * otalink components can share the prefix).
 */
export function applyOverrides(draft: ConfigDraft, env: Environment, flags: BrokerFlags): string[] {
  const warnings: string[] = [];
  const listenerOverrides: ListenerOverrides = {};
  const knownEnv = [...Object.keys(ENV_FLAGS), ...Object.keys(GLOBAL_KEYS).map((k) => ENV_PREFIX + k.toUpperCase())];
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith(ENV_PREFIX) || value === undefined || value === '') continue;
    const origin: SettingOrigin = { kind: 'env', name };
    const flag = ENV_FLAGS[name];
    if (flag === 'config') continue;
    if (flag === 'port' || flag === 'wsPort') {
      listenerOverrides[flag] = { value: located(origin, name, () => parsePort(value.trim())), origin };
      continue;
    }
    if (flag === 'host') {
      listenerOverrides.host = { value: value.trim(), origin };
      continue;
    }
    const key = name.slice(ENV_PREFIX.length).toLowerCase();
    const apply = GLOBAL_KEYS[key];
    if (apply === undefined) {
      warnings.push(`environment ${name}: not a broker setting, ignored${suggestion(name, knownEnv)}`);
      continue;
    }
    located(origin, key, () => apply(draft, value.trim(), origin));
  }

  const flag = (name: string): SettingOrigin => ({ kind: 'flag', name });
  if (flags.port !== undefined) {
    const origin = flag('--port');
    listenerOverrides.port = { value: located(origin, 'port', () => parsePort(flags.port as string)), origin };
  }
  if (flags.wsPort !== undefined) {
    const origin = flag('--ws-port');
    listenerOverrides.wsPort = { value: located(origin, 'ws-port', () => parsePort(flags.wsPort as string)), origin };
  }
  if (flags.host !== undefined) listenerOverrides.host = { value: flags.host, origin: flag('--host') };
  if (flags.allowAnonymous === true) draft.allowAnonymous = true;
  if (flags.metricsPort !== undefined) {
    const origin = flag('--metrics-port');
    const port = located(origin, 'metrics-port', () => parsePort(flags.metricsPort as string));
    // A broker asked to listen on one address (--host 127.0.0.1) serves its metrics there too, not on every one.
    const host = draft.metrics?.host ?? listenerOverrides.host?.value;
    draft.metrics = host === undefined ? { port } : { port, host };
  }
  if (flags.logLevel !== undefined) {
    const text = flags.logLevel;
    draft.logLevel = located(flag('--log-level'), 'log-level', () => parseChoice(text, LOG_LEVELS));
  }
  if (flags.dataDir !== undefined) {
    const origin = flag('--data-dir');
    const text = flags.dataDir;
    located(origin, 'data-dir', () => GLOBAL_KEYS.data_dir?.(draft, text, origin));
  }
  applyListenerOverrides(draft, listenerOverrides);
  return warnings;
}

function applyListenerOverrides(draft: ConfigDraft, overrides: ListenerOverrides): void {
  const { port, wsPort, host } = overrides;
  if (host !== undefined && host.value === '') {
    throw new BrokerConfigError(host.origin, 'host', 'expected a host name or address');
  }
  const override = (protocol: 'mqtt' | 'ws', setting: Located<number>) => {
    const existing = draft.listeners.find((l) => checkListener(l) === protocol);
    if (existing !== undefined) {
      existing.port = setting.value;
      if (host !== undefined) existing.host = host.value;
    } else {
      draft.listeners.push({
        origin: setting.origin,
        port: setting.value,
        host: host?.value,
        protocol: { value: protocol, origin: setting.origin },
      });
    }
  };
  if (port !== undefined) override('mqtt', port);
  if (wsPort !== undefined) override('ws', wsPort);
  if (host !== undefined && port === undefined && wsPort === undefined) {
    if (draft.listeners.length > 0) {
      throw new BrokerConfigError(
        host.origin,
        'host',
        'the config file defines its own listeners; give --port or --ws-port with --host, or set the host on a listener line',
      );
    }
    draft.listeners.push({ origin: host.origin, port: 1883, host: host.value });
  }
}
