// The broker's options: what `createBroker(options)` takes in code and what the config file and flags produce.
// This is the contract between the broker core and its configuration, authentication and metrics modules.
import type { Logger } from 'pino';
import type { StoreFs } from './store/fs.js';
import type { SyncPolicy } from './store/log.js';
import type { BrokerStore } from './store/types.js';

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss';

export interface TlsOptions {
  /** PEM text or file contents. */
  cert: string | Uint8Array;
  key: string | Uint8Array;
  /** CA bundle that client certificates must chain to (mutual TLS). */
  ca?: string | Uint8Array;
  /** Mutual TLS: refuse clients without a valid certificate. */
  requireClientCertificate?: boolean;
  /** Take the client's identity (%u in ACLs, the user name) from the certificate's subject CN. */
  identityFromCertificate?: boolean;
}

export interface ListenerOptions {
  protocol: ListenerProtocol;
  /** Default 0.0.0.0 (all IPv4); tests use 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (see Broker.addresses()). */
  port: number;
  /** ws/wss only: accepted URL path; default: any path. */
  path?: string;
  /** mqtts/wss only. */
  tls?: TlsOptions;
}

export interface BrokerLimits {
  /** Simultaneous connections across listeners; further clients get CONNACK 0x89 (5.0) / 3 (3.1.1) and are closed. */
  maxConnections: number;
  /** Largest packet accepted from a client, in bytes (sent as Maximum Packet Size in 5.0 CONNACK). */
  maxPacketSize: number;
  /** QoS 1/2 messages in flight towards one client; also sent as Receive Maximum to 5.0 clients. */
  receiveMaximum: number;
  /** Messages queued per session (offline or beyond the in-flight window). */
  maxQueuedMessages: number;
  /**
   * Payload bytes queued per session; 0 = no limit. Whichever of this and maxQueuedMessages is reached first applies
   * the drop policy; a message larger than this on its own is dropped. (Mosquitto's max_queued_bytes.)
   */
  maxQueuedBytes: number;
  /** Which message is dropped when a session queue is full. */
  queueDropPolicy: 'oldest' | 'newest';
  maxClientIdLength: number;
  /** PUBLISH packets per second per client; 0 = unlimited. Above it: 5.0 DISCONNECT 0x96, 3.1.1 close. */
  maxPublishRate: number;
  /** Sockets that send no CONNECT within this many ms are closed. */
  connectTimeoutMs: number;
  /**
   * A connection whose output (bytes the kernel has not taken) makes no progress for this many ms is closed, its
   * will published; 0 = never. Covers what keepalive cannot: a client that sends but no longer reads, or has
   * keepalive 0. (EMQX's send_timeout.)
   */
  sendTimeoutMs: number;
  /** Upper bound for a client's keepalive (seconds); 5.0 clients are told via Server Keep Alive. 0 = none. */
  maxKeepAlive: number;
  /** Topic aliases a 5.0 client may use towards the broker. */
  topicAliasMaximum: number;
  /** Cap on a 5.0 session expiry interval and the expiry for abandoned persistent sessions (seconds). */
  maxSessionExpiryInterval: number;
  /**
   * Subscriptions one session may hold (shared ones included); 0 = no limit. A SUBSCRIBE beyond it is refused per
   * filter (5.0 0x97 Quota exceeded, 3.1.1 0x80); replacing a subscription it holds is always allowed.
   */
  maxSubscriptionsPerClient: number;
}

export const defaultLimits: BrokerLimits = {
  maxConnections: 100_000,
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 100,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 0,
  queueDropPolicy: 'oldest',
  maxClientIdLength: 256,
  maxPublishRate: 0,
  connectTimeoutMs: 10_000,
  // Long against a cellular line's stalls (keepalive ends a silent vehicle anyway); short against a hung reader.
  sendTimeoutMs: 60_000,
  maxKeepAlive: 0,
  topicAliasMaximum: 100,
  // 31 days: a vehicle offline for a month keeps its commands; a forgotten test client does not live forever.
  maxSessionExpiryInterval: 31 * 24 * 3600,
  // A vehicle holds a handful, the backend a few wildcards: the bound only stops one client from filling memory.
  maxSubscriptionsPerClient: 10_000,
};

/** Who a connected client is, as authorization sees it. */
export interface ClientIdentity {
  clientId: string;
  /** The authenticated identity: user name, or the certificate CN with identityFromCertificate. */
  username: string | undefined;
  protocolVersion: 4 | 5;
  /**
   * The peer's address. A plain TCP connection reads it from its socket only once something can see it (hooks, a
   * will, client event listeners at CONNECT, logs), so that a connection nothing looks at costs no syscall for it.
   * A clientDisconnected listener added after the client connected may get undefined if the peer then vanished
   * without closing (a reset): its socket could no longer tell.
   */
  remoteAddress: string | undefined;
}

/**
 * How a connected client proved who it is: a verified certificate on a listener that takes identities from
 * certificates, an enhanced authentication method (AUTH), the `authenticate` hook (a password file), or nothing
 * (anonymous: no user name, let in by `allowAnonymous` or by the hook).
 */
export type AuthenticatedBy = 'certificate' | 'enhanced' | 'password' | 'anonymous';

/** New authentication and authorization for a running broker (`Broker.updateAuth`); what is absent is kept. */
export interface AuthUpdate {
  /** The new hook; null removes it. */
  authenticate?: Authenticate | null;
  /** The new hook; null removes it (everything allowed). */
  authorize?: Authorize | null;
  allowAnonymous?: boolean;
  /**
   * Connected clients whose credentials no longer hold (a user removed from the password file, or given a new
   * password): each is disconnected (5.0 DISCONNECT 0x87 Not authorized) and must connect again under the new rules.
   * Its persistent session stays; its will is published, as for any connection the server ends.
   */
  revoke?: (client: ClientIdentity, authenticatedBy: AuthenticatedBy) => boolean;
}

export interface AuthUpdateResult {
  /** Clients disconnected because `revoke` said so. */
  disconnected: number;
  /** Subscriptions of the clients still connected that the new `authorize` refuses, removed. */
  subscriptionsRemoved: number;
}

export interface AuthenticationRequest {
  clientId: string;
  username: string | undefined;
  password: Uint8Array | undefined;
  /** Subject CN of a verified client certificate, if the listener asked for one. */
  certificateIdentity: string | undefined;
  protocolVersion: 4 | 5;
  remoteAddress: string | undefined;
}

export type AuthenticationResult =
  | { ok: true /** Identity for ACLs (%u); defaults to the user name. */; username?: string }
  /** reasonCode in 5.0 terms (0x86 bad user name or password, 0x87 not authorized, 0x8A banned...). */
  | { ok: false; reasonCode: number };

export type Authenticate = (request: AuthenticationRequest) => AuthenticationResult | Promise<AuthenticationResult>;

/** `topic` is a topic name for 'publish' and a topic filter (without $share/group/) for 'subscribe'. */
export type Authorize = (client: ClientIdentity, action: 'publish' | 'subscribe', topic: string) => boolean;

/** MQTT 5.0 enhanced authentication (AUTH packets), keyed by authentication method. */
export interface EnhancedAuthenticator {
  method: string;
  /**
   * Called with the client's authentication data from CONNECT, then from each AUTH it sends. Return `continue` with
   * data to send an AUTH 0x18 challenge, `success` to finish (CONNACK or AUTH 0x00 on re-authentication), or `fail`.
   */
  step(
    state: { clientId: string; username: string | undefined; step: number },
    data: Uint8Array | undefined,
  ):
    | { result: 'continue'; data?: Uint8Array }
    | { result: 'success'; data?: Uint8Array; username?: string }
    | { result: 'fail'; reasonCode?: number }
    | Promise<
        | { result: 'continue'; data?: Uint8Array }
        | { result: 'success'; data?: Uint8Array; username?: string }
        | { result: 'fail'; reasonCode?: number }
      >;
}

export interface BrokerOptions {
  /** Default: one mqtt listener on 0.0.0.0:1883. */
  listeners?: ListenerOptions[];
  /** Off by default: without `authenticate`, every CONNECT is refused unless this is true. */
  allowAnonymous?: boolean;
  authenticate?: Authenticate;
  /**
   * Mosquitto's use_username_as_clientid: an authenticated client's id is its user name (or certificate identity),
   * whatever its CONNECT says, so that no vehicle can take over another's session, or wipe its queued commands with
   * a clean start, by naming its client id. 5.0 clients are told (Assigned Client Identifier). Default false.
   */
  clientIdFromUsername?: boolean;
  /** Default: everything allowed for authenticated clients. */
  authorize?: Authorize;
  enhancedAuth?: EnhancedAuthenticator[];
  limits?: Partial<BrokerLimits>;
  /** Default: a pino logger at 'info' to stderr; pass `pino({ level: 'silent' })` in tests. */
  logger?: Logger;
  /** $SYS/broker/... publish interval in seconds; 0 disables. Default 10. */
  sysIntervalSeconds?: number;
  /** Prometheus /metrics over HTTP; omitted: no metrics listener (stats stay readable in code). */
  metrics?: { host?: string; port: number };
  /**
   * Where persistent sessions, their queues and in-flight state, retained messages and delayed wills are kept.
   * Default: a LogStore in `dataDir` when it is given, else a MemoryStore (nothing survives the process). What the
   * store holds at start-up is restored by `listen()`: sessions offline with the expiry deadline they had. A store
   * passed here is flushed at close but not closed (its owner closes it).
   */
  store?: BrokerStore;
  /** Level of the default logger when `logger` is not given (the config file's log_level). Default 'info'. */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * Directory of the durable store (config `data_dir`): persistent sessions, queued QoS 1/2 messages, retained
   * messages and delayed wills survive a restart or a crash, and QoS 1/2 PUBLISH is acknowledged only once durable.
   * Created if missing; `listen()` fails with BROKER_ERR_STORE naming it if it cannot be used.
   */
  dataDir?: string;
  /** How the store in `dataDir` is made durable (config `store_sync`, `store_reserve`); see docs/durable-store.md. */
  storeOptions?: {
    /** 'batch' (default): fdatasync per group commit before acknowledging. 'none': acknowledge after write(). */
    sync?: SyncPolicy;
    /** Free bytes below which new messages are refused (BROKER_ERR_STORE_FULL). Default 16 MiB. */
    reserveBytes?: number;
    segmentBytes?: number;
    compactMinBytes?: number;
    /** Replaces the file-system calls (tests inject write errors). */
    fs?: StoreFs;
  };
}
