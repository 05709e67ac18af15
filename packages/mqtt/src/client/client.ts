// The I/O shell around ClientSession: owns the transport, timers, store and promises. Every decision about what
// to send lives in the session; this file only moves bytes, persists what the session asks, and settles promises.
import { Decoder } from '../codec/decoder.js';
import { encode, encodedLength, encodeInto } from '../codec/encoder.js';
import { MqttError, type MqttErrorCode } from '../codec/errors.js';
import type {
  AckProperties,
  AuthProperties,
  ConnackPacket,
  ConnectProperties,
  DisconnectPacket,
  DisconnectProperties,
  Packet,
  ProtocolVersion,
  PublishProperties,
  QoS,
  RetainHandling,
  SubackPacket,
  SubscribeProperties,
  Subscription,
  UnsubackPacket,
  UnsubscribeProperties,
} from '../codec/packets.js';
import { reasonName } from '../codec/reason-codes.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../session/backoff.js';
import {
  type AckToken,
  ClientSession,
  type PubrecAnswer,
  type ServerLimits,
  type SessionEvent,
  type Step,
} from '../session/client-session.js';
import { topicMatches } from '../topic/match.js';
import { parseSharedSubscription, typeName } from '../topic/validate.js';
import { Emitter } from './emitter.js';
import { MessageStream } from './message-stream.js';
import { type ClientOptions, type ResolvedTarget, randomClientId, resolveOptions } from './options.js';
import { isRedirect, MqttRedirectError, redirectTarget, SERVER_MOVED } from './redirect.js';
import { isPermanentRefusal } from './refusal.js';
import { defaultStorePath } from './store/file-default.js';
import { openFileStore } from './store/open-file-store.js';
import type { MessageStore } from './store/store.js';
import type { Transport, TransportFactory, TransportHandlers } from './transport.js';

export type ClientState = 'idle' | 'connecting' | 'connected' | 'offline' | 'reconnecting' | 'closed';

export interface Message {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** The packet identifier it arrived with (QoS 1 and 2; mosquitto_sub's `%m`). */
  packetId?: number;
  /** As sent, except `topicAlias`: the topic is already resolved, and the alias meant nothing outside that line. */
  properties?: PublishProperties;
  /**
   * With `manualAck`, acknowledges this QoS 1/2 message: its PUBACK/PUBREC goes out once every QoS 1/2 message that
   * arrived before it on this connection was acknowledged (the specification's order). Idempotent; a no-op for
   * QoS 0, without `manualAck`, and after the connection it arrived on was lost (the server then sends it again).
   */
  ack(): void;
}

export interface ClientEvents {
  state: (state: ClientState, reason?: Error) => void;
  connecting: () => void;
  connected: (connack: ConnackPacket) => void;
  offline: (reason: Error) => void;
  /** `reason` is why the last line or attempt ended: the same error `offline` or `error` reported. */
  reconnecting: (info: { attempt: number; delayMs: number; reason: Error }) => void;
  closed: (reason?: Error) => void;
  message: (message: Message) => void;
  /** The server sent DISCONNECT (5.0). */
  disconnect: (packet: DisconnectPacket) => void;
  /**
   * A CONNACK or DISCONNECT said 0x9C (use another server) or 0x9D (server moved), naming `serverReference`;
   * `followed` tells whether the client goes there (`followRedirects`, a readable reference, hops left).
   */
  redirect: (info: { reasonCode: number; serverReference: string | undefined; followed: boolean }) => void;
  /**
   * Failures that belong to no call: store errors, a failed reconnect attempt, a message restored from the store
   * that cannot be sent (MQTT_ERR_MESSAGE_EXPIRED, or a limit of the server's). Also what another listener threw,
   * as it was thrown (without an 'error' listener it is thrown again, uncaught, once the client's work is done).
   */
  error: (error: Error) => void;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: PublishProperties;
}

export interface PublishResult {
  /**
   * 0 for QoS 0 and 3.1.1; in 5.0 the PUBACK reason code (< 0x80) or the PUBCOMP one: 0, or 0x92 when the server
   * no longer knew the packet id after its successful PUBREC (it lost the session; the message was delivered).
   */
  reasonCode: number;
  properties?: AckProperties;
  /**
   * QoS 2 in 5.0: the PUBREC's reason code and properties when it said more than a bare success (0x10 No matching
   * subscribers, a reason string); `reasonCode` above is the PUBCOMP's. Absent for a message whose PUBREC came
   * before a restart.
   */
  pubrec?: PubrecAnswer;
}

/** UNSUBACK's reason codes, one per filter (empty in 3.1.1), with its properties when it had any (5.0). */
export type UnsubscribeResult = number[] & { readonly properties?: AckProperties };

export interface SubscribeOptions {
  qos?: QoS;
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: RetainHandling;
  properties?: SubscribeProperties;
}

export interface EndOptions {
  /** Close at once: nothing is flushed; unsent QoS 1/2 messages stay in the store. */
  force?: boolean;
  /** Give up flushing after this long. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * DISCONNECT reason code (5.0), e.g. 0x04 to have the will published. In 3.1.1, whose DISCONNECT carries none, any
   * code but 0 closes the line without a DISCONNECT, which has a 3.1.1 server publish the will as a 5.0 server does.
   */
  reasonCode?: number;
  /** DISCONNECT properties (5.0 only): a new Session Expiry Interval, user properties, a reason string. */
  properties?: DisconnectProperties;
}

/**
 * One connection attempt and, once established, the line. It is its transport's handlers itself, and its fields are
 * plain: no closures per connection (see transports/socket.ts on what each costs an idle client under tsx).
 */
class Connection implements TransportHandlers {
  transport: Transport | undefined = undefined;
  readonly decoder: Decoder;
  /** Aborts the attempt (connect timeout, end()); dropped once established. */
  abort: AbortController | undefined = new AbortController();
  established = false;
  closed = false;
  reason: Error | undefined = undefined;
  /** Encoded packets waiting for the end of this tick, written as one chunk. */
  out: Uint8Array[] = [];
  /** Writes `out`: made once per connection, so a flush queues no new function. */
  readonly flush: () => void;
  /** Reading stopped because a consumer's buffer reached the high-water mark. */
  paused = false;
  /** The transport said it holds more than it should: QoS 0 publishers wait for `drained` (see backedUpWaiters). */
  backedUp = false;
  /** Resolutions of QoS 0 publishes held while backed up, released on drain or close. */
  backedUpWaiters: Array<() => void> | undefined = undefined;
  /** Inside `onData`: what the read causes is written when it returns, not from a microtask. */
  inRead = false;
  #closedWaiters: Array<() => void> | undefined = undefined;

  constructor(
    readonly client: MqttClient,
    decoder: Decoder,
  ) {
    this.decoder = decoder;
    // Assigned, not declared as a field: a field's arrow function gets its name set under tsx (keepNames).
    this.flush = () => client.flushOut(this);
  }

  data(chunk: Uint8Array): void {
    this.client.onData(this, chunk);
  }

  close(error?: Error): void {
    this.client.onClose(this, error);
    this.drained();
  }

  drained(): void {
    this.backedUp = false;
    const waiters = this.backedUpWaiters;
    this.backedUpWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w();
  }

  /** Resolves once the line is closed. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#closedWaiters ??= [];
      this.#closedWaiters.push(resolve);
    });
  }

  markClosed(): void {
    const waiters = this.#closedWaiters;
    this.#closedWaiters = undefined;
    if (waiters !== undefined) for (const resolve of waiters) resolve();
  }
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

const encoder = new TextEncoder();
/**
 * The session's clock: the wall time the process started at, moved on by the monotonic clock. Keepalive and ping
 * timeouts must neither stall nor fire when the system clock is set (an NTP or GNSS fix on a vehicle), nor should
 * everything queued expire at the first correction after boot; stored expiry times stay epoch milliseconds.
 */
const sessionClock = (): number => performance.timeOrigin + performance.now();
/**
 * How long freed window slots may wait for more to free before their refills go out anyway. Short against the
 * 40 ms a delayed ACK takes: a server with Nagle on holds its next PUBACK until our next write.
 */
const REFILL_HOLD_MS = 1;
/** Messages held for the first consumer. */
const EARLY_LIMIT = 10_000;
/** For promises whose failure is reported elsewhere. */
const ignore = (): void => {};
const toBytes = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? encoder.encode(v) : v);

/** A publish's payload as bytes; anything but a string or a Uint8Array (a Buffer is one) is refused by name. */
function payloadBytes(v: string | Uint8Array): Uint8Array {
  if (typeof v === 'string') return encoder.encode(v);
  if (v instanceof Uint8Array) return v;
  throw new MqttError(
    'MQTT_ERR_INVALID_OPTION',
    `a payload must be a string or a Uint8Array (a Buffer is one), got ${typeName(v)}`,
  );
}

/** Connects and resolves once the server accepted the session; rejects if the first attempt fails. */
export async function connect(urlOrOptions: string | ClientOptions, options: ClientOptions = {}): Promise<MqttClient> {
  const merged = typeof urlOrOptions === 'string' ? { ...options, url: urlOrOptions } : urlOrOptions;
  const client = new MqttClient(merged);
  await client.start();
  return client;
}

export class MqttClient extends Emitter<ClientEvents> {
  state: ClientState = 'idle';
  readonly version: ProtocolVersion;
  /** The last CONNACK accepted. */
  connack: ConnackPacket | undefined;
  private readonly options: ClientOptions;
  /** Where to connect: the configured server, or the one a 0x9D "Server moved" named. */
  private target: ResolvedTarget;
  /** A 0x9C "Use another server" target, used until an attempt or connection there fails for another reason. */
  private redirected: ResolvedTarget | undefined;
  /**
   * Redirects followed since the last connection that lasted (see BackoffOptions.stableAfterMs) or the last attempt
   * that failed for another reason.
   */
  private redirectHops = 0;
  /** Redirect errors followRedirect has weighed: an attempt's error reaches it twice (attempt, then reconnect). */
  private readonly weighedRedirects = new WeakSet<Error>();
  private readonly session: ClientSession;
  /** Undefined without a store: the session's own state is then the only copy (no record per publish). */
  private store: MessageStore | undefined;
  /** The default file store's path, opened by start() (see ClientOptions.store). */
  private readonly defaultStore: string | undefined;
  /**
   * The store's records are loaded (start()): until then nothing is written to it, so a message published before
   * start() cannot overwrite a record of an earlier run that has its sequence number; restore() numbers it after
   * them and stores it then.
   */
  private storeLoaded = false;
  private starting = false;
  private conn: Connection | undefined;
  private readonly controls = new Map<number, Pending<SubackPacket | UnsubackPacket>>();
  /** What to subscribe again when the server did not keep the session, by filter. */
  private readonly registry = new Map<string, { subscription: Subscription; properties?: SubscribeProperties }>();
  private readonly streams = new Set<StreamEntry>();
  /**
   * Messages whose PUBACK / PUBREC waits for their consumers (see consumersBehind): how many buffers still hold
   * each. Made on first use, as is every per-client thing an idle client does not need (10 000 in one process).
   */
  private heldForConsumers: Map<Message, { holders: number; ack: () => void }> | undefined;
  private droppedBehind = 0;
  private writeChain: Promise<void> | undefined;
  private chainDepth = 0;
  private keepaliveTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Releases refills the session holds back for a batch, if no PUBACK frees enough slots first. One timer for the
   * connection, re-armed with refresh() where the platform has it (Node), since holds start and end with most
   * PUBACK reads: a new timeout and closure per hold, and clearTimeout per end, were a measurable part of a read's
   * cost. A hold that ended leaves the timer running: `holdArmed` makes its firing a no-op.
   */
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private holdArmed = false;
  /** Fails queued messages as their Message Expiry Interval runs out, offline too (see armExpiry). */
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  private expiryArmedAt: number | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  /** The Session Expiry Interval our CONNECT asks for (5.0): 0 means the session ends with each connection. */
  private readonly connectSessionExpiry: number;
  /** When the current connection's CONNACK came (session clock), until the reconnect that follows its end. */
  private connectedAt: number | undefined;
  private connackWaiter: Pending<ConnackPacket> | undefined;
  private idleWaiters: Array<() => void> = [];
  private ending: Promise<void> | undefined;
  /** A re-authentication (AUTH 0x19) waiting for the server's AUTH 0x00, on the connection it started on. */
  private reauth: { conn: Connection; pending: Pending<void>; timer: ReturnType<typeof setTimeout> } | undefined;
  /**
   * Messages that arrived before anyone listened (a persistent session's backlog comes right behind CONNACK,
   * before connect() has even resolved). The first consumer gets them; undefined once one exists.
   */
  private early: Message[] | undefined = [];

  constructor(input: string | ClientOptions) {
    super();
    const { options, target } = resolveOptions(input);
    this.options = options;
    this.target = target;
    this.version = options.protocolVersion ?? 5;
    const clean = options.clean ?? true;
    let properties: ConnectProperties | undefined = options.properties;
    if (this.version === 5 && !clean && properties?.sessionExpiryInterval === undefined) {
      // In 5.0 a session ends with the connection unless it has an expiry; clean: false means "keep it".
      properties = { ...properties, sessionExpiryInterval: 0xffffffff };
    }
    this.connectSessionExpiry = properties?.sessionExpiryInterval ?? 0;
    const clientId = options.clientId ?? (this.version === 5 && clean ? '' : randomClientId(options.random));
    const will = options.will;
    this.store = options.store === false ? undefined : options.store;
    // A client id and a server name the session to resume after a restart; an empty id (the server assigns one)
    // names none, and a transport of the caller's own (tests, in-process brokers) leaves the server unnamed.
    this.defaultStore =
      options.store === undefined && options.clientId && options.transport === undefined
        ? defaultStorePath(options.clientId, target, options.storeDir)
        : undefined;
    this.session = new ClientSession({
      protocolVersion: this.version,
      clientId,
      clean,
      keepalive: options.keepalive ?? 60,
      username: options.username,
      password: options.password === undefined ? undefined : toBytes(options.password),
      will:
        will === undefined
          ? undefined
          : {
              topic: will.topic,
              payload: toBytes(will.payload),
              qos: will.qos ?? 0,
              retain: will.retain ?? false,
              properties: will.properties,
            },
      properties,
      pingTimeoutMs: options.pingTimeoutMs,
      maxInflight: options.maxInflight,
      poisonStrikes: options.poisonStrikes,
      queueLimit: options.queue?.limit,
      dropPolicy: options.queue?.dropPolicy,
      topicAliases: options.topicAliases,
      manualAck: options.manualAck,
      consumers: this,
      persist: this.store !== undefined || this.defaultStore !== undefined,
      batchRefills: true,
    });
  }

  /** The file of the client's default store (see ClientOptions.store), opened by start(); undefined if it has none. */
  get storePath(): string | undefined {
    return this.defaultStore;
  }

  /** The client id in use (the server's assigned one after CONNACK, if it assigned one). */
  get clientId(): string {
    return this.session.clientId;
  }

  /** Limits the server announced in its last CONNACK. */
  get serverLimits(): ServerLimits {
    return this.session.limits;
  }

  /** QoS 1/2 messages sent and not yet acknowledged, and messages waiting to be sent. */
  get pendingCount(): { inflight: number; queued: number } {
    return { inflight: this.session.inflightCount, queued: this.session.queuedCount };
  }

  /**
   * QoS 1/2 messages received on this connection whose PUBACK / PUBREC has not gone out: with `manualAck`, those
   * not yet acknowledged with `ack()`; otherwise those held for an iterator behind (see `highWaterMark`).
   */
  get unackedCount(): number {
    return this.session.unackedCount;
  }

  /**
   * Messages received and not yet taken by their consumer: the longest backlog of any message iterator. Reading
   * from the server stops at `highWaterMark` (the backlog held for a first consumer has its own limit).
   */
  get bufferedCount(): number {
    // Messages held for a first consumer count too: reading pauses rather than drop them at EARLY_LIMIT.
    let most = this.early?.length ?? 0;
    for (const { stream } of this.streams) most = Math.max(most, stream.pending);
    return most;
  }

  /**
   * QoS 0 messages a message iterator did not get because it was twice `highWaterMark` behind while reading could
   * not pause (see `highWaterMark`); each iterator has its own count (`dropped`).
   */
  get droppedCount(): number {
    return this.droppedBehind;
  }

  /** Whether reading from the server is paused because a consumer fell `highWaterMark` messages behind. */
  get readingPaused(): boolean {
    return this.conn?.paused === true;
  }

  /** With `manualAck`: messages acknowledged with `ack()` whose PUBACK/PUBREC waits for an earlier message's. */
  get heldAckCount(): number {
    return this.session.heldAckCount;
  }

  /**
   * MQTT 5.0 re-authentication: sends AUTH 0x19 with the `auth` hook's method and `data` (default: what
   * `auth.step(undefined, { reasonCode: 0x19 })` gives), answers each AUTH 0x18 challenge through the hook, and
   * resolves on the server's AUTH 0x00 (after the hook has seen its data, so it can verify the server). Rejects with
   * MQTT_ERR_INVALID_OPTION (3.1.1, no hook, one already running), MQTT_ERR_CONNECTION_CLOSED with the server's
   * reason code when it disconnects (a refused re-authentication ends the connection), or MQTT_ERR_TIMEOUT when
   * no answer came within `connectTimeoutMs` (the line is then closed: its authentication state is unknown).
   */
  async reauthenticate(data?: Uint8Array): Promise<void> {
    const auth = this.options.auth;
    if (this.version !== 5) throw new MqttError('MQTT_ERR_INVALID_OPTION', 're-authentication needs MQTT 5.0');
    if (auth === undefined) throw new MqttError('MQTT_ERR_INVALID_OPTION', 're-authentication needs an auth hook');
    if (this.reauth !== undefined) {
      throw new MqttError('MQTT_ERR_INVALID_OPTION', 'a re-authentication is already in progress');
    }
    if (this.ending !== undefined || this.state === 'closed') throw closedError();
    const conn = this.conn;
    if (conn === undefined || this.state !== 'connected') {
      throw new MqttError('MQTT_ERR_CONNECTION_CLOSED', 'not connected: nothing to re-authenticate');
    }
    const done = new Promise<void>((resolve, reject) => {
      const timeoutMs = this.options.connectTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        const error = new MqttError('MQTT_ERR_TIMEOUT', `no answer to re-authentication within ${timeoutMs} ms`);
        this.settleReauth(conn, error);
        conn.reason ??= error;
        conn.transport?.destroy();
      }, timeoutMs);
      this.reauth = { conn, pending: { resolve, reject }, timer };
    });
    try {
      const initial = data ?? (await auth.step(undefined, { reasonCode: 0x19 }));
      if (this.reauthRunsOn(conn) && !conn.closed) {
        const props: AuthProperties = { authenticationMethod: auth.method };
        if (initial !== undefined) props.authenticationData = initial;
        this.apply(conn, this.session.auth(sessionClock(), 0x19, props));
      }
    } catch (err) {
      this.authFailed(conn, err);
    }
    return done;
  }

  private reauthRunsOn(conn: Connection): boolean {
    return this.reauth?.conn === conn;
  }

  /** Settles the running re-authentication of `conn` (if any): resolved without `error`, rejected with it. */
  private settleReauth(conn: Connection, error?: Error): void {
    const reauth = this.reauth;
    if (reauth === undefined || reauth.conn !== conn) return;
    this.reauth = undefined;
    clearTimeout(reauth.timer);
    if (error === undefined) reauth.pending.resolve();
    else reauth.pending.reject(error);
  }

  /**
   * The hook failed (or refused the server's data): DISCONNECT 0x87 and close, failing a re-authentication. An AUTH
   * the protocol does not allow (no hook, another method, an unexpected reason code) is DISCONNECT 0x82.
   */
  private authFailed(conn: Connection, err: unknown): void {
    const error =
      err instanceof MqttError
        ? err
        : new MqttError('MQTT_ERR_CONNECTION_CLOSED', `authentication failed: ${(err as Error).message}`, {
            reasonCode: 0x87,
            cause: err,
          });
    this.settleReauth(conn, error);
    if (conn.closed) return;
    conn.reason = error;
    if (conn.established && this.session.state === 'connected') {
      const code = error instanceof MqttError && error.code === 'MQTT_ERR_PROTOCOL_ERROR' ? 0x82 : 0x87;
      this.writeNow(conn, this.session.disconnect(sessionClock(), code).packets);
      this.closeLine(conn, 'end');
    } else {
      conn.transport?.destroy();
    }
  }

  /**
   * Loads the store and makes the first connection. Rejects (and closes the client) if that attempt fails, unless
   * `retryFirstConnect`: then it resolves once the store is loaded and the attempts go on in the background.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle' || this.starting) {
      throw new MqttError('MQTT_ERR_INVALID_OPTION', 'start() was already called');
    }
    this.starting = true;
    // Failures of restored messages (beyond the queue limit, expired while the process was down) come before a
    // caller of `await connect()` could listen for them: held until start() has returned.
    this.restoredFailures = [];
    try {
      if (this.defaultStore !== undefined) {
        const store = await this.openDefaultStore(this.defaultStore);
        if (this.ending !== undefined) {
          // end() came while the store opened: it found none to close.
          await store.close?.();
          throw closedError();
        }
        this.store = store;
      }
      if (this.store !== undefined) {
        const records = await this.store.list();
        if (this.ending !== undefined) throw closedError();
        this.storeLoaded = true;
        this.apply(undefined, this.session.restore(records, sessionClock()));
      }
      if (this.options.retryFirstConnect === true) {
        this.attemptConnection().catch((err: Error) => this.attemptFailed(err));
        return;
      }
      await this.attemptConnection();
    } catch (err) {
      await this.finish(err as Error);
      throw err;
    } finally {
      this.reportRestoredFailures();
    }
  }

  /** Failures of restored messages held during start(): reported once its caller can have listened. */
  private restoredFailures: Error[] | undefined;

  private reportRestoredFailures(): void {
    const failures = this.restoredFailures;
    this.restoredFailures = undefined;
    if (failures === undefined || failures.length === 0) return;
    setTimeout(() => {
      for (const error of failures) this.emit('error', error);
    }, 0);
  }

  private async openDefaultStore(path: string): Promise<MessageStore> {
    try {
      return await openFileStore(path);
    } catch (err) {
      const hint = `the default store of client id '${this.clientId}' (ClientOptions.store: a store of your own, or false for none; storeDir: elsewhere)`;
      if (err instanceof MqttError)
        throw new MqttError(err.code, `${err.message}; ${hint}`, { cause: err.cause ?? err });
      throw new MqttError('MQTT_ERR_STORE', `cannot open the file store ${path}: ${(err as Error).message}; ${hint}`, {
        cause: err,
      });
    }
  }

  /** A connection attempt after the first (or the first, with `retryFirstConnect`) failed: report it, try again. */
  private attemptFailed(err: Error): void {
    if (this.ending !== undefined) return;
    this.emit('error', err);
    this.scheduleReconnect(err);
  }

  publish(topic: string, payload: string | Uint8Array, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.ending !== undefined || this.state === 'closed') return Promise.reject(closedError());
    let pending: Pending<PublishResult> | undefined;
    const result = new Promise<PublishResult>((resolve, reject) => {
      pending = { resolve, reject };
    });
    let accepted: { seq: number; step: Step };
    try {
      // The session keeps `pending` with the message and hands it back in its outcome event: no table keyed by
      // sequence number to grow, rehash and shrink with every message queued and acknowledged.
      accepted = this.session.publish(
        {
          topic,
          payload: payloadBytes(payload),
          qos: options.qos ?? 0,
          retain: options.retain ?? false,
          properties: options.properties,
          // The application may reuse its buffer once publish() returns; a string was encoded into a new one.
          borrowed: typeof payload !== 'string',
        },
        sessionClock(),
        pending,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    this.apply(this.conn, accepted.step);
    return result;
  }

  async subscribe(
    filters: string | Array<string | (Subscription & { topicFilter: string })>,
    options: SubscribeOptions = {},
  ): Promise<MqttSubscription> {
    if (this.ending !== undefined || this.state === 'closed') throw closedError();
    if (this.version === 4) checkOptions311(filters, options);
    const list = (Array.isArray(filters) ? filters : [filters]).map(
      (f): Subscription =>
        typeof f === 'string'
          ? {
              topicFilter: f,
              qos: options.qos ?? 0,
              noLocal: options.noLocal,
              retainAsPublished: options.retainAsPublished,
              retainHandling: options.retainHandling,
            }
          : f,
    );
    const { packetId, step } = this.session.subscribe(list, options.properties, sessionClock());
    const acked = new Promise<SubackPacket | UnsubackPacket>((resolve, reject) =>
      this.controls.set(packetId, { resolve, reject }),
    );
    this.apply(this.conn, step);
    const suback = (await acked) as SubackPacket;
    list.forEach((subscription, i) => {
      if ((suback.reasonCodes[i] ?? 0x80) < 0x80) {
        this.registry.set(subscription.topicFilter, { subscription, properties: options.properties });
      }
    });
    return new MqttSubscription(this, list, suback.reasonCodes, suback.properties, options.properties);
  }

  /**
   * Resolves with the UNSUBACK reason codes (5.0; empty in 3.1.1), and the UNSUBACK's properties (reason string,
   * user properties) as the array's `properties` when it had any.
   */
  async unsubscribe(filters: string | string[], properties?: UnsubscribeProperties): Promise<UnsubscribeResult> {
    if (this.ending !== undefined || this.state === 'closed') throw closedError();
    const list = Array.isArray(filters) ? filters : [filters];
    const { packetId, step } = this.session.unsubscribe(list, properties, sessionClock());
    const acked = new Promise<SubackPacket | UnsubackPacket>((resolve, reject) =>
      this.controls.set(packetId, { resolve, reject }),
    );
    this.apply(this.conn, step);
    for (const f of list) this.registry.delete(f);
    const unsuback = (await acked) as UnsubackPacket;
    // A subscription's own streams end once none of its filters is subscribed any more: the server sends them
    // nothing from now on, and a `for await` over one would otherwise wait until the client closes.
    for (const entry of [...this.streams]) {
      if (entry.filters?.every((f) => !this.registry.has(f))) entry.stream.end();
    }
    const result: UnsubscribeResult = [...(unsuback.reasonCodes ?? [])];
    // Not enumerable: the result still compares (deepEqual) and prints as the plain array of codes it always was.
    if (unsuback.properties !== undefined) {
      Object.defineProperty(result, 'properties', { value: unsuback.properties, enumerable: false });
    }
    return result;
  }

  /**
   * Every incoming message from now on, as an async iterator (ends when the client closes). The first consumer
   * (iterator or 'message' listener) also gets what arrived before it existed.
   */
  messages(accepts: (topic: string) => boolean = () => true): MessageStream<Message> {
    return this.stream(accepts, undefined);
  }

  /** @internal A subscription's messages (MqttSubscription.messages): the stream ends when its filters are undone. */
  subscriptionMessages(filters: readonly string[], subscriptionId?: number): MessageStream<Message> {
    const plain = filters.map((f) => parseSharedSubscription(f)?.filter ?? f);
    return this.stream((topic) => plain.some((f) => topicMatches(f, topic)), filters, subscriptionId);
  }

  private stream(
    accepts: (topic: string) => boolean,
    filters: readonly string[] | undefined,
    subscriptionId?: number,
  ): MessageStream<Message> {
    const entry: StreamEntry = {
      stream: new MessageStream<Message>(
        () => this.streams.delete(entry),
        () => this.maybeResume(),
        (m) => this.taken(m),
      ),
      accepts,
      filters,
      subscriptionId,
    };
    const early = this.takeEarly();
    for (const m of early) if (routes(entry, m)) entry.stream.push(m);
    this.maybeResume();
    // Closed, or a subscription with nothing granted: no message will ever come.
    if (this.state === 'closed' || filters?.length === 0) entry.stream.end();
    else this.streams.add(entry);
    return entry.stream;
  }

  override on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    const off = super.on(event, listener);
    if (event === 'message' && this.early !== undefined) {
      const early = this.takeEarly();
      if (early.length > 0) {
        // Not from inside on(): the caller may still be setting up.
        queueMicrotask(() => {
          for (let i = 0; i < early.length; i++) {
            if (this.has(event, listener)) {
              this.call('message', listener as ClientEvents['message'], [early[i]!]);
              continue;
            }
            // The listener went (a `once` listener took one): the rest go to whoever listens now, or wait again for
            // the next consumer.
            const rest = early.slice(i);
            if (this.listenerCount('message') > 0) for (const m of rest) this.emit('message', m);
            else if (this.early === undefined && this.streams.size === 0) this.early = rest;
            break;
          }
        });
      }
    }
    return off;
  }

  private takeEarly(): Message[] {
    const early = this.early ?? [];
    this.early = undefined;
    // Handed to their first consumer: a held ack goes now (the consumer's own buffer holds no ack).
    for (const m of early) this.taken(m);
    if (early.length > 0) this.maybeResume();
    return early;
  }

  private holdForConsumers(m: Message, holders: number, ack: () => void): void {
    this.heldForConsumers ??= new Map();
    this.heldForConsumers.set(m, { holders, ack });
  }

  /** A buffer let go of `m` (read, discarded, or all of `early`): its held ack goes once no buffer holds it. */
  private taken(m: Message): void {
    const held = this.heldForConsumers?.get(m);
    if (held === undefined) return;
    if (--held.holders > 0) return;
    this.heldForConsumers!.delete(m);
    held.ack();
  }

  /**
   * @internal Asked by the session for each incoming QoS 1/2 message: an iterator is at the high-water mark while
   * reading goes on (an answer is awaited, or the transport cannot pause), so its ack waits for the consumers and
   * the server's window stops the flow. A getter, not a closure: no per-client function.
   */
  get consumersBehind(): boolean {
    return this.bufferedCount >= this.highWaterMark;
  }

  private get highWaterMark(): number {
    return this.options.highWaterMark ?? 1000;
  }

  /**
   * Stops reading when a consumer is `highWaterMark` messages behind: TCP then pushes back on the server. Not while
   * the client awaits an answer (PUBACK, SUBACK, AUTH): a consumer awaiting its own publish would wait forever.
   */
  private maybePause(conn: Connection): void {
    if (conn.paused || this.bufferedCount < this.highWaterMark || this.awaitsServer()) return;
    // A transport that cannot pause (a browser's WebSocket) would leave the server's bytes piling up undecoded:
    // reading goes on, and held acks (QoS 1/2) and drops (QoS 0) bound what the consumers are behind instead.
    if (conn.transport?.pause === undefined) return;
    conn.paused = true;
    conn.transport.pause();
    this.armKeepalive();
  }

  private awaitsServer(): boolean {
    return this.session.inflightCount > 0 || this.controls.size > 0 || this.reauth !== undefined;
  }

  /** Reads again once every consumer is down to half the high-water mark (hysteresis: no pause per message). */
  private maybeResume(): void {
    const conn = this.conn;
    if (conn === undefined || !conn.paused) return;
    if (this.bufferedCount > Math.floor(this.highWaterMark / 2) && !this.awaitsServer()) return;
    if (this.resumeQueued) return;
    // Not from inside the consumer's next() or a publish(): decoding delivers messages, which may re-enter.
    this.resumeQueued = true;
    queueMicrotask(() => {
      this.resumeQueued = false;
      if (this.conn !== conn || conn.closed || !conn.paused) return;
      if (this.bufferedCount > Math.floor(this.highWaterMark / 2) && !this.awaitsServer()) return;
      conn.paused = false;
      this.session.readingResumed(sessionClock());
      conn.transport?.resume?.();
      this.decodeAvailable(conn);
      if (this.conn === conn) this.armKeepalive();
    });
  }

  private resumeQueued = false;

  /** Flushes queued and in-flight messages (unless `force`), sends DISCONNECT, and resolves when closed. */
  end(options: EndOptions = {}): Promise<void> {
    const expiry = options.properties?.sessionExpiryInterval;
    if (
      this.ending === undefined &&
      this.version === 5 &&
      expiry !== undefined &&
      expiry > 0 &&
      this.connectSessionExpiry === 0
    ) {
      // The DISCONNECT would be a protocol error ([MQTT-3.14.2-2]): refused here, and nothing is closed.
      const message =
        'a session that ends with its connection (Session Expiry Interval 0 at CONNECT) cannot be kept at DISCONNECT';
      return Promise.reject(new MqttError('MQTT_ERR_INVALID_OPTION', message));
    }
    if (this.ending === undefined && this.version === 4 && options.properties !== undefined) {
      // Dropped, a Session Expiry Interval of 0 would keep a session, or one of 60 s end it: refused instead.
      const message = 'end(): DISCONNECT properties are MQTT 5.0 only, and this client speaks 3.1.1';
      return Promise.reject(new MqttError('MQTT_ERR_INVALID_OPTION', message));
    }
    if (this.ending === undefined && (options.properties !== undefined || options.reasonCode !== undefined)) {
      // Checked now: thrown while writing the DISCONNECT, it would leave the shutdown half done.
      try {
        encodedLength({ type: 'disconnect', reasonCode: options.reasonCode, properties: options.properties }, 5);
      } catch (err) {
        return Promise.reject(
          new MqttError('MQTT_ERR_INVALID_OPTION', `end(): ${(err as Error).message}`, { cause: err }),
        );
      }
    }
    this.ending ??= this.shutdown(options);
    return this.ending;
  }

  private async shutdown(options: EndOptions): Promise<void> {
    clearTimeout(this.reconnectTimer);
    if (!options.force && this.state === 'connected' && !this.session.idle) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, options.timeoutMs ?? 30_000);
      });
      clearTimeout(timer);
    }
    if (!options.force) await this.writeChain;
    const conn = this.conn;
    if (conn !== undefined) {
      conn.reason ??= closedError();
      if (!options.force && conn.transport !== undefined && this.session.state === 'connected') {
        const step = this.session.disconnect(sessionClock(), options.reasonCode, options.properties);
        // 3.1.1 with a reason code: no DISCONNECT, so the server publishes the will (see EndOptions.reasonCode).
        if (this.version === 5 || (options.reasonCode ?? 0) === 0) this.writeNow(conn, step.packets);
        this.closeLine(conn, 'end');
      } else {
        conn.abort?.abort(closedError());
        conn.transport?.destroy();
      }
      await conn.whenClosed();
    }
    await this.finish(undefined);
  }

  private finishing: Promise<void> | undefined;

  private finish(reason: Error | undefined): Promise<void> {
    this.finishing ??= this.finishOnce(reason);
    return this.finishing;
  }

  private async finishOnce(reason: Error | undefined): Promise<void> {
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.expiryTimer);
    this.disarmHold();
    clearTimeout(this.reconnectTimer);
    this.conn = undefined;
    this.session.connectionLost();
    const error = closedError();
    for (const p of this.session.takeOwners()) (p as Pending<PublishResult>).reject(error);
    for (const p of this.controls.values()) p.reject(error);
    this.controls.clear();
    for (const { stream } of [...this.streams]) stream.end();
    for (const w of this.idleWaiters.splice(0)) w();
    try {
      await this.writeChain;
      // Failures were reported as they came (trackRelaxed).
      if (this.relaxed.size > 0) await Promise.allSettled(this.relaxed);
      await this.store?.close?.();
    } catch (err) {
      this.emit('error', err as Error);
    }
    this.setState('closed', reason);
    this.emit('closed', reason);
  }

  private setState(state: ClientState, reason?: Error): void {
    this.state = state;
    this.emit('state', state, reason);
  }

  /** Connects, following server redirects (`followRedirects`) up to `maxRedirects` hops. */
  private async attemptConnection(): Promise<void> {
    for (;;) {
      try {
        await this.attemptOnce();
        return;
      } catch (err) {
        if (!this.followRedirect(err)) {
          if (!(err instanceof MqttRedirectError)) this.clearRedirect();
          throw err;
        }
      }
    }
  }

  /**
   * For a redirect error: reports it, and when the client may follow it, points the next attempt there. One it may
   * not follow (hops used up, no readable reference, following off) sends the next attempt, after the usual backoff,
   * to the configured server again rather than to the one that refused. Each error is weighed once.
   */
  private followRedirect(err: unknown): boolean {
    if (!(err instanceof MqttRedirectError) || this.ending !== undefined) return false;
    if (this.weighedRedirects.has(err)) return false;
    this.weighedRedirects.add(err);
    const current = this.redirected ?? this.target;
    const next = redirectTarget(err.serverReference, current);
    const followed =
      this.options.followRedirects === true &&
      next !== undefined &&
      this.redirectHops < (this.options.maxRedirects ?? 3);
    this.emit('redirect', { reasonCode: err.reasonCode ?? 0, serverReference: err.serverReference, followed });
    if (!followed || next === undefined) {
      this.clearRedirect();
      return false;
    }
    this.redirectHops++;
    if (err.reasonCode === SERVER_MOVED) {
      this.target = next;
      this.redirected = undefined;
    } else {
      this.redirected = next;
    }
    return true;
  }

  private clearRedirect(): void {
    this.redirected = undefined;
    this.redirectHops = 0;
  }

  /** One connection attempt: transport, CONNECT (with auth data), CONNACK, all within the connect timeout. */
  private async attemptOnce(): Promise<void> {
    const conn = new Connection(
      this,
      new Decoder({
        protocolVersion: this.version,
        role: 'client',
        maximumPacketSize: this.options.properties?.maximumPacketSize,
      }),
    );
    const abort = conn.abort as AbortController;
    const target = this.redirected ?? this.target;
    this.conn = conn;
    this.setState('connecting');
    this.emit('connecting');
    const timeoutMs = this.options.connectTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => abort.abort(new MqttError('MQTT_ERR_TIMEOUT', `not connected within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const factory = this.options.transport ?? (await transportFor(target.protocol));
      const transport = await factory(
        { ...target, tls: this.options.tls, wsHeaders: this.options.wsHeaders, signal: abort.signal },
        conn,
      );
      conn.transport = transport;
      if (abort.signal.aborted) throw abort.signal.reason;
      const connack = new Promise<ConnackPacket>((resolve, reject) => {
        this.connackWaiter = { resolve, reject };
      });
      const onAbort = () => {
        this.connackWaiter?.reject(abort.signal.reason as Error);
        transport.destroy();
      };
      abort.signal.addEventListener('abort', onAbort, { once: true });
      let authProps: ConnectProperties | undefined;
      const auth = this.options.auth;
      if (auth !== undefined && this.version === 5) {
        const data = await auth.step(undefined, { reasonCode: 0 });
        authProps = { authenticationMethod: auth.method };
        if (data !== undefined) authProps.authenticationData = data;
      }
      this.apply(conn, this.session.connect(sessionClock(), authProps));
      try {
        this.connack = await connack;
      } finally {
        abort.signal.removeEventListener('abort', onAbort);
      }
      // Connected: nothing is left to abort, and an idle client need not keep the controller and its signal.
      conn.abort = undefined;
    } catch (err) {
      const error = transportError('MQTT_ERR_CONNECT_FAILED', err, target);
      conn.reason ??= error;
      conn.transport?.destroy();
      if (conn.transport === undefined) this.onClose(conn, error);
      throw conn.reason;
    } finally {
      clearTimeout(timer);
      this.connackWaiter = undefined;
    }
  }

  private scheduleReconnect(reason: Error): void {
    const r = this.options.reconnect;
    // Delays, and redirect hops, start again only after a connection that lasted: one ended at once (a session
    // taken over by a twin, a server that accepts and then redirects) counts as one more failed attempt.
    if (this.connectedAt !== undefined) {
      const stableAfterMs = (r === false ? undefined : r?.stableAfterMs) ?? DEFAULT_BACKOFF.stableAfterMs;
      if (sessionClock() - this.connectedAt >= stableAfterMs) {
        this.attempt = 0;
        this.redirectHops = 0;
      }
      this.connectedAt = undefined;
    }
    if (this.followRedirect(reason)) {
      // The server asked us to go elsewhere: no backoff, and no reconnect option needed (followRedirects is one).
      this.setState('reconnecting', reason);
      this.emit('reconnecting', { attempt: this.attempt, delayMs: 0, reason });
      this.reconnectTimer = setTimeout(() => {
        if (this.ending !== undefined) return;
        this.attemptConnection().catch((err: Error) => this.attemptFailed(err));
      }, 0);
      return;
    }
    const permanent =
      reason instanceof MqttError &&
      reason.code === 'MQTT_ERR_CONNECTION_REFUSED' &&
      isPermanentRefusal(reason.reasonCode, this.version);
    const onPermanent = (r === false ? undefined : r?.onPermanentRefusal) ?? 'slow';
    if (r === false || r?.enabled === false || this.ending !== undefined || (permanent && onPermanent === 'end')) {
      void this.finish(reason);
      return;
    }
    const backoff = r ?? {};
    const delayMs =
      permanent && onPermanent === 'slow'
        ? backoffDelay(
            0,
            { ...backoff, initialDelayMs: backoff.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs },
            this.options.random,
          )
        : backoffDelay(this.attempt, backoff, this.options.random);
    this.attempt++;
    this.setState('reconnecting', reason);
    this.emit('reconnecting', { attempt: this.attempt, delayMs, reason });
    this.reconnectTimer = setTimeout(() => {
      if (this.ending !== undefined) return;
      this.attemptConnection().catch((err: Error) => this.attemptFailed(err));
    }, delayMs);
  }

  /** @internal The connection's transport read `chunk`. */
  onData(conn: Connection, chunk: Uint8Array): void {
    if (conn.closed || this.conn !== conn) return;
    conn.decoder.push(chunk);
    this.session.bytesArrived(sessionClock());
    // Answers and refills this read causes (and what listeners publish meanwhile) leave in one write as the read
    // returns: no microtask to queue and run per read when PUBACKs arrive one at a time.
    conn.inRead = true;
    try {
      this.decodeAvailable(conn);
    } finally {
      conn.inRead = false;
      this.flushOut(conn);
    }
  }

  /** Handles the packets the decoder holds, stopping (bytes kept) while reading is paused. */
  private decodeAvailable(conn: Connection): void {
    // A run of PUBACKs / PUBCOMPs (a window's worth in one read) is handled into one step and applied once: their
    // outcomes are promise settlements and refills, and a step per ack was most of what an ack allocated.
    let acks: Step | undefined;
    for (;;) {
      let packet: Packet | undefined;
      let failure: MqttError | undefined;
      if (!conn.paused) {
        try {
          packet = conn.decoder.next();
        } catch (err) {
          // The codec throws MqttErrors; anything else (a RangeError on a hostile length, say) is malformed too.
          failure =
            err instanceof MqttError
              ? err
              : new MqttError('MQTT_ERR_MALFORMED_PACKET', `malformed packet: ${(err as Error).message}`, {
                  reasonCode: 0x81,
                  cause: err,
                });
        }
      }
      if ((packet?.type === 'puback' || packet?.type === 'pubcomp') && this.session.state === 'connected') {
        acks = this.session.handle(packet, sessionClock(), acks);
        continue;
      }
      // Anything else, or the end of what can be read now: the acks gathered so far go first.
      if (acks !== undefined) {
        this.apply(conn, acks);
        acks = undefined;
        if (conn.closed || this.conn !== conn || this.session.state === 'disconnected') return;
      }
      if (failure !== undefined) {
        if (this.version === 5 && failure.reasonCode !== undefined) {
          this.writeNow(conn, [{ type: 'disconnect', reasonCode: failure.reasonCode }]);
        }
        conn.reason = failure;
        this.closeLine(conn, 'end');
        return;
      }
      if (packet === undefined) return;
      this.apply(conn, this.session.handle(packet, sessionClock()));
      // A protocol error, DISCONNECT or refusal ended the connection: what follows it in the read is not for us.
      if (conn.closed || this.conn !== conn || this.session.state === 'disconnected') return;
      if (packet.type === 'publish') this.maybePause(conn);
    }
  }

  /** @internal The connection's transport closed. */
  onClose(conn: Connection, err: Error | undefined): void {
    if (conn.closed) return;
    conn.closed = true;
    // No reason of ours (a keepalive timeout, a protocol error, end(), a DISCONNECT) and a FIN or a reset: the server
    // hung up (one that closes with our next packets unread resets the line).
    const byServer = conn.reason === undefined && (err === undefined || hungUp(err));
    conn.reason ??=
      err === undefined
        ? new MqttError('MQTT_ERR_CONNECTION_CLOSED', 'the connection closed')
        : transportError(
            conn.established ? 'MQTT_ERR_CONNECTION_CLOSED' : 'MQTT_ERR_CONNECT_FAILED',
            err,
            this.redirected ?? this.target,
          );
    conn.markClosed();
    if (this.conn !== conn) return;
    this.conn = undefined;
    clearTimeout(this.keepaliveTimer);
    this.disarmHold();
    if (byServer) this.apply(undefined, this.session.serverClosed(sessionClock()));
    this.session.connectionLost();
    this.connackWaiter?.reject(conn.reason);
    this.settleReauth(conn, conn.reason);
    for (const w of this.idleWaiters.splice(0)) w();
    // An attempt's own error path decides what follows a failed attempt; end() what follows a closing line.
    if (!conn.established || this.ending !== undefined) return;
    if (!(conn.reason instanceof MqttRedirectError)) this.clearRedirect();
    this.setState('offline', conn.reason);
    this.emit('offline', conn.reason);
    this.scheduleReconnect(conn.reason);
  }

  /** Persists what the step asks, writes its packets (after the store settled), then settles promises. */
  private apply(conn: Connection | undefined, step: Step): void {
    let ops: Promise<void>[] | undefined;
    const store = this.storeLoaded ? this.store : undefined;
    if (store !== undefined) {
      let lazy: Promise<void>[] | undefined;
      for (const e of step.events) {
        let r: void | Promise<void> | undefined;
        if (e.type === 'store-put') r = store.put(e.key, e.record, e.durable === 'optional');
        else if (e.type === 'store-delete') r = store.delete(e.key, e.durable === 'optional');
        else continue;
        if (r === undefined) continue;
        // A file store hands every change of one batch the same promise: each list holds it once.
        if (e.durable !== undefined) {
          if (lazy === undefined) lazy = [r];
          else if (lazy[lazy.length - 1] !== r) lazy.push(r);
        } else if (ops === undefined || ops[ops.length - 1] !== r) {
          // Handled now, not only once the write chain reaches it: a batch that fails (a full disk) while an
          // earlier one still waits for its flush would otherwise be an unhandled rejection, which ends the process.
          r.catch(ignore);
          if (ops === undefined) ops = [r];
          else ops.push(r);
        }
      }
      // Packets do not wait for these (see the event's `durable`), but a failed write is still reported, and the
      // store is not closed before they settled.
      if (lazy !== undefined) this.trackRelaxed(lazy);
    }
    if (conn !== undefined && step.packets.length > 0) this.write(conn, step.packets, ops);
    else if (ops !== undefined) this.write(undefined, [], ops);
    // A QoS 2 message goes to the application only once its id is stored: delivered first, a crash before the
    // store write would leave the server to send it again to a client that no longer knows it had it.
    const durable =
      ops !== undefined && step.events.some((e) => e.type === 'store-put' && e.record.kind === 'incoming');
    for (const e of step.events) {
      if (e.type === 'message' && (durable || this.deliveries !== undefined))
        this.deliverLater(conn, e, durable ? ops : undefined);
      else this.dispatch(conn, e);
    }
    if (this.session.holding) {
      if (!this.holdArmed) this.armHold();
    } else {
      this.holdArmed = false;
    }
    if (this.session.nextExpiry !== this.expiryArmedAt) this.armExpiry();
    if (this.idleWaiters.length > 0 && this.session.idle) for (const w of this.idleWaiters.splice(0)) w();
    // Something now awaits the server's answer (a publish, a subscribe): it cannot arrive while reading is paused.
    if (conn?.paused === true && this.awaitsServer()) this.maybeResume();
  }

  /** Deliveries waiting for their store writes (deliverLater), in arrival order; undefined when none wait. */
  private deliveries: Promise<void> | undefined;
  private deliveriesWaiting = 0;

  /**
   * Dispatches a message once `ops` settled and every message before it went out (order kept). A failed write
   * still delivers it (the write chain reports the error): at least once rather than never.
   */
  private deliverLater(conn: Connection | undefined, e: SessionEvent, ops: Promise<void>[] | undefined): void {
    this.deliveriesWaiting++;
    const previous = this.deliveries ?? Promise.resolve();
    this.deliveries = previous
      .then(() => (ops === undefined ? undefined : Promise.all(ops)))
      .catch(() => {})
      .then(() => {
        this.dispatch(conn, e);
        if (--this.deliveriesWaiting === 0) this.deliveries = undefined;
      });
  }

  private write(conn: Connection | undefined, packets: Packet[], ops: Promise<void>[] | undefined): void {
    if (ops === undefined && this.chainDepth === 0) {
      if (conn !== undefined) this.writeNow(conn, packets);
      return;
    }
    // Packets wait for the store, and for packets queued before them, so order on the wire is kept. They are
    // encoded now: a QoS 0 payload is the application's, which may reuse its buffer once publish() returns.
    const bytes = conn === undefined ? undefined : this.encodeAll(packets);
    this.chainDepth++;
    const previous = this.writeChain ?? Promise.resolve();
    const next = previous
      .then(() => (ops === undefined ? undefined : Promise.all(ops)))
      .then(
        () => {
          if (ops !== undefined) this.storeError = undefined;
        },
        (err: unknown) => this.storeFailed(err),
      )
      .then(() => {
        if (conn !== undefined && bytes !== undefined) this.writeBytes(conn, bytes);
        if (--this.chainDepth === 0) this.writeChain = undefined;
      });
    this.writeChain = next;
  }

  /** The last store error reported: a failed batch rejects every write in it, and is reported once. */
  private storeError: unknown;
  /** Relaxed store writes not yet settled: finishOnce waits for them before it closes the store. */
  private readonly relaxed = new Set<Promise<void>>();

  private storeFailed(err: unknown): void {
    if (err === this.storeError) return;
    this.storeError = err;
    this.emit('error', err as Error);
  }

  private trackRelaxed(ops: Promise<void>[]): void {
    for (const op of ops) {
      // The file store's batch promise comes back for every change of the batch: tracked once.
      if (this.relaxed.has(op)) continue;
      this.relaxed.add(op);
      op.then(
        () => {
          this.storeError = undefined;
          this.relaxed.delete(op);
        },
        (err: unknown) => {
          this.storeFailed(err);
          this.relaxed.delete(op);
        },
      );
    }
  }

  private writeNow(conn: Connection, packets: Packet[]): void {
    if (conn.closed || conn.transport === undefined) return;
    const bytes = this.encodeAll(packets);
    if (bytes !== undefined) this.writeBytes(conn, bytes);
  }

  /** The packets as one chunk of bytes; undefined for none. */
  private encodeAll(packets: Packet[]): Uint8Array | undefined {
    if (packets.length === 0) return undefined;
    if (packets.length === 1) return encode(packets[0]!, this.version);
    let total = 0;
    for (const p of packets) total += encodedLength(p, this.version);
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const p of packets) offset = encodeInto(p, this.version, bytes, offset);
    return bytes;
  }

  private writeBytes(conn: Connection, bytes: Uint8Array): void {
    if (conn.closed || conn.transport === undefined) return;
    // Coalesce: a chunk of acks read at once answers with one write, not one syscall per packet.
    conn.out.push(bytes);
    if (conn.out.length === 1 && !conn.inRead) queueMicrotask(conn.flush);
  }

  /** @internal Writes what the connection has buffered. */
  flushOut(conn: Connection): void {
    const chunks = conn.out;
    if (chunks.length === 0) return;
    conn.out = [];
    if (conn.closed || conn.transport === undefined) return;
    if (chunks.length === 1) {
      if (conn.transport.write(chunks[0]!) === false) conn.backedUp = true;
      return;
    }
    let total = 0;
    for (const c of chunks) total += c.length;
    const joined = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      joined.set(c, offset);
      offset += c.length;
    }
    if (conn.transport.write(joined) === false) conn.backedUp = true;
  }

  /** Writes what is buffered, then closes: `end` lets the peer read it, `destroy` does not wait. */
  private closeLine(conn: Connection, how: 'end' | 'destroy'): void {
    this.flushOut(conn);
    if (how === 'end') conn.transport?.end();
    else conn.transport?.destroy();
  }

  private dispatch(conn: Connection | undefined, e: SessionEvent): void {
    switch (e.type) {
      case 'connected':
        if (conn !== undefined) conn.established = true;
        this.connectedAt = sessionClock();
        this.connackWaiter?.resolve(e.connack);
        this.setState('connected');
        if (!e.connack.sessionPresent) this.resubscribe();
        this.armKeepalive();
        this.emit('connected', e.connack);
        break;
      case 'refused': {
        const code = e.connack.reasonCode;
        const reason = e.connack.properties?.reasonString;
        const message = `connection refused: ${reasonName(code, this.version, 'connack')}${reason ? ` (${reason})` : ''}`;
        const refusal =
          this.version === 5 && isRedirect(code)
            ? new MqttRedirectError('MQTT_ERR_CONNECTION_REFUSED', message, code, e.connack.properties?.serverReference)
            : new MqttError('MQTT_ERR_CONNECTION_REFUSED', message, { reasonCode: code });
        // The line's reason before it is dropped: a transport that reports the close at once (a WebSocket closed by
        // the server just then) must not turn the refusal into "the connection closed".
        if (conn !== undefined) conn.reason ??= refusal;
        this.connackWaiter?.reject(refusal);
        conn?.transport?.destroy();
        break;
      }
      case 'message': {
        const p = e.message;
        const message = { topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, dup: p.dup } as Message;
        if (p.packetId !== undefined) message.packetId = p.packetId;
        if (p.properties !== undefined) message.properties = p.properties;
        // Not enumerable: a message stays a plain record for logging, JSON and deep comparison.
        const ack = this.acker(e.ack);
        // Without manualAck a token means the ack waits for the consumers that buffer the message (consumersBehind).
        const held = e.ack !== undefined && this.options.manualAck !== true;
        ACK_PROPERTY.value = held ? noAck : ack;
        Object.defineProperty(message, 'ack', ACK_PROPERTY);
        ACK_PROPERTY.value = noAck;
        if (this.early !== undefined) {
          if (this.early.length < EARLY_LIMIT) {
            this.early.push(message);
            if (held) this.holdForConsumers(message, 1, ack);
          } else {
            if (held) ack();
            this.emit('error', new MqttError('MQTT_ERR_QUEUE_FULL', 'message dropped: nobody is listening'));
          }
          break;
        }
        this.emit('message', message);
        let holders = 0;
        for (const entry of this.streams) {
          if (!routes(entry, message)) continue;
          // Reading goes on while the client awaits the server (see maybePause): QoS 0 messages, which no window
          // stops, are dropped for a consumer twice the high-water mark behind rather than held without bound.
          if (message.qos === 0 && entry.stream.pending >= 2 * this.highWaterMark) {
            entry.stream.countDrop();
            this.droppedBehind++;
          } else if (entry.stream.push(message)) {
            holders++;
          }
        }
        if (!held) break;
        if (holders === 0) ack();
        else this.holdForConsumers(message, holders, ack);
        break;
      }
      case 'published': {
        const pending = e.owner as Pending<PublishResult> | undefined;
        if (pending === undefined) break;
        const result: PublishResult = { reasonCode: e.reasonCode };
        if (e.properties !== undefined) result.properties = e.properties;
        if (e.pubrec !== undefined) result.pubrec = e.pubrec;
        if (e.handedOff === true && conn !== undefined && conn.backedUp && !conn.closed) {
          // A slow line: a QoS 0 publisher that awaits its publish waits until the line takes more, instead of
          // filling memory with what the socket cannot send.
          conn.backedUpWaiters ??= [];
          conn.backedUpWaiters.push(() => pending.resolve(result));
          break;
        }
        pending.resolve(result);
        break;
      }
      case 'publish-failed': {
        const pending = e.owner as Pending<PublishResult> | undefined;
        // A message restored from the store has no promise to reject: its failure belongs to no call.
        if (pending !== undefined) pending.reject(e.error);
        else if (this.restoredFailures !== undefined) this.restoredFailures.push(e.error);
        else this.emit('error', e.error);
        break;
      }
      case 'suback':
      case 'unsuback':
        this.controls.get(e.packet.packetId)?.resolve(e.packet);
        this.controls.delete(e.packet.packetId);
        break;
      case 'auth':
        if (conn !== undefined) void this.continueAuth(conn, e.packet.reasonCode ?? 0, e.packet.properties);
        break;
      case 'server-disconnect': {
        this.emit('disconnect', e.packet);
        const code = e.packet.reasonCode ?? 0;
        if (conn !== undefined) {
          const reason = e.packet.properties?.reasonString;
          const message = `the server disconnected: ${reasonName(code, 5, 'disconnect')}${reason ? ` (${reason})` : ''}`;
          conn.reason = isRedirect(code)
            ? new MqttRedirectError('MQTT_ERR_CONNECTION_CLOSED', message, code, e.packet.properties?.serverReference)
            : new MqttError('MQTT_ERR_CONNECTION_CLOSED', message, { reasonCode: code });
          conn.transport?.destroy();
        }
        break;
      }
      case 'close':
        if (conn !== undefined) {
          conn.reason = e.error;
          // A DISCONNECT for a protocol error goes out first; a dead line (keepalive) is not waited for.
          this.closeLine(conn, e.error.code === 'MQTT_ERR_KEEPALIVE_TIMEOUT' ? 'destroy' : 'end');
        }
        break;
      default:
        break;
    }
  }

  private acker(token: AckToken | undefined): () => void {
    if (token === undefined) return noAck;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.apply(this.conn, this.session.ack(token, sessionClock()));
    };
  }

  /** An AUTH from the server: 0x18 is answered through the hook; 0x00 ends a re-authentication. */
  private async continueAuth(conn: Connection, reasonCode: number, properties: AuthProperties | undefined) {
    const auth = this.options.auth;
    try {
      if (auth === undefined) {
        throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', 'AUTH from the server without an auth hook', {
          reasonCode: 0x82,
        });
      }
      if (properties?.authenticationMethod !== auth.method) {
        throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', 'AUTH from the server with another authentication method', {
          reasonCode: 0x82,
        });
      }
      const success = reasonCode === 0x00;
      if (success && !this.reauthRunsOn(conn)) {
        throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', 'AUTH success without a re-authentication', {
          reasonCode: 0x82,
        });
      }
      if (!success && conn.established && !this.reauthRunsOn(conn)) {
        // Only the client starts a re-authentication: a challenge out of the blue is not the hook's to answer.
        throw new MqttError('MQTT_ERR_PROTOCOL_ERROR', 'AUTH from the server outside an authentication exchange', {
          reasonCode: 0x82,
        });
      }
      if (!success && reasonCode !== 0x18) {
        throw new MqttError(
          'MQTT_ERR_PROTOCOL_ERROR',
          `AUTH from the server with reason 0x${reasonCode.toString(16)}`,
          {
            reasonCode: 0x82,
          },
        );
      }
      // On success the hook still sees the server's last data (e.g. a SCRAM server signature) and may refuse it.
      const data = await auth.step(properties.authenticationData, { reasonCode, properties });
      if (conn.closed) return;
      if (success) {
        this.settleReauth(conn);
        return;
      }
      const out: AuthProperties = { authenticationMethod: auth.method };
      if (data !== undefined) out.authenticationData = data;
      this.apply(conn, this.session.auth(sessionClock(), 0x18, out));
    } catch (err) {
      this.authFailed(conn, err);
    }
  }

  /**
   * The server kept no session: subscribe again to what was granted. A filter the server now refuses leaves the
   * registry and is reported as an `error` (MQTT_ERR_SUBSCRIBE_FAILED): a vehicle that silently lost its command
   * subscription would be out of reach.
   */
  private resubscribe(): void {
    const groups = new Map<SubscribeProperties | undefined, Subscription[]>();
    for (const { subscription, properties } of this.registry.values()) {
      const list = groups.get(properties) ?? [];
      list.push(subscription);
      groups.set(properties, list);
    }
    for (const [properties, list] of groups) {
      const { packetId, step } = this.session.subscribe(list, properties, sessionClock());
      this.controls.set(packetId, {
        resolve: (packet) => this.resubscribed(list, packet as SubackPacket),
        reject: () => {},
      });
      this.apply(this.conn, step);
    }
  }

  private resubscribed(list: Subscription[], suback: SubackPacket): void {
    list.forEach((subscription, i) => {
      const code = suback.reasonCodes[i] ?? 0x80;
      if (code < 0x80) return;
      this.registry.delete(subscription.topicFilter);
      const reason = reasonName(code, 5);
      const message = `subscribing to ${subscription.topicFilter} again, after the server lost the session, was refused: ${reason}`;
      this.emit('error', new MqttError('MQTT_ERR_SUBSCRIBE_FAILED', message, { reasonCode: code }));
    });
  }

  private armHold(): void {
    if (this.conn === undefined) return;
    this.holdArmed = true;
    const timer = this.holdTimer as { refresh?: () => void } | undefined;
    if (timer?.refresh !== undefined) timer.refresh();
    else {
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => this.holdExpired(), REFILL_HOLD_MS);
    }
  }

  private holdExpired(): void {
    if (!this.holdArmed) return;
    this.holdArmed = false;
    const conn = this.conn;
    if (conn !== undefined && !conn.closed) this.apply(conn, this.session.releaseHeld(sessionClock()));
  }

  /** A cleared Node timeout cannot be refreshed: the next hold makes a new one. */
  private disarmHold(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.holdArmed = false;
  }

  /** Arms the timer for the session's next queued expiry (none: cleared). */
  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const at = this.session.nextExpiry;
    this.expiryArmedAt = at;
    if (at === undefined || this.finishing !== undefined) return;
    // Capped: a longer timeout (an expiry a month away) would fire at once, and then again, and again.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - sessionClock()) + 1);
    this.expiryTimer = setTimeout(() => {
      // apply() arms the timer again for whatever expiry is next (it differs from undefined).
      this.expiryArmedAt = undefined;
      this.apply(this.conn, this.session.expireQueued(sessionClock()));
    }, delay);
  }

  private armKeepalive(): void {
    clearTimeout(this.keepaliveTimer);
    const reading = this.conn?.paused !== true;
    const at = this.session.nextTick(reading);
    if (at === undefined) return;
    const run = (due: number, again: boolean): void => {
      const now = sessionClock();
      if (now - due > LATE_TIMER_MS && !again) {
        // Late: a stall (a long GC, a busy CPU, the application's own work) held the process, and this timer runs
        // before the reads that waited meanwhile; a PINGRESP already in the socket would be taken for missing.
        // Judged a turn later, after those reads, however late that turn is.
        this.keepaliveTimer = setTimeout(() => run(now, true), 0);
        return;
      }
      const conn = this.conn;
      if (conn === undefined) return;
      this.apply(conn, this.session.tick(now, !conn.paused));
      if (this.conn === conn) this.armKeepalive();
    };
    this.keepaliveTimer = setTimeout(() => run(at, false), Math.max(0, at - sessionClock()));
  }
}

interface StreamEntry {
  stream: MessageStream<Message>;
  accepts: (topic: string) => boolean;
  /** The filters of the subscription whose stream it is (MqttSubscription.messages); undefined for client.messages. */
  filters: readonly string[] | undefined;
  /** That subscription's Subscription Identifier (5.0), if it asked for one. */
  subscriptionId: number | undefined;
}

/** The longest timeout setTimeout takes (2^31 - 1 ms, ~24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 0x7fffffff;

/** A keepalive timer running this much after its time was held up by a stall (see armKeepalive). */
const LATE_TIMER_MS = 100;

/** A reset or a broken pipe: the peer closed its end (a lost line times out instead). */
function hungUp(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  // WS_CLOSE: the WebSocket transport's close frame with a code (transports/ws.ts).
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'WS_CLOSE';
}

/**
 * Whether a stream takes a message: its topic matches, and, when both the message and the stream's subscription
 * carry Subscription Identifiers, the message names that subscription's. With overlapping subscriptions a server
 * may send one copy per subscription, each naming its own ([MQTT-3.3.4-5]): each stream then gets its copy only.
 */
function routes(entry: StreamEntry, message: Message): boolean {
  if (!entry.accepts(message.topic)) return false;
  const id = entry.subscriptionId;
  const ids = id === undefined ? undefined : message.properties?.subscriptionIdentifiers;
  return ids === undefined || ids.includes(id!);
}

/** A granted subscription: its reason codes, its own message stream, and a way to undo it. */
export class MqttSubscription {
  readonly filters: string[];

  constructor(
    private readonly client: MqttClient,
    readonly subscriptions: Subscription[],
    /** One per filter: the granted QoS, or a failure code (≥ 0x80). */
    readonly reasonCodes: number[],
    /** The SUBACK's Reason String and User Properties (5.0). */
    readonly properties?: AckProperties,
    /** What the SUBSCRIBE carried (5.0): its Subscription Identifier routes `messages()`. */
    readonly subscribeProperties?: SubscribeProperties,
  ) {
    this.filters = subscriptions.map((s) => s.topicFilter);
  }

  /**
   * Messages whose topic matches one of this subscription's filters (and, when the SUBSCRIBE set a Subscription
   * Identifier and the message carries identifiers, that name it). The stream ends when the client closes, and
   * once every one of these filters was unsubscribed (here or with `client.unsubscribe`).
   */
  messages(): MessageStream<Message> {
    // Only the filters the server granted: a refused one must not pass another subscription's messages on here.
    const granted = this.filters.filter((_, i) => (this.reasonCodes[i] ?? 0x80) < 0x80);
    return this.client.subscriptionMessages(granted, this.subscribeProperties?.subscriptionIdentifiers?.[0]);
  }

  unsubscribe(properties?: UnsubscribeProperties): Promise<UnsubscribeResult> {
    return this.client.unsubscribe(this.filters, properties);
  }
}

function noAck(): void {}

/** The descriptor every received message's `ack` is defined with, its value set for each: no descriptor per message. */
const ACK_PROPERTY: PropertyDescriptor = { value: noAck, enumerable: false, writable: false, configurable: false };

/**
 * Subscription options a 3.1.1 SUBSCRIBE cannot carry and whose loss changes what arrives: without No Local the
 * client gets its own messages back (a bridge or a relay loops), without Retain Handling retained messages arrive.
 */
function checkOptions311(
  filters: string | Array<string | (Subscription & { topicFilter: string })>,
  options: SubscribeOptions,
): void {
  const given = [
    options,
    ...(Array.isArray(filters) ? filters : []).filter((f) => typeof f === 'object' && f !== null),
  ];
  for (const o of given as Array<Partial<Subscription>>) {
    const name =
      o.noLocal === true
        ? 'noLocal'
        : o.retainAsPublished === true
          ? 'retainAsPublished'
          : o.retainHandling !== undefined && o.retainHandling !== 0
            ? 'retainHandling'
            : undefined;
    if (name !== undefined) {
      throw new MqttError(
        'MQTT_ERR_INVALID_OPTION',
        `${name} is an MQTT 5.0 subscription option; this client speaks 3.1.1`,
      );
    }
  }
}

function closedError(): MqttError {
  return new MqttError('MQTT_ERR_CLIENT_CLOSED', 'the client is closed');
}

/** What the socket and TLS codes users meet most often mean, and which option is usually the remedy. */
const TRANSPORT_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: nothing listens on that port',
  ECONNRESET: 'the server reset the connection',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name not found (DNS did not answer)',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'no route to the network',
  ETIMEDOUT: 'the TCP connection timed out',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate (tls.cert and tls.key)',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the server does not trust our client certificate: no CA it knows signed it',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the server refused our client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'the server refused our client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the server says our client certificate has expired',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not signed by a CA we trust (tls.ca)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is not signed by a CA we trust (tls.ca)",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in a CA we do not trust (tls.ca)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed and not in tls.ca",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate is not for this host name (tls.servername)",
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server did not answer in TLS: is that port plain MQTT?',
};

/**
 * A transport failure as an MqttError with a stable code, naming the server and what the socket's or TLS's own
 * code means; that error stays reachable as `cause` (its `code`: ECONNREFUSED, ERR_SSL_..., ...).
 */
function transportError(code: MqttErrorCode, err: unknown, target: ResolvedTarget): MqttError {
  if (err instanceof MqttError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const own = typeof e.code === 'string' ? e.code : undefined;
  const hint = own === undefined ? undefined : TRANSPORT_HINTS[own];
  // OpenSSL's messages carry a library prefix and a source location: the first line's last part says it.
  const detail =
    hint ??
    String(e.message ?? err)
      .split('\n')[0]!
      .replace(/^[0-9A-F]+:error:[0-9A-F]+:/, '');
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const path = target.protocol === 'ws' || target.protocol === 'wss' ? target.path : '';
  const where = `${target.protocol}://${host}:${target.port}${path}`;
  const what =
    code === 'MQTT_ERR_CONNECT_FAILED' ? `cannot connect to ${where}` : `the connection to ${where} was lost`;
  return new MqttError(code, `${what}: ${detail}${hint !== undefined ? ` (${own})` : ''}`, { cause: err });
}

async function transportFor(protocol: ResolvedTarget['protocol']): Promise<TransportFactory> {
  // Imported on demand: a program that only uses ws:// never loads node:net or node:tls. A browser build gets stubs
  // for tcp and tls instead (package.json's "browser" field), since a bundler may hoist these imports.
  switch (protocol) {
    case 'mqtt':
      return (await import('./transports/tcp.js')).tcpTransport;
    case 'mqtts':
      return (await import('./transports/tls.js')).tlsTransport;
    case 'ws':
    case 'wss':
      return (await import('./transports/ws.js')).wsTransport;
    default:
      throw new MqttError('MQTT_ERR_INVALID_OPTION', `no transport for ${protocol}; pass options.transport`);
  }
}
