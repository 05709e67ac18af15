// The config file's grammar: one `key value` per line, `#` starts a comment line, `listener <port> [host]` opens a
// listener section that lasts until the next `listener` line. Pure: no file is opened here.
import type { ListenerProtocol } from '../options.js';
import { BrokerConfigError, type SettingOrigin } from './errors.js';
import { type ConfigDraft, emptyDraft, GLOBAL_KEYS, LISTENER_KEYS, type ListenerDraft } from './keys.js';
import { parsePortAndHost, suggestion, ValueProblem } from './values.js';

/** Runs a value parser, turning its complaint into an error that says where the value came from. */
export function located<T>(origin: SettingOrigin, key: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ValueProblem) throw new BrokerConfigError(origin, key, error.message);
    throw error;
  }
}

/** Parses config file text; every error is a BrokerConfigError naming `file`, the line and the key. */
export function parseBrokerConfig(text: string, file: string): ConfigDraft {
  const draft = emptyDraft();
  const globalLines = new Map<string, number>();
  const listenerLines = new Map<string, number>();
  // Listeners by "host port", to refuse two sections that would bind the same address.
  const bound = new Map<number, Array<{ host: string | undefined; line: number }>>();
  let listener: ListenerDraft | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNumber = i + 1;
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const space = line.search(/\s/);
    const key = space === -1 ? line : line.slice(0, space);
    const value = space === -1 ? '' : line.slice(space).trim();
    const origin: SettingOrigin = { kind: 'file', file, line: lineNumber };

    if (key === 'listener') {
      if (listener !== undefined) checkListener(listener);
      const { port, host } = located(origin, key, () => parsePortAndHost(value));
      // One port, two listeners: the same address, or all addresses (which take every specific one) beside any.
      const previous = bound.get(port)?.find((other) => overlap(host, other.host));
      if (port !== 0 && previous !== undefined) {
        throw new BrokerConfigError(
          origin,
          key,
          `port ${port} on ${host ?? 'all addresses'} overlaps the listener on ${previous.host ?? 'all addresses'} (line ${previous.line})`,
        );
      }
      bound.set(port, [...(bound.get(port) ?? []), { host, line: lineNumber }]);
      listener = { origin, port, host };
      draft.listeners.push(listener);
      listenerLines.clear();
      continue;
    }

    const applyListener = LISTENER_KEYS[key];
    if (applyListener !== undefined) {
      if (listener === undefined) {
        throw new BrokerConfigError(
          origin,
          key,
          'only valid inside a listener section (after a "listener <port>" line)',
        );
      }
      const previous = listenerLines.get(key);
      if (previous !== undefined) {
        throw new BrokerConfigError(origin, key, `already set for this listener on line ${previous}`);
      }
      listenerLines.set(key, lineNumber);
      const section = listener;
      located(origin, key, () => applyListener(section, value, origin));
      continue;
    }

    const applyGlobal = GLOBAL_KEYS[key];
    if (applyGlobal === undefined) {
      const known = [...Object.keys(GLOBAL_KEYS), ...Object.keys(LISTENER_KEYS), 'listener'];
      throw new BrokerConfigError(origin, key, `unknown key${suggestion(key, known)}`);
    }
    const previous = globalLines.get(key);
    if (previous !== undefined) throw new BrokerConfigError(origin, key, `already set on line ${previous}`);
    globalLines.set(key, lineNumber);
    if (value === '') throw new BrokerConfigError(origin, key, 'expected a value');
    located(origin, key, () => applyGlobal(draft, value, origin));
  }
  if (listener !== undefined) checkListener(listener);
  return draft;
}

const TLS_PROTOCOLS = new Set<ListenerProtocol>(['mqtts', 'wss']);

/**
 * The listener's protocol after its section is complete: explicit, or inferred Mosquitto-style (a certfile makes a
 * listener TLS; `websockets` becomes ws or wss). Throws for keys that do not fit the protocol.
 */
export function checkListener(listener: ListenerDraft): ListenerProtocol {
  const stated = listener.protocol?.value;
  const tls = listener.certfile !== undefined || listener.keyfile !== undefined;
  let protocol: ListenerProtocol;
  if (stated === undefined) protocol = tls ? 'mqtts' : 'mqtt';
  else if (stated === 'websockets') protocol = tls ? 'wss' : 'ws';
  else protocol = stated;

  const isTls = TLS_PROTOCOLS.has(protocol);
  const tlsKeys = [
    ['certfile', listener.certfile],
    ['keyfile', listener.keyfile],
    ['cafile', listener.cafile],
    ['require_certificate', listener.requireCertificate],
    ['use_identity_as_username', listener.useIdentityAsUsername],
  ] as const;
  if (!isTls) {
    for (const [key, setting] of tlsKeys) {
      if (setting !== undefined) {
        throw new BrokerConfigError(setting.origin, key, `only for mqtts or wss listeners; this one is ${protocol}`);
      }
    }
  } else {
    if (listener.certfile === undefined) {
      throw new BrokerConfigError(
        listener.keyfile?.origin ?? listener.protocol?.origin ?? listener.origin,
        'certfile',
        `a ${protocol} listener needs certfile and keyfile`,
      );
    }
    if (listener.keyfile === undefined) {
      throw new BrokerConfigError(
        listener.certfile.origin,
        'keyfile',
        `a ${protocol} listener needs keyfile next to certfile`,
      );
    }
    const require = listener.requireCertificate;
    if (require?.value === true && listener.cafile === undefined) {
      throw new BrokerConfigError(
        require.origin,
        'require_certificate',
        'needs a cafile to verify client certificates against',
      );
    }
    const identity = listener.useIdentityAsUsername;
    if (identity?.value === true && require?.value !== true) {
      throw new BrokerConfigError(identity.origin, 'use_identity_as_username', 'needs require_certificate true');
    }
  }
  if (listener.path !== undefined && protocol !== 'ws' && protocol !== 'wss') {
    throw new BrokerConfigError(listener.path.origin, 'path', `only for ws or wss listeners; this one is ${protocol}`);
  }
  return protocol;
}

/**
 * Whether two listeners on one port cannot both bind: the same address, or a wildcard that takes the other. None
 * given and `::` take every address (Node listens dual-stack); `0.0.0.0` takes the IPv4 ones only.
 */
function overlap(a: string | undefined, b: string | undefined): boolean {
  if (a === b) return true;
  const all = (h: string | undefined) => h === undefined || h === '::' || h === '[::]';
  if (all(a) || all(b)) return true;
  const ipv4 = (h: string | undefined) => h !== undefined && !h.includes(':');
  return (a === '0.0.0.0' && ipv4(b)) || (b === '0.0.0.0' && ipv4(a));
}
