// Client options and their normalisation from a URL or an object. Defaults follow MQTT.js where users expect
// them (port per scheme, '/mqtt' WebSocket path) and Paho for reconnect timing (1 s → 60 s).
import { MqttError } from '../codec/errors.js';
import type { AuthProperties, ConnectProperties, ProtocolVersion, QoS, WillProperties } from '../codec/packets.js';
import type { BackoffOptions } from '../session/backoff.js';
import type { MessageStore } from './store/store.js';
import type { TlsOptions, TransportFactory, TransportTarget } from './transport.js';

export interface WillOptions {
  topic: string;
  payload: string | Uint8Array;
  qos?: QoS;
  retain?: boolean;
  properties?: WillProperties;
}

/** MQTT 5.0 enhanced authentication: `step(undefined)` gives the initial data, then each server challenge. */
export interface AuthHook {
  method: string;
  step(
    data: Uint8Array | undefined,
    info: { reasonCode: number; properties?: AuthProperties },
  ): Uint8Array | undefined | Promise<Uint8Array | undefined>;
}

export interface ReconnectOptions extends BackoffOptions {
  /** Default true. */
  enabled?: boolean;
  /**
   * A CONNACK refusal no retry can fix: bad user name or password, not authorized, banned, client id or protocol
   * version rejected, bad authentication method, a will the server does not take (3.1.1 return codes 1, 2, 4, 5).
   * 'slow' (default): the next attempt waits the longest delay (`maxDelayMs`, with jitter), as do the ones after it
   * while the refusal lasts, so a fleet whose credentials were revoked keeps asking, as a vehicle that cannot be
   * reached otherwise must, but not from once a second up. 'backoff': the usual growing delays. 'end': the client
   * ends with the refusal as its error (as mosquitto_sub; MQTT.js ends on any refusal). Other refusals
   * (server unavailable or busy, quota, connection rate) always take the usual backoff.
   */
  onPermanentRefusal?: 'slow' | 'backoff' | 'end';
}

export interface QueueOptions {
  /** Messages waiting to be sent (offline or beyond the in-flight window). Default: unbounded. */
  limit?: number;
  /** Which message fails with MQTT_ERR_QUEUE_FULL when the queue is over its limit. Default 'oldest'. */
  dropPolicy?: 'oldest' | 'newest';
}

export interface ClientOptions {
  /** mqtt://, mqtts://, ws://, wss:// (user:password@ and path are honoured). */
  url?: string;
  protocol?: 'mqtt' | 'mqtts' | 'ws' | 'wss';
  host?: string;
  port?: number;
  /** WebSocket path. Default '/mqtt'. */
  path?: string;
  /** 4 (3.1.1) or 5. Default 5. */
  protocolVersion?: ProtocolVersion;
  /** Default: generated for 3.1.1 and for persistent sessions; empty in 5.0 (the server assigns one). */
  clientId?: string;
  /** Clean Session / Clean Start. Default true. */
  clean?: boolean;
  /** Seconds. Default 60. */
  keepalive?: number;
  username?: string;
  password?: string | Uint8Array;
  will?: WillOptions;
  /** CONNECT properties (5.0). With clean false and no sessionExpiryInterval, the session is kept indefinitely. */
  properties?: ConnectProperties;
  auth?: AuthHook;
  tls?: TlsOptions;
  wsHeaders?: Record<string, string>;
  /** Covers TCP connect, TLS handshake and CONNACK. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** Wait for PINGRESP this long after the last byte received. Default: the keepalive interval. */
  pingTimeoutMs?: number;
  reconnect?: ReconnectOptions | false;
  /**
   * What a failed first connection does. Default false: connect() (start()) rejects with its error, as a command
   * line wants. true: it is handled as a lost connection is: connect() resolves once the store is loaded, the client
   * keeps trying with the `reconnect` backoff, and what is published meanwhile waits in the queue (and the store).
   * For a device that may start out of coverage; watch the 'connect' and 'state' events.
   */
  retryFirstConnect?: boolean;
  queue?: QueueOptions;
  /**
   * Our cap on unacknowledged QoS 1/2 publishes, below the server's Receive Maximum. Default: none of our own. In
   * 3.1.1, where a server cannot announce its window, QoS 2 messages default to 20 in flight (libmosquitto's and
   * Mosquitto's default), and no QoS 1 message goes while 20 are out: a 3.1.1 PUBREC or PUBACK cannot refuse one,
   * and Mosquitto drops those beyond its window silently.
   */
  maxInflight?: number;
  /**
   * A stored QoS 1/2 message the server closes the line over (by itself, or with a 5.0 DISCONNECT such as 0x87 or
   * 0x95) right after it is sent, unacknowledged, on this many connections in a row is given up, so the messages
   * behind it can go: its promise rejects with MQTT_ERR_POISON_MESSAGE (a message restored from the store, with no
   * promise, is reported as an 'error' event). Any other end of a connection starts the count again. Default 5;
   * 0 keeps resending it for ever (MQTT.js, Paho).
   */
  poisonStrikes?: number;
  /** Assign topic aliases to outgoing topics when the server allows (5.0). Default true. */
  topicAliases?: boolean;
  /**
   * Acknowledge incoming QoS 1/2 messages only when the application calls `message.ack()` (e.g. after its database
   * commit). Acks leave in arrival order, as MQTT requires: one message not yet acknowledged holds back the acks of
   * every message behind it, so acknowledge promptly. Unacknowledged messages count against our Receive Maximum (5.0), so the
   * server stops sending once that many wait; after a reconnect the server sends them again (persistent session).
   * Default false: acknowledged on delivery.
   */
  manualAck?: boolean;
  /**
   * 5.0: when a CONNACK or DISCONNECT says 0x9C (use another server) or 0x9D (server moved) and names a Server
   * Reference ("host[:port]"), connect there at once, same scheme (and port, if the reference has none). 0x9D
   * replaces the configured server for good; 0x9C holds until an attempt or connection there fails for another
   * reason. Default false: the error (`serverReference`) and the 'redirect' event report it, nothing more.
   */
  followRedirects?: boolean;
  /**
   * Redirects followed in a row (since a connection that lasted, see `reconnect.stableAfterMs`, or an attempt that
   * failed for another reason). Default 3. Once they are used up, the next attempt goes to the configured server
   * after the usual backoff.
   */
  maxRedirects?: number;
  /**
   * Backpressure: when a message iterator (or the backlog held for the first consumer) has this many messages
   * unread, the client stops reading from the server until it is down to half; the TCP window then holds the
   * server back, and its in-flight QoS 1/2 messages wait for our acks. Default 1000. Reading goes on while the
   * client awaits an answer (a PUBACK, a SUBACK: it is behind the messages), and over a transport that cannot pause
   * (a browser's WebSocket); then QoS 1/2 messages past the mark are acknowledged only once read, so the server's
   * window stops them, and QoS 0 messages are dropped for an iterator twice the mark behind (`droppedCount`).
   * 'message' listeners are called synchronously and never buffer. An iterator nobody reads (and nobody ends)
   * stalls the flow of QoS 1/2 messages to the client.
   */
  highWaterMark?: number;
  /**
   * Where outgoing QoS 1/2 messages (queued or in flight) and incoming QoS 2 ids are kept to survive a restart:
   * a process killed mid-flight resends them when it starts again with the same client id and server, and QoS 2
   * stays exactly once. Default on Node, for a client given a non-empty `clientId` (and no `transport` of its
   * own): a file store for that id and server in `storeDir` (see `storePath`); it is opened by connect()
   * (start()), which rejects with MQTT_ERR_STORE_LOCKED while another client or process has it open, or
   * MQTT_ERR_STORE if it cannot be written. Any other client, and every client in a browser, has none by default.
   * A MessageStore of your own (`await openFileStore(path)`, a MemoryStore to hand state to another client,
   * IndexedDB), or false: no store, the client's own session state only (it outlives reconnects, not the
   * process), as in MQTT.js.
   */
  store?: MessageStore | false;
  /**
   * The directory of the default file store (see `store`). Default: $OTALINK_MQTT_STORE_DIR, else `.otalink-mqtt`
   * in the working directory. Its file is `<clientId>@<host>_<port>.log`: see file-default.ts for the encoding, the
   * hash an id with capitals or a long one ends in, and a WebSocket path.
   */
  storeDir?: string;
  /** Overrides the transport chosen from the scheme (tests, in-process brokers). */
  transport?: TransportFactory;
  /** For backoff jitter; defaults to Math.random. */
  random?: () => number;
}

export interface ResolvedTarget {
  protocol: TransportTarget['protocol'];
  host: string;
  port: number;
  path: string;
}

const DEFAULT_PORTS = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 } as const;
const SCHEMES: Record<string, keyof typeof DEFAULT_PORTS> = {
  'mqtt:': 'mqtt',
  'tcp:': 'mqtt',
  'mqtts:': 'mqtts',
  'ssl:': 'mqtts',
  'tls:': 'mqtts',
  'ws:': 'ws',
  'wss:': 'wss',
};

/** Merges a URL (if any) under explicit options: explicit options win. */
export function resolveOptions(input: string | ClientOptions): { options: ClientOptions; target: ResolvedTarget } {
  const options: ClientOptions = typeof input === 'string' ? { url: input } : { ...input };
  let protocol = options.protocol;
  let host = options.host;
  let port = options.port;
  let path = options.path;
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (err) {
      throw new MqttError('MQTT_ERR_INVALID_OPTION', `not a URL: ${options.url}`, { cause: err });
    }
    const scheme = SCHEMES[url.protocol];
    if (scheme === undefined) {
      throw new MqttError('MQTT_ERR_INVALID_OPTION', `unsupported scheme ${url.protocol} (mqtt, mqtts, ws, wss)`);
    }
    protocol ??= scheme;
    host ??= url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (port === undefined && url.port !== '') port = Number(url.port);
    if (path === undefined && url.pathname !== '' && url.pathname !== '/') path = url.pathname + url.search;
    if (options.username === undefined && url.username !== '') options.username = decodeURIComponent(url.username);
    if (options.password === undefined && url.password !== '') options.password = decodeURIComponent(url.password);
  }
  protocol ??= 'mqtt';
  if (!(protocol in DEFAULT_PORTS)) throw new MqttError('MQTT_ERR_INVALID_OPTION', `unknown protocol ${protocol}`);
  port ??= DEFAULT_PORTS[protocol];
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MqttError('MQTT_ERR_INVALID_OPTION', `invalid port ${String(port)}`);
  }
  const version = options.protocolVersion ?? 5;
  if (version !== 4 && version !== 5) {
    throw new MqttError('MQTT_ERR_INVALID_OPTION', `protocolVersion must be 4 (3.1.1) or 5, got ${String(version)}`);
  }
  const keepalive = options.keepalive ?? 60;
  if (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 0xffff) {
    throw new MqttError('MQTT_ERR_INVALID_OPTION', `keepalive must be 0..65535 seconds, got ${keepalive}`);
  }
  checkNumbers(options);
  return {
    options,
    target: { protocol, host: host ?? 'localhost', port, path: path ?? '/mqtt' },
  };
}

/** The longest delay setTimeout keeps (2^31 - 1 ms): a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The numeric options, where a value out of range would not fail but hang or spin: maxInflight 0 sent nothing at
 * all (every publish waited for ever), a backoff delay of NaN or 0 reconnected in a tight loop. Undefined takes the
 * default.
 */
function checkNumbers(options: ClientOptions): void {
  const check = (name: string, value: number | undefined, min: number, max: number, integer: boolean): void => {
    if (value === undefined) return;
    if (
      typeof value !== 'number' ||
      Number.isNaN(value) ||
      value < min ||
      value > max ||
      (integer && !Number.isInteger(value))
    ) {
      const range =
        max === Number.POSITIVE_INFINITY
          ? `${integer ? 'an integer ' : 'a number '}>= ${min}`
          : `${integer ? 'an integer' : 'a number'} in ${min}..${max}`;
      throw new MqttError('MQTT_ERR_INVALID_OPTION', `${name} must be ${range}, got ${String(value)}`);
    }
  };
  const oneOf = (name: string, value: string | undefined, allowed: readonly string[]): void => {
    if (value === undefined || allowed.includes(value)) return;
    const list = allowed.map((a) => `'${a}'`);
    throw new MqttError(
      'MQTT_ERR_INVALID_OPTION',
      `${name} must be ${list.slice(0, -1).join(', ')} or ${list.at(-1)}, got ${String(value)}`,
    );
  };
  const inf = Number.POSITIVE_INFINITY;
  check('maxInflight', options.maxInflight, 1, 65535, true);
  check('poisonStrikes', options.poisonStrikes, 0, inf, true);
  check('queue.limit', options.queue?.limit, 0, inf, true);
  check('connectTimeoutMs', options.connectTimeoutMs, 1, MAX_TIMER_MS, false);
  check('pingTimeoutMs', options.pingTimeoutMs, 1, MAX_TIMER_MS, false);
  const r = options.reconnect;
  if (r === undefined || r === false) return;
  check('reconnect.initialDelayMs', r.initialDelayMs, 0, MAX_TIMER_MS, false);
  check('reconnect.maxDelayMs', r.maxDelayMs, 0, MAX_TIMER_MS, false);
  check('reconnect.multiplier', r.multiplier, 1, inf, false);
  check('reconnect.stableAfterMs', r.stableAfterMs, 0, inf, false);
  oneOf('reconnect.jitter', r.jitter, ['full', 'equal', 'none']);
  oneOf('reconnect.onPermanentRefusal', r.onPermanentRefusal, ['slow', 'backoff', 'end']);
}

export function randomClientId(random: () => number = Math.random): string {
  let id = 'otalink-';
  for (let i = 0; i < 12; i++) id += Math.floor(random() * 36).toString(36);
  return id;
}
