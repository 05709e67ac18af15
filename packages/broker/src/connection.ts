// The connection shell: socket bytes in, Decoder (role 'server'), one handler per packet, encoded frames out,
// coalesced into one socket write per event-loop turn (the turn's first read is written at once, see core.afterRead).
// It owns the per-connection protocol state (version, aliases, keepalive, limits) and closes with the right reason
// when the peer breaks the rules.
import {
  type Decoder,
  encode,
  MAX_PACKET_SIZE,
  MqttError,
  type Packet,
  type ProtocolVersion,
  type PublishPacket,
  UnsupportedProtocolError,
  type Will,
} from '@otalink/mqtt/codec';
import {
  type BrokerCore,
  CONGESTION_BYTES,
  OUTPUT_HIGH_WATER,
  OUTPUT_LOW_WATER,
  OUTPUT_PAUSE_BYTES,
  OUTPUT_RESUME_BYTES,
  TURN_OUTPUT_BYTES,
  TURN_PACKETS,
} from './core.js';
import { giveDecoder, takeDecoder } from './decoder-pool.js';
import { readDirect } from './direct-read.js';
import type { BrokerErrorCode } from './errors.js';
import { dispatch } from './handlers/index.js';
import type { Timed } from './keepalive.js';
import type { Delivery } from './message.js';
import type { ClientIdentity, EnhancedAuthenticator, ListenerProtocol } from './options.js';
import { type PublishTemplates, publishPacket } from './publish-encoding.js';
import { SendWatch, type SendWatched, tcpWriteQueueOf } from './send-watch.js';
import type { Outlet, Session } from './session.js';

/**
 * The byte stream a connection reads and writes: a net, TLS or WebSocket Duplex, or a plain TCP connection on
 * Node's raw handle (listeners/raw-tcp.ts), which has just this part of a stream.
 */
export interface ByteStream {
  write(bytes: Uint8Array): boolean;
  end(): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  readonly writableLength: number;
  /**
   * Bytes the kernel has not taken, shrinking as it takes part of a write (libuv's write queue): where the stream
   * can tell (RawTcpSocket). writableLength shrinks only when a whole write completes.
   */
  readonly writeQueueSize?: number;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
  /** A plain TCP connection's (RawTcpSocket): one object of handlers for all four events, `this` the socket. */
  handleWith?(handlers: StreamHandlers): void;
}

/**
 * The handlers of a stream's events, each called with the stream as `this` before any listener: an owner of many
 * streams hands every one the same object, so a stream holds one reference for all four (RawTcpSocket.handleWith).
 */
export interface StreamHandlers {
  readonly data: (this: never, chunk: Buffer) => void;
  readonly end: (this: never) => void;
  readonly error: (this: never, error: Error) => void;
  /** `hadError`: an 'error' came first, as net.Socket's 'close' tells. */
  readonly close: (this: never, hadError: boolean) => void;
}

export interface TransportInfo {
  protocol: ListenerProtocol;
  /** Given by listeners that know it anyway (TLS, WebSocket); undefined: read from the socket (see remoteAddress). */
  remoteAddress: string | undefined;
  /** Subject CN of a verified client certificate. */
  certificateIdentity: string | undefined;
  identityFromCertificate: boolean;
}

/** Enhanced authentication in progress (CONNECT or re-authentication). */
export interface AuthExchange {
  authenticator: EnhancedAuthenticator;
  step: number;
  reauth: boolean;
}

/** The DISCONNECT reason string for an error: its message, kept short (it must fit the client's packet size). */
function reasonText(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  return error.message.length > 120 ? `${error.message.slice(0, 117)}...` : error.message;
}

/** A protocol rule broken by the peer: close with this 5.0 reason code. */
export function violation(reasonCode: number, message: string): MqttError {
  return new MqttError('MQTT_ERR_PROTOCOL_ERROR', message, { reasonCode });
}

// Never mutated after creation: the same bytes are queued for every 3.1.1 client.
const CONNACK_311_NEW = new Uint8Array([0x20, 0x02, 0x00, 0x00]);
const CONNACK_311_PRESENT = new Uint8Array([0x20, 0x02, 0x01, 0x00]);

/** A read at least this large renews the keepalive deadline even when it completes no packet (see #onData). */
const KEEPALIVE_READ_BYTES = 1024;

/** How long a closing socket may take to drain its queued bytes before it is destroyed. */
const CLOSE_GRACE_MS = 2000;

type State = 'awaiting-connect' | 'authenticating' | 'connected' | 'closing' | 'closed';

/** Acknowledgements waiting on one commit, sent in their order once it resolves. */
interface AckGroup {
  commit: Promise<void> | undefined;
  sends: Array<() => void>;
  fails: Array<(error: unknown) => void>;
  /** Its commit settled and its callbacks run: later acknowledgements start a new group. */
  started: boolean;
}

/**
 * What few connections ever use (topic aliases, enhanced authentication, a publish rate limit, acknowledgements
 * waiting on the store, backlog times): made on first use, so that an idle connection holds one slot for all of it.
 */
class Uncommon {
  inboundAliases: Map<number, string> | undefined = undefined;
  outboundAliases: Map<string, number> | undefined = undefined;
  auth: AuthExchange | undefined = undefined;
  authMethod: string | undefined = undefined;
  rateWindowStart = 0;
  rateCount = 0;
  /** While not read for its output (#pauseForOutput): what the socket held at the last check. */
  outputLeft = 0;
  ackChain: Promise<void> | undefined = undefined;
  acksWaiting = 0;
  /** The last group of acknowledgements waiting on one commit, while it can still take more. */
  ackTail: AckGroup | undefined = undefined;
  /** Byte runs taken by takePending and not yet written: anything queued later must follow them, not overtake. */
  deferred = 0;
  /**
   * The routing of this client's last held QoS 2 message (handlers/publish.ts), settled once it was delivered or
   * dropped: the next one waits for it, so that its QoS 2 messages reach subscribers in the order they were sent.
   */
  heldRouting: Promise<void> | undefined = undefined;
  /**
   * Taken runs that wait for store records a failed write holds back (BrokerCore: output waits for the log): written
   * in order once the store has written them; anything queued later goes behind them.
   */
  stalled: Uint8Array[] | undefined = undefined;
  /** When its session was first seen backlogged after its last acknowledgement (see core's #backlogged). */
  backlogSince = 0;
  /** When its output was first seen above OUTPUT_HIGH_WATER since it last drained to OUTPUT_LOW_WATER; 0: drained. */
  outputOverSince = 0;
  /** Set while routing this connection's PUBLISH when a subscriber's backlog should hold it back (core.publish). */
  holdFor: Session | undefined = undefined;
  /** The reason the clientDisconnected event gives, when it is not 'connection lost'. */
  closeReason: string | undefined = undefined;
  /** The send timeout's watch, made the first time a write left bytes the kernel did not take. */
  sendWatch: SendWatch | undefined = undefined;
}

const DEADLINE_EPOCH = Date.now();
const DEADLINE_UNIT_MS = 16;

// The connection's booleans, as bits of one number: a field each would be ~70 bytes of every connection.
const WILL_STORED = 1;
const OVER_LIMIT = 2;
const FLUSH_SCHEDULED = 4;
const BUSY = 8;
const YIELDED = 16;
const HOLD_ON_OUTPUT = 32;
const DURABLE_ACK = 64;
const GATED = 128;
const PEER_ENDED = 256;
const HELD = 512;
const NEEDS_LOG = 1024;
/** MQTT 5.0 (protocol level 5); 3.1.1 without it. */
const V5 = 2048;
/** Not read while its own output is over OUTPUT_PAUSE_BYTES (see #pauseForOutput). */
const OUTPUT_FULL = 4096;
/** The connection's State, as its index in STATES, in the bits from STATE_SHIFT up. */
const STATE_SHIFT = 13;
const STATES: readonly State[] = ['awaiting-connect', 'authenticating', 'connected', 'closing', 'closed'];

/** Where a socket keeps its connection, for the listeners shared by all connections. */
const CONNECTION = Symbol('connection');
type ConnectionSocket = ByteStream & { [CONNECTION]: Connection };

export class Connection implements Outlet, Timed, SendWatched {
  readonly core: BrokerCore;
  readonly socket: ByteStream;
  readonly transport: TransportInfo;
  /** Only while a read is being decoded or part of one waits (decoder-pool.ts): an idle connection holds none. */
  #decoder: Decoder | undefined;
  identity: ClientIdentity;
  session: Session | undefined;
  will: Will | undefined;
  #flags = 0;
  #uncommon: Uncommon | undefined;

  /**
   * Timed: the CONNECT timeout, then 1.5x keepalive, kept in DEADLINE_UNIT_MS units since DEADLINE_EPOCH (rounded up,
   * so never early; 0: none): a small integer for 397 days of uptime, where a time in ms is a double, a 16 B box of
   * its own in every connection.
   */
  #deadline = 0;
  keepaliveMs = 0;

  // Client-side limits learned from CONNECT (5.0). No limit is the largest packet MQTT can frame, not Infinity: a
  // small integer stays in the object, a double would be a 16 B box of its own in every connection.
  sendWindow: number;
  clientMaximumPacketSize = MAX_PACKET_SIZE;
  clientTopicAliasMaximum = 0;

  /**
   * Output queued for the next flush: the first run alone (a turn mostly queues one: a CONNACK, an ack, one
   * delivery), any further runs in `#pendingMore`. No array per flush, and none held by an idle connection.
   */
  #pending: Uint8Array | undefined;
  #pendingMore: Uint8Array[] | undefined;
  #pendingBytes = 0;
  /** Its neighbours in the core's list of open connections. */
  listPrev: Connection | undefined = undefined;
  listNext: Connection | undefined = undefined;
  /** When the client last acknowledged a message we sent (PUBACK, PUBREC, PUBCOMP). */
  ackedAt = 0;

  constructor(core: BrokerCore, socket: ByteStream, transport: TransportInfo, overLimit: boolean) {
    this.core = core;
    this.socket = socket;
    this.transport = transport;
    if (overLimit) this.#flags = OVER_LIMIT;
    this.sendWindow = core.limits.receiveMaximum;
    this.identity = { clientId: '', username: undefined, protocolVersion: 4, remoteAddress: transport.remoteAddress };
    this.deadline = Date.now() + core.limits.connectTimeoutMs;
    core.ticker.add(this);
    // The listeners are shared by every connection (the socket is `this` in them and carries its connection): four
    // closures and their context per connection would cost ~0.3 KB of an idle connection's memory and a share of
    // every connect.
    (socket as ConnectionSocket)[CONNECTION] = this;
    if (socket.handleWith !== undefined) {
      // A plain TCP connection on Node's handle: one reference to the handlers below, not four listener slots.
      socket.handleWith(Connection.#handlers);
    } else {
      // Plain TCP sockets arrive paused (pauseOnConnect) and are read without Readable's machinery where Node allows.
      if (transport.protocol !== 'mqtt' || !readDirect(socket, Connection.#socketData)) {
        socket.on('data', Connection.#socketData);
      }
      socket.on('error', Connection.#socketError);
      socket.on('close', Connection.#socketClose);
      // A peer that half-closes is done sending: answer what it sent, then end our side too.
      socket.on('end', Connection.#socketEnd);
    }
    socket.resume();
  }

  get deadline(): number {
    return this.#deadline === 0 ? 0 : DEADLINE_EPOCH + this.#deadline * DEADLINE_UNIT_MS;
  }
  set deadline(ms: number) {
    this.#deadline = ms === 0 ? 0 : Math.max(1, Math.ceil((ms - DEADLINE_EPOCH) / DEADLINE_UNIT_MS));
  }

  #flag(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }

  // The state and the protocol version are bits of #flags too: a field each would be 16 B of every connection.
  get state(): State {
    return STATES[this.#flags >>> STATE_SHIFT]!;
  }
  set state(state: State) {
    this.#flags = (this.#flags & ((1 << STATE_SHIFT) - 1)) | (STATES.indexOf(state) << STATE_SHIFT);
  }

  get protocolVersion(): ProtocolVersion {
    return (this.#flags & V5) !== 0 ? 5 : 4;
  }
  set protocolVersion(version: ProtocolVersion) {
    this.#flag(V5, version === 5);
  }

  /** Set while routing this connection's PUBLISH when a subscriber's backlog should hold it back (core.publish). */
  get holdFor(): Session | undefined {
    return this.#uncommon?.holdFor;
  }
  set holdFor(session: Session | undefined) {
    if (session !== undefined || this.#uncommon !== undefined) this.#more.holdFor = session;
  }

  /** The will is in the store as armed (deadline 0): a crash before this connection ends publishes it at start-up. */
  get willStored(): boolean {
    return (this.#flags & WILL_STORED) !== 0;
  }
  set willStored(on: boolean) {
    this.#flag(WILL_STORED, on);
  }

  /** Set by CONNECT processing: the connection limit was reached when this socket arrived. */
  get overLimit(): boolean {
    return (this.#flags & OVER_LIMIT) !== 0;
  }

  /** The hold waits for `holdFor`'s socket output to drain rather than for its queue. */
  get holdOnOutput(): boolean {
    return (this.#flags & HOLD_ON_OUTPUT) !== 0;
  }
  set holdOnOutput(on: boolean) {
    this.#flag(HOLD_ON_OUTPUT, on);
  }

  /** Not read while a subscriber's backlog holds it back (core.holdUntilDrained): its acknowledgements wait too. */
  get held(): boolean {
    return (this.#flags & HELD) !== 0;
  }
  set held(on: boolean) {
    this.#flag(HELD, on);
  }

  get #flushScheduled(): boolean {
    return (this.#flags & FLUSH_SCHEDULED) !== 0;
  }
  set #flushScheduled(on: boolean) {
    this.#flag(FLUSH_SCHEDULED, on);
  }

  /** An asynchronous handler step (authentication) is running: later packets wait. */
  get #busy(): boolean {
    return (this.#flags & BUSY) !== 0;
  }
  set #busy(on: boolean) {
    this.#flag(BUSY, on);
  }

  /** Reading stopped by the core: until the turn's output is flushed (#yieldTurn) or a subscriber drains (hold). */
  get #yielded(): boolean {
    return (this.#flags & YIELDED) !== 0;
  }
  set #yielded(on: boolean) {
    this.#flag(YIELDED, on);
  }

  /** Set while ackAfter queues an acknowledgement whose commit has resolved. */
  get #durableAck(): boolean {
    return (this.#flags & DURABLE_ACK) !== 0;
  }
  set #durableAck(on: boolean) {
    this.#flag(DURABLE_ACK, on);
  }

  /**
   * The queued bytes hold something that must not leave before the store's pending writes are durable (a delivery,
   * a PUBREL, a CONNACK or SUBACK over state just written). Bytes holding only acknowledgements whose own commit
   * resolved leave at once, without waiting for the batch syncing now: a publisher's PUBACK would otherwise wait
   * one more fdatasync than it needs to.
   */
  get #gated(): boolean {
    return (this.#flags & GATED) !== 0;
  }
  set #gated(on: boolean) {
    this.#flag(GATED, on);
  }

  /**
   * The queued bytes hold a packet that tells the client something only records in the store make true after a
   * crash: a QoS 2 PUBLISH or a PUBREL (a second delivery after a restart otherwise), a CONNACK over an armed will.
   * When the commit they wait for fails, they wait for the store's next successful write; other gated bytes (a
   * PINGRESP, a CONNACK without a will) leave.
   */
  get outputNeedsLog(): boolean {
    return (this.#flags & NEEDS_LOG) !== 0;
  }

  /** Marks what was queued last as depending on the store's records (see outputNeedsLog). */
  needsLog(): void {
    this.#flag(NEEDS_LOG, true);
  }

  /** The peer half-closed: once what it sent is answered, the connection closes. */
  get #peerEnded(): boolean {
    return (this.#flags & PEER_ENDED) !== 0;
  }
  set #peerEnded(on: boolean) {
    this.#flag(PEER_ENDED, on);
  }

  get #more(): Uncommon {
    this.#uncommon ??= new Uncommon();
    return this.#uncommon;
  }

  /** When its session was first seen backlogged after its last acknowledgement (see core's #backlogged); 0: never. */
  get backlogSince(): number {
    return this.#uncommon?.backlogSince ?? 0;
  }
  set backlogSince(since: number) {
    this.#more.backlogSince = since;
  }

  get auth(): AuthExchange | undefined {
    return this.#uncommon?.auth;
  }
  set auth(exchange: AuthExchange | undefined) {
    if (exchange !== undefined || this.#uncommon !== undefined) this.#more.auth = exchange;
  }

  get heldRouting(): Promise<void> | undefined {
    return this.#uncommon?.heldRouting;
  }
  set heldRouting(routing: Promise<void> | undefined) {
    if (routing !== undefined || this.#uncommon !== undefined) this.#more.heldRouting = routing;
  }

  get authMethod(): string | undefined {
    return this.#uncommon?.authMethod;
  }
  set authMethod(method: string | undefined) {
    if (method !== undefined || this.#uncommon !== undefined) this.#more.authMethod = method;
  }

  static #socketData = function (this: ConnectionSocket, chunk: Uint8Array): void {
    this[CONNECTION].#onData(chunk);
  };
  static #socketError = function (this: ConnectionSocket, error: Error): void {
    this[CONNECTION].#onError(error);
  };
  static #socketClose = function (this: ConnectionSocket): void {
    this[CONNECTION].#onClose();
  };
  static #socketEnd = function (this: ConnectionSocket): void {
    this[CONNECTION].#onEnd();
  };
  static #handlers: StreamHandlers = {
    data: Connection.#socketData,
    end: Connection.#socketEnd,
    error: Connection.#socketError,
    close: Connection.#socketClose,
  };

  get connected(): boolean {
    return this.state === 'connected';
  }

  /**
   * The peer's address, kept in the identity. A plain TCP socket is asked for it on first use only: most
   * connections are never asked (no hook, will, event or log that shows it), and asking costs a getpeername syscall
   * per connect and an object and a string per idle connection. A socket that is already closed can no longer
   * tell, so `keepRemoteAddress` is called while it is open wherever the identity will be seen later.
   */
  get remoteAddress(): string | undefined {
    this.keepRemoteAddress();
    return this.identity.remoteAddress;
  }

  keepRemoteAddress(): void {
    this.identity.remoteAddress ??= (this.socket as { remoteAddress?: string }).remoteAddress;
  }

  #onData(chunk: Uint8Array): void {
    this.core.stats.bytesIn += chunk.length;
    if (this.state === 'closing' || this.state === 'closed') return;
    const core = this.core;
    core.beforeRead();
    try {
      const packets = core.turnPackets;
      this.#decoder ??= this.#takeDecoder();
      this.#decoder.push(chunk);
      this.#drain();
      // Keepalive counts packets, not bytes (as Mosquitto): a read that completed none, left part of one waiting and
      // was small keeps no deadline, so a packet trickled in a byte at a time is cut off. A large read (a big
      // PUBLISH arriving over a slow link) still counts.
      if (
        this.keepaliveMs > 0 &&
        (this.#decoder === undefined ||
          core.turnPackets !== packets ||
          chunk.length >= KEEPALIVE_READ_BYTES ||
          this.#yielded ||
          this.#busy)
      ) {
        this.#renewKeepalive();
      }
    } finally {
      core.afterRead();
    }
  }

  #drain(): void {
    const decoder = this.#decoder;
    if (decoder === undefined) return;
    while (!this.#busy && (this.state === 'awaiting-connect' || this.state === 'authenticating' || this.connected)) {
      let packet: Packet | undefined;
      try {
        packet = decoder.next();
      } catch (error) {
        this.#decodeFailed(error);
        break;
      }
      if (packet === undefined) {
        // All decoded; a partial packet keeps its decoder until the rest arrives.
        if (decoder.buffered === 0) this.#giveDecoder(decoder);
        return;
      }
      let result: undefined | Promise<void>;
      try {
        result = dispatch(this, packet);
      } catch (error) {
        this.#handlerFailed(error);
        break;
      }
      if (result === undefined) {
        const holdFor = this.holdFor;
        if (holdFor !== undefined) {
          const onOutput = this.holdOnOutput;
          this.holdFor = undefined;
          this.holdOnOutput = false;
          if (this.#reading()) {
            this.#yielded = true;
            this.socket.pause();
            this.core.holdUntilDrained(this, holdFor, onOutput);
            return;
          }
        }
        if ((this.core.turnBytes > TURN_OUTPUT_BYTES || ++this.core.turnPackets > TURN_PACKETS) && this.#reading()) {
          this.#yieldTurn();
          return;
        }
        continue;
      }
      // An async step (authentication): hold further packets until it settles, in order.
      this.#busy = true;
      this.socket.pause();
      result.then(
        () => {
          this.#busy = false;
          if (this.state === 'closing' || this.state === 'closed' || (this.#flags & OUTPUT_FULL) !== 0) return;
          this.socket.resume();
          this.#drain();
          if (this.#peerEnded) this.close();
        },
        (error: unknown) => {
          this.#busy = false;
          this.#handlerFailed(error);
        },
      );
      return;
    }
    // Closing (also for a bad packet or a failed handler): what the decoder still holds is never read.
    if (!this.#busy) this.#giveDecoder(decoder);
  }

  /** What a decoder of this connection's stream knows: the protocol version once CONNECT was seen, else undefined. */
  #streamVersion(): ProtocolVersion | undefined {
    return this.state === 'awaiting-connect' ? undefined : this.protocolVersion;
  }

  /** A decoder for this read, in the state of this connection's stream. */
  #takeDecoder(): Decoder {
    const version = this.#streamVersion();
    return takeDecoder(version, version !== undefined, this.core.limits.maxPacketSize);
  }

  /**
   * Back to the pool, unless the connection still reads and its fields would not give the decoder's state back to
   * #takeDecoder (then it keeps this one): what a decoder learned of a stream is neither lost nor handed to another.
   */
  #giveDecoder(decoder: Decoder): void {
    if (this.#reading()) {
      const version = this.#streamVersion();
      if (decoder.connectSeen !== (version !== undefined) || decoder.protocolVersion !== version) return;
    }
    this.#decoder = undefined;
    giveDecoder(decoder);
  }

  /** The bytes of the packet being dispatched (Decoder.lastFrame): asked during its handler. */
  lastFrame(): Uint8Array {
    return this.#decoder!.lastFrame();
  }

  /** Whether the packet being dispatched is all of its read's memory (Decoder.frameOwnsMemory). */
  frameOwnsMemory(): boolean {
    return this.#decoder!.frameOwnsMemory();
  }

  /** Still taking packets (a function, so TypeScript does not narrow `state` across calls that change it). */
  #reading(): boolean {
    return this.state === 'awaiting-connect' || this.state === 'authenticating' || this.state === 'connected';
  }

  /**
   * This turn has queued as much output as one flush should carry: stop reading until it is written. What the decoder
   * holds waits, the socket stops being read, and a publisher faster than its subscribers meets TCP backpressure
   * instead of the broker buffering (and then dropping) without bound.
   */
  #yieldTurn(): void {
    this.#yielded = true;
    this.socket.pause();
    this.core.resumeAfterFlush(this);
  }

  /** Called by the core once the turn's output is flushed. */
  resumeReading(): void {
    this.#yielded = false;
    if (!this.#reading() || (this.#flags & OUTPUT_FULL) !== 0) return;
    this.#drain();
    if (this.#yielded || this.#busy || !this.#reading()) return;
    this.socket.resume();
    if (this.#peerEnded) this.close();
  }

  #decodeFailed(error: unknown): void {
    this.core.stats.protocolErrors++;
    if (error instanceof UnsupportedProtocolError) {
      this.core.logger.info(
        { code: 'BROKER_ERR_UNSUPPORTED_PROTOCOL', level: error.protocolLevel, remote: this.remoteAddress },
        'refused an unsupported protocol level',
      );
      // Levels below 5 understand the 3.1.1 return code; later ones get the 5.0 reason code.
      if (error.protocolLevel < 5) this.#push(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
      else this.#push(encode({ type: 'connack', sessionPresent: false, reasonCode: 0x84 }, 5));
      this.close();
      return;
    }
    const reasonCode = error instanceof MqttError ? (error.reasonCode ?? 0x81) : 0x81;
    const logCode: BrokerErrorCode = reasonCode === 0x81 ? 'BROKER_ERR_MALFORMED_PACKET' : 'BROKER_ERR_PROTOCOL_ERROR';
    this.core.logger.info(
      { code: logCode, clientId: this.identity.clientId, reason: (error as Error).message },
      'closing a connection that sent a bad packet',
    );
    this.close(reasonCode, reasonText(error));
  }

  #handlerFailed(error: unknown): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (error instanceof MqttError && error.reasonCode !== undefined) {
      this.core.stats.protocolErrors++;
      this.core.logger.info(
        { code: 'BROKER_ERR_PROTOCOL_ERROR', clientId: this.identity.clientId, reason: error.message },
        'closing a connection that broke the protocol',
      );
      this.close(error.reasonCode, reasonText(error));
      return;
    }
    this.core.logger.error({ err: error, clientId: this.identity.clientId }, 'packet handler failed');
    this.close(0x83);
  }

  #onEnd(): void {
    this.#peerEnded = true;
    // The socket still knows its peer now, not once it has closed (clientDisconnected shows the address).
    if (this.session !== undefined && this.core.events.listenerCount('clientDisconnected') > 0) {
      this.keepRemoteAddress();
    }
    if (!this.#busy && !this.#yielded) this.close();
  }

  #onError(error: Error): void {
    this.core.logger.debug({ code: 'BROKER_ERR_SOCKET', err: error, clientId: this.identity.clientId }, 'socket error');
  }

  #onClose(): void {
    if (this.state === 'closed') return;
    const wasConnected = this.session !== undefined;
    this.state = 'closed';
    this.core.ticker.delete(this);
    this.#uncommon?.sendWatch?.disarm();
    this.core.connections.delete(this);
    this.core.stats.connectionsCurrent--;
    // One closed holding part of a packet, or for a bad one, gives its decoder back too (a handler still awaiting
    // keeps it: it may ask for the frame it is handling).
    const decoder = this.#decoder;
    if (decoder !== undefined && !this.#busy) this.#giveDecoder(decoder);
    if (wasConnected) this.#release();
  }

  /** Hands the session back (offline, or ended) the moment the connection stops being usable. */
  #release(): void {
    const session = this.session;
    if (session === undefined) return;
    this.session = undefined;
    this.core.detach(this, session, this.will);
    this.will = undefined;
    const events = this.core.events;
    if (events.listenerCount('clientDisconnected') > 0) {
      this.keepRemoteAddress();
      events.emit('clientDisconnected', { ...this.identity, reason: this.#closeReason });
    }
  }

  get #closeReason(): string {
    return this.#uncommon?.closeReason ?? 'connection lost';
  }
  set #closeReason(reason: string) {
    this.#more.closeReason = reason;
  }

  // ---- Timed ----

  expire(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.state === 'connected') {
      this.core.logger.info(
        { code: 'BROKER_ERR_KEEPALIVE_TIMEOUT', clientId: this.identity.clientId },
        'keepalive timeout',
      );
      this.#closeReason = 'keepalive timeout';
      this.close(0x8d, 'keepalive timeout');
    } else {
      this.core.logger.info({ code: 'BROKER_ERR_CONNECT_TIMEOUT', remote: this.remoteAddress }, 'no CONNECT in time');
      this.close(this.state === 'authenticating' ? 0x87 : undefined);
    }
  }

  /** Starts keepalive supervision after CONNACK. */
  startKeepalive(seconds: number): void {
    this.keepaliveMs = seconds * 1000;
    if (seconds > 0) {
      this.#renewKeepalive();
      this.core.ticker.add(this);
    } else {
      this.deadline = 0;
      this.core.ticker.delete(this);
    }
  }

  /** The keepalive deadline from now: one and a half keepalive periods [MQTT-3.1.2-22]. */
  #renewKeepalive(): void {
    this.deadline = Date.now() + this.keepaliveMs * 1.5;
  }

  /** Counts one inbound PUBLISH against the rate limit; false when over it. */
  countPublish(now: number): boolean {
    const max = this.core.limits.maxPublishRate;
    if (max <= 0) return true;
    const rate = this.#more;
    if (now - rate.rateWindowStart >= 1000) {
      rate.rateWindowStart = now;
      rate.rateCount = 0;
    }
    return ++rate.rateCount <= max;
  }

  // ---- output ----

  /** Encodes and queues a control packet. */
  send(packet: Packet): void {
    this.#push(encode(packet, this.protocolVersion));
  }

  /**
   * Queues a successful acknowledgement without properties (PUBACK 0x40, PUBREC 0x50, PUBCOMP 0x70): 4 bytes in
   * both versions (5.0 omits reason code 0 with no properties), so the generic encoder is skipped on the hot path.
   */
  sendAck(typeByte: 0x40 | 0x50 | 0x70, packetId: number): void {
    const bytes = Buffer.allocUnsafe(4);
    bytes[0] = typeByte;
    bytes[1] = 2;
    bytes[2] = packetId >>> 8;
    bytes[3] = packetId & 0xff;
    this.#push(bytes);
  }

  /**
   * Queues a plain acknowledgement (sendAck) at once when nothing makes it wait: no commit for it and none queued
   * before it, as ackAfter would, without the two closures a caller builds for it (per publish, at every rate).
   * False, doing nothing, when it must wait: the caller then goes through ackAfter.
   */
  ackAtOnce(commit: Promise<void> | undefined, typeByte: 0x40 | 0x50, packetId: number): boolean {
    if (commit !== undefined || (this.#uncommon !== undefined && this.#uncommon.acksWaiting !== 0)) return false;
    this.#durableAck = true;
    try {
      this.sendAck(typeByte, packetId);
    } finally {
      this.#durableAck = false;
    }
    return true;
  }

  /**
   * Sends an acknowledgement once `commit` (the store's) has made what it acknowledges durable; `failed` runs
   * instead if the store could not. Acknowledgements leave in the order their packets arrived (MQTT-4.6.0-2), so one
   * that needs no commit still waits behind one that does. Consecutive acknowledgements waiting on the same commit
   * (every publish of one batch) share one step of the chain instead of three promises each.
   */
  ackAfter(commit: Promise<void> | undefined, send: () => void, failed: (error: unknown) => void): void {
    if (commit === undefined && (this.#uncommon === undefined || this.#uncommon.acksWaiting === 0)) {
      this.#sendDurable(send);
      return;
    }
    const acks = this.#more;
    acks.acksWaiting++;
    const tail = acks.ackTail;
    if (tail !== undefined && !tail.started && tail.commit === commit) {
      tail.sends.push(send);
      tail.fails.push(failed);
      return;
    }
    const group: AckGroup = { commit, sends: [send], fails: [failed], started: false };
    acks.ackTail = group;
    const run = (error: unknown, ok: boolean): void => {
      group.started = true;
      if (acks.ackTail === group) acks.ackTail = undefined;
      for (let i = 0; i < group.sends.length; i++) {
        // One failing callback must not keep the others of the group from running.
        // A failure answer (0x97, SUBACK 0x80...) promises nothing the store must hold: it need not wait either.
        try {
          if (ok) this.#sendDurable(group.sends[i]!);
          else this.#sendDurable(() => group.fails[i]!(error));
        } catch {}
      }
      acks.acksWaiting -= group.sends.length;
      if (acks.acksWaiting === 0) acks.ackChain = undefined;
    };
    // A step never rejects (run handles the store's error), so the chain cannot stall on a rejection.
    acks.ackChain = (acks.ackChain ?? Promise.resolve())
      .then(() => commit)
      .then(
        () => run(undefined, true),
        (error: unknown) => run(error, false),
      );
  }

  /** What it acknowledges is durable by the time it is queued: it need not wait for later batches (#push). */
  #sendDurable(send: () => void): void {
    this.#durableAck = true;
    try {
      send();
    } finally {
      this.#durableAck = false;
    }
  }

  /** Queues an accepting CONNACK of 3.1.1 (5.0 carries properties: `send`, or `sendEncoded` with shared bytes). */
  sendConnack311(sessionPresent: boolean): void {
    this.#push(sessionPresent ? CONNACK_311_PRESENT : CONNACK_311_NEW);
  }

  /** Queues an encoded control packet. The bytes may be shared with other connections: nothing changes them. */
  sendEncoded(bytes: Uint8Array): void {
    this.#push(bytes);
  }

  get outputGated(): boolean {
    const uncommon = this.#uncommon;
    return this.#gated || (uncommon !== undefined && (uncommon.deferred > 0 || uncommon.stalled !== undefined));
  }

  /**
   * `gate` false: these bytes need not wait for the store (a QoS 0/1 PUBLISH: a crash taking its message back means
   * at most a second delivery, which QoS 1 allows; see docs/durable-store.md). They still wait behind gated bytes
   * queued before them.
   */
  #push(bytes: Uint8Array, gate = true): void {
    if (this.state === 'closed') return;
    if (gate && !this.#durableAck) this.#gated = true;
    if (this.#pending === undefined) this.#pending = bytes;
    else if (this.#pendingMore === undefined) this.#pendingMore = [bytes];
    else this.#pendingMore.push(bytes);
    this.#pendingBytes += bytes.length;
    this.core.turnBytes += bytes.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.core.scheduleFlush(this);
    }
  }

  flush(): void {
    this.#flushScheduled = false;
    this.#gated = false;
    this.#flag(NEEDS_LOG, false);
    if (this.#pending === undefined || this.state === 'closed') return;
    const stalled = this.#uncommon?.stalled;
    if (stalled !== undefined) {
      // Behind runs waiting for the store (close(), destroy()): they go together or not at all.
      stalled.push(this.#takeQueued());
      return;
    }
    const bytes = this.#pendingBytes;
    this.core.stats.bytesOut += bytes;
    this.socket.write(this.#takeQueued());
    this.#afterWrite(bytes);
  }

  /** After a write: output the kernel did not take starts the send timeout's watch, and too much of it a pause. */
  #afterWrite(bytes: number): void {
    const left = this.socket.writableLength;
    const watch = this.#uncommon?.sendWatch;
    if (watch?.armed === true) watch.written += bytes;
    // A TLS or WebSocket stream reports its writes done later even when the kernel took every byte at once: only
    // bytes left in the TCP connection's own queue show a backlog there.
    else if (left > 0 && (this.tcpWriteQueue ?? left) > 0) this.#watchSend();
    if (left > OUTPUT_PAUSE_BYTES) this.#pauseForOutput();
  }

  #watchSend(): void {
    const timeoutMs = this.core.limits.sendTimeoutMs;
    if (timeoutMs <= 0) return;
    const uncommon = this.#more;
    uncommon.sendWatch ??= new SendWatch(this, this.core.ticker, timeoutMs);
    uncommon.sendWatch.arm(this.outputLeft, Date.now());
  }

  // ---- SendWatched ----

  get outputLeft(): number {
    return this.socket.writeQueueSize ?? this.socket.writableLength;
  }

  get tcpWriteQueue(): number | undefined {
    return tcpWriteQueueOf(this.socket);
  }

  get sending(): boolean {
    return this.state === 'connected';
  }

  sendTimedOut(left: number, timeoutMs: number): void {
    this.core.logger.warn(
      {
        code: 'BROKER_ERR_SEND_TIMEOUT',
        clientId: this.identity.clientId,
        pendingBytes: left,
        sendTimeoutMs: timeoutMs,
      },
      'output made no progress for send_timeout: closed',
    );
    this.core.stats.sendTimeouts++;
    this.#closeReason = 'send timeout';
    // Nothing more reaches this client (not even a DISCONNECT): its session is handed back now (messages routed from
    // here on queue there), its will published, and the socket closed without writing what is pending.
    this.state = 'closing';
    this.#release();
    this.socket.destroy();
  }

  /**
   * The client does not take what it is sent (its own acknowledgements, deliveries freed by acknowledgements it sends
   * blindly): stop reading it until the output drains to OUTPUT_RESUME_BYTES, so what it sends cannot make the broker
   * hold output for it without bound (it waits in TCP instead). Checked once per flush, not per packet; a client
   * that stays this way stops being read, and its keepalive ends it.
   */
  #pauseForOutput(): void {
    if ((this.#flags & OUTPUT_FULL) !== 0 || !this.#reading()) return;
    this.#flag(OUTPUT_FULL, true);
    this.#more.outputLeft = this.socket.writableLength;
    this.socket.pause();
    this.core.resumeWhenWritten(this);
  }

  /** Asked by the core while paused for output: true once it reads again (or is closing and needs no more). */
  outputWritten(): boolean {
    if (!this.#reading()) return true;
    const left = this.socket.writableLength;
    if (left > OUTPUT_RESUME_BYTES) {
      // A client on a slow line that does take its output is alive: its PINGREQs and acks wait unread behind the
      // pause, so its keepalive runs on from the progress of its output instead.
      const uncommon = this.#more;
      if (left < uncommon.outputLeft && this.keepaliveMs > 0) this.#renewKeepalive();
      uncommon.outputLeft = left;
      return false;
    }
    this.#flag(OUTPUT_FULL, false);
    // A turn's flush or a hold's release resumes it when those end; an async step when it settles.
    if (!this.#yielded && !this.held && !this.#busy) this.resumeReading();
    return true;
  }

  /** Takes the queued bytes out for a write that must wait (see BrokerCore: output waits for the store). */
  takePending(): Uint8Array | undefined {
    this.#flushScheduled = false;
    this.#gated = false;
    this.#flag(NEEDS_LOG, false);
    if (this.#pending === undefined || this.state === 'closed') return undefined;
    this.#more.deferred++;
    return this.#takeQueued();
  }

  /** A run taken by takePending whose commit failed and which needs the log: it waits for releaseStalled. */
  stall(bytes: Uint8Array): void {
    const uncommon = this.#more;
    uncommon.deferred--;
    uncommon.stalled ??= [];
    uncommon.stalled.push(bytes);
  }

  /** The store wrote what the stalled runs wait for: they go out, in order. */
  releaseStalled(): void {
    const stalled = this.#uncommon?.stalled;
    if (stalled === undefined) return;
    this.#uncommon!.stalled = undefined;
    for (const bytes of stalled) this.#writeOut(bytes);
  }

  /**
   * The store can write nothing more before a restart: what the stalled runs say would not survive one. They are
   * dropped with the connection (the client reconnects; a restart resends from the log what it holds).
   */
  dropStalled(): void {
    if (this.#uncommon?.stalled === undefined) return;
    this.destroy();
  }

  /** The queued runs as one, the queue emptied. */
  #takeQueued(): Uint8Array {
    const first = this.#pending!;
    const more = this.#pendingMore;
    let bytes = first;
    if (more !== undefined) {
      // Copied in place: unshift(first) + Buffer.concat cost a call into V8's C++ (Array.prototype.unshift) per flush.
      const joined = Buffer.allocUnsafe(this.#pendingBytes);
      joined.set(first, 0);
      let at = first.length;
      for (const run of more) {
        joined.set(run, at);
        at += run.length;
      }
      bytes = joined;
    }
    this.#pending = undefined;
    this.#pendingMore = undefined;
    this.#pendingBytes = 0;
    return bytes;
  }

  /** Writes bytes taken by takePending, unless the socket is gone or ending (they are redelivered from the store). */
  writeTaken(bytes: Uint8Array): void {
    const uncommon = this.#more;
    uncommon.deferred--;
    if (uncommon.stalled !== undefined) {
      uncommon.stalled.push(bytes);
      return;
    }
    this.#writeOut(bytes);
  }

  #writeOut(bytes: Uint8Array): void {
    if (this.state !== 'connected' && this.state !== 'awaiting-connect' && this.state !== 'authenticating') return;
    this.core.stats.bytesOut += bytes.length;
    this.socket.write(bytes);
    this.#afterWrite(bytes.length);
  }

  congested(): boolean {
    return this.socket.writableLength + this.#pendingBytes > CONGESTION_BYTES;
  }

  /**
   * Output above OUTPUT_HIGH_WATER, and not stuck: it drained to OUTPUT_LOW_WATER within `stuckMs` of first being
   * seen above. A reader that stopped reading holds nobody back for longer than that.
   */
  outputBacklogged(now: number, stuckMs: number): boolean {
    const bytes = this.socket.writableLength + this.#pendingBytes;
    if (bytes <= OUTPUT_LOW_WATER) {
      if (this.#uncommon !== undefined) this.#uncommon.outputOverSince = 0;
      return false;
    }
    if (bytes < OUTPUT_HIGH_WATER) return false;
    const more = this.#more;
    if (more.outputOverSince === 0) more.outputOverSince = now;
    return now - more.outputOverSince < stuckMs;
  }

  /** Output down to OUTPUT_LOW_WATER (or the connection is gone): publishers held for it read again. */
  outputDrained(): boolean {
    if (this.state !== 'connected') return true;
    if (this.socket.writableLength + this.#pendingBytes > OUTPUT_LOW_WATER) return false;
    if (this.#uncommon !== undefined) this.#uncommon.outputOverSince = 0;
    return true;
  }

  sendPublish(delivery: Delivery, templates: PublishTemplates | undefined, packetId: number, dup: boolean): boolean {
    if (!this.connected) return false;
    const qos = delivery.qos;
    const useAlias = this.clientTopicAliasMaximum > 0;
    if (templates !== undefined && !dup && !useAlias) {
      const form = templates.get(this.protocolVersion, qos, delivery.retain, delivery.subscriptionIds);
      if (form.bytes.length > this.clientMaximumPacketSize) return this.#tooLarge();
      if (form.idOffset < 0) {
        this.#push(form.bytes, qos === 2);
      } else {
        // Same bytes for every subscriber but the packet id: copy and patch.
        const bytes = Buffer.allocUnsafe(form.bytes.length);
        bytes.set(form.bytes);
        bytes[form.idOffset] = packetId >>> 8;
        bytes[form.idOffset + 1] = packetId & 0xff;
        this.#push(bytes, qos === 2);
      }
      if (qos === 2) this.#flag(NEEDS_LOG, true);
      this.core.stats.messagesOut[qos]++;
      return true;
    }
    const packet = publishPacket(
      delivery.message,
      this.protocolVersion,
      qos,
      delivery.retain,
      delivery.subscriptionIds,
      Date.now(),
      packetId,
      dup,
    );
    let newAlias = 0;
    if (useAlias) newAlias = this.#applyAlias(packet);
    const bytes = encode(packet, this.protocolVersion);
    if (bytes.length > this.clientMaximumPacketSize) return this.#tooLarge();
    if (newAlias > 0) {
      const uncommon = this.#more;
      uncommon.outboundAliases ??= new Map();
      uncommon.outboundAliases.set(delivery.message.topic, newAlias);
    }
    this.#push(bytes, qos === 2);
    if (qos === 2) this.#flag(NEEDS_LOG, true);
    this.core.stats.messagesOut[qos]++;
    return true;
  }

  /** Uses or assigns a topic alias for a repeated topic; returns a newly assigned alias (to commit once sent). */
  #applyAlias(packet: PublishPacket): number {
    const aliases = this.#uncommon?.outboundAliases;
    const known = aliases?.get(packet.topic);
    if (known !== undefined) {
      packet.properties = { ...packet.properties, topicAlias: known };
      packet.topic = '';
      return 0;
    }
    const next = (aliases?.size ?? 0) + 1;
    if (next > this.clientTopicAliasMaximum) return 0;
    packet.properties = { ...packet.properties, topicAlias: next };
    return next;
  }

  #tooLarge(): false {
    this.core.stats.droppedTooLarge++;
    return false;
  }

  sendPubrel(packetId: number): void {
    this.send({ type: 'pubrel', packetId });
    this.#flag(NEEDS_LOG, true);
  }

  /**
   * Ends the connection: a 5.0 DISCONNECT with `reasonCode` first if one is given and CONNACK went out, then the
   * queued bytes, then FIN. The socket is destroyed if the peer does not let the bytes drain.
   */
  close(reasonCode?: number, reasonString?: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (reasonCode !== undefined && this.protocolVersion === 5 && this.connected) {
      // The reason string is optional: left out rather than exceed the client's Maximum Packet Size [MQTT-3.14.2-3].
      let bytes = encode({ type: 'disconnect', reasonCode, properties: { reasonString } }, 5);
      if (bytes.length > this.clientMaximumPacketSize) bytes = encode({ type: 'disconnect', reasonCode }, 5);
      this.#push(bytes);
    }
    if (reasonCode !== undefined && reasonCode !== 0 && this.#closeReason === 'connection lost') {
      this.#closeReason = `server disconnected (0x${reasonCode.toString(16)})`;
    }
    this.state = 'closing';
    // Messages routed from now on must queue in the session, not go to a socket that is ending.
    this.#release();
    this.flush();
    this.#endSocket();
  }

  /** FIN after the queued bytes; destroyed if the peer does not let them drain in time. */
  #endSocket(): void {
    this.socket.end();
    // Keep reading (and discarding, see #onData) so the peer's FIN is seen and the socket can finish closing.
    this.socket.resume();
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.socket.once('close', () => clearTimeout(timer));
  }

  /**
   * Ends the connection after the client's DISCONNECT: the client sends nothing more, so once our last bytes are in
   * the kernel the socket is closed outright (the kernel still sends them, then FIN). That skips the half-close,
   * the wait for the peer's FIN and the grace timer, a good share of the cost of a short-lived connection. Only for
   * plain TCP: TLS and WebSocket streams still hold bytes of their own (close_notify, close frame) past this point.
   */
  closeAfterDisconnect(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.#release();
    this.flush();
    if (this.transport.protocol === 'mqtt' && this.socket.writableLength === 0) this.socket.destroy();
    else this.#endSocket();
  }

  /** Closes at once, without waiting for buffered bytes. */
  destroy(): void {
    if (this.state === 'closed') return;
    this.flush();
    this.socket.destroy();
  }

  /** Remembers the topic a client set for an inbound topic alias. */
  setInboundAlias(alias: number, topic: string): void {
    const uncommon = this.#more;
    uncommon.inboundAliases ??= new Map();
    uncommon.inboundAliases.set(alias, topic);
  }

  inboundAlias(alias: number): string | undefined {
    return this.#uncommon?.inboundAliases?.get(alias);
  }

  /** Another connection took over this client id: hand the session back, then DISCONNECT 0x8E (5.0) and close. */
  takenOver(): void {
    this.#closeReason = 'session taken over';
    this.core.logger.info(
      { code: 'BROKER_ERR_SESSION_TAKEN_OVER', clientId: this.identity.clientId },
      'session taken over by a new connection',
    );
    this.#release();
    this.close(0x8e);
  }

  /** The reason recorded for the disconnect event. */
  setCloseReason(reason: string): void {
    this.#closeReason = reason;
  }
}
