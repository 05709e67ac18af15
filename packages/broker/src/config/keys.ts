// Every key the broker config knows: global keys (anywhere in the file, as in Mosquitto) and listener keys (only
// after a `listener` line). Each turns its text into a field of the draft configuration.
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BrokerLimits, ListenerProtocol } from '../options.js';
import type { SettingOrigin } from './errors.js';
import { parseBoolean, parseChoice, parseInteger, parseNonEmpty, parsePortAndHost, ValueProblem } from './values.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Located<T> {
  value: T;
  origin: SettingOrigin;
}

/** `websockets` is Mosquitto's word; it becomes ws or wss depending on certfile. */
export type ConfigProtocol = ListenerProtocol | 'websockets';

export interface ListenerDraft {
  origin: SettingOrigin;
  port: number;
  host: string | undefined;
  protocol?: Located<ConfigProtocol>;
  path?: Located<string>;
  cafile?: Located<string>;
  certfile?: Located<string>;
  keyfile?: Located<string>;
  requireCertificate?: Located<boolean>;
  useIdentityAsUsername?: Located<boolean>;
}

/** The configuration as read, before any file it names is opened. */
export interface ConfigDraft {
  allowAnonymous?: boolean;
  useUsernameAsClientId?: boolean;
  passwordFile?: Located<string>;
  aclFile?: Located<string>;
  limits: Partial<BrokerLimits>;
  sysIntervalSeconds?: number;
  metrics?: { port: number; host?: string };
  logLevel?: LogLevel;
  dataDir?: string;
  storeSync?: 'batch' | 'none';
  storeReserveBytes?: number;
  listeners: ListenerDraft[];
}

export function emptyDraft(): ConfigDraft {
  return { limits: {}, listeners: [] };
}

/** Paths in a config file are relative to the file's directory, so the broker can start from anywhere. */
export function resolvePath(text: string, origin: SettingOrigin): string {
  const path = parseNonEmpty(text, 'a file path');
  if (isAbsolute(path)) return path;
  return origin.kind === 'file' ? resolve(dirname(origin.file), path) : resolve(path);
}

const MAX = Number.MAX_SAFE_INTEGER;
// MQTT's largest packet: a 268 435 455-byte remaining length plus a 5-byte fixed header.
const MQTT_MAX_PACKET = 268_435_460;

type Apply = (draft: ConfigDraft, text: string, origin: SettingOrigin) => void;

function limit<K extends keyof BrokerLimits>(key: K, parse: (text: string) => BrokerLimits[K]): Apply {
  return (draft, text) => {
    draft.limits[key] = parse(text);
  };
}

export const GLOBAL_KEYS: Record<string, Apply> = {
  allow_anonymous: (draft, text) => {
    draft.allowAnonymous = parseBoolean(text);
  },
  use_username_as_clientid: (draft, text) => {
    draft.useUsernameAsClientId = parseBoolean(text);
  },
  password_file: (draft, text, origin) => {
    draft.passwordFile = { value: resolvePath(text, origin), origin };
  },
  acl_file: (draft, text, origin) => {
    draft.aclFile = { value: resolvePath(text, origin), origin };
  },
  max_connections: limit('maxConnections', (t) => parseInteger(t, 1, MAX)),
  max_packet_size: limit('maxPacketSize', (t) => parseInteger(t, 20, MQTT_MAX_PACKET)),
  receive_maximum: limit('receiveMaximum', (t) => parseInteger(t, 1, 65_535)),
  max_queued_messages: limit('maxQueuedMessages', (t) => parseInteger(t, 1, MAX)),
  max_queued_bytes: limit('maxQueuedBytes', (t) => parseInteger(t, 0, MAX)),
  queue_drop_policy: limit('queueDropPolicy', (t) => parseChoice(t, ['oldest', 'newest'] as const)),
  // 23 is the length every server must accept (MQTT 3.1.3-5); 65535 the most a UTF-8 string can hold.
  max_client_id_length: limit('maxClientIdLength', (t) => parseInteger(t, 23, 65_535)),
  max_publish_rate: limit('maxPublishRate', (t) => parseInteger(t, 0, MAX)),
  // Seconds in the file (like every other duration there), milliseconds in BrokerLimits.
  connect_timeout: limit('connectTimeoutMs', (t) => parseInteger(t, 1, 86_400) * 1000),
  send_timeout: limit('sendTimeoutMs', (t) => parseInteger(t, 0, 86_400) * 1000),
  max_keepalive: limit('maxKeepAlive', (t) => parseInteger(t, 0, 65_535)),
  max_subscriptions: limit('maxSubscriptionsPerClient', (t) => parseInteger(t, 0, MAX)),
  topic_alias_maximum: limit('topicAliasMaximum', (t) => parseInteger(t, 0, 65_535)),
  max_session_expiry: limit('maxSessionExpiryInterval', (t) => parseInteger(t, 0, 0xffff_ffff)),
  sys_interval: (draft, text) => {
    draft.sysIntervalSeconds = parseInteger(text, 0, 86_400);
  },
  metrics_listener: (draft, text) => {
    const { port, host } = parsePortAndHost(text);
    draft.metrics = host === undefined ? { port } : { port, host };
  },
  log_level: (draft, text) => {
    draft.logLevel = parseChoice(text, LOG_LEVELS);
  },
  data_dir: (draft, text, origin) => {
    draft.dataDir = resolvePath(text, origin);
  },
  store_sync: (draft, text) => {
    draft.storeSync = parseChoice(text, ['batch', 'none'] as const);
  },
  store_reserve: (draft, text) => {
    draft.storeReserveBytes = parseInteger(text, 0, MAX);
  },
};

type ApplyListener = (listener: ListenerDraft, text: string, origin: SettingOrigin) => void;

export const LISTENER_KEYS: Record<string, ApplyListener> = {
  protocol: (listener, text, origin) => {
    const value = parseChoice(text, ['mqtt', 'mqtts', 'ws', 'wss', 'websockets'] as const);
    listener.protocol = { value, origin };
  },
  path: (listener, text, origin) => {
    const value = parseNonEmpty(text, 'a URL path such as /mqtt');
    if (!value.startsWith('/')) throw new ValueProblem(`expected a URL path starting with /, got "${value}"`);
    listener.path = { value, origin };
  },
  cafile: (listener, text, origin) => {
    listener.cafile = { value: resolvePath(text, origin), origin };
  },
  certfile: (listener, text, origin) => {
    listener.certfile = { value: resolvePath(text, origin), origin };
  },
  keyfile: (listener, text, origin) => {
    listener.keyfile = { value: resolvePath(text, origin), origin };
  },
  require_certificate: (listener, text, origin) => {
    listener.requireCertificate = { value: parseBoolean(text), origin };
  },
  use_identity_as_username: (listener, text, origin) => {
    listener.useIdentityAsUsername = { value: parseBoolean(text), origin };
  },
};
