// The client end of an MQTT session as pure state: packets and a `now` (ms) go in, packets to send and events
// come out (rumqttc's state.rs is the model). No sockets, no timers, no promises: the client shell owns those,
// which is what lets a test drive every QoS path with a fake clock.
import { checkResponseTopic, encodedLength } from '../codec/encoder.js';
import { MqttError } from '../codec/errors.js';
import type {
  AckProperties,
  AuthPacket,
  AuthProperties,
  ConnackPacket,
  ConnectPacket,
  ConnectProperties,
  DisconnectPacket,
  DisconnectProperties,
  Packet,
  ProtocolVersion,
  PublishPacket,
  PublishProperties,
  QoS,
  SubackPacket,
  SubscribePacket,
  SubscribeProperties,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
  UnsubscribeProperties,
  Will,
} from '../codec/packets.js';
import { isPacketId } from '../codec/packets.js';
import { reasonName } from '../codec/reason-codes.js';
import { validateTopicFilter, validateTopicName } from '../topic/validate.js';
import { copyBytes } from './copy-bytes.js';
import { Fifo } from './fifo.js';
import { type InflightEntry, InflightTable } from './inflight-table.js';
import { incomingKey, type OutgoingRecord, outgoingKey, type StoredRecord } from './records.js';
import { type AliasChoice, IncomingTopicAliases, OutgoingTopicAliases } from './topic-alias.js';

/** The payload of a record in state 'pubrel' (storeOutgoing). */
const RELEASED_PAYLOAD = new Uint8Array(0);

export interface SessionOptions {
  protocolVersion: ProtocolVersion;
  clientId: string;
  /** Clean Session (3.1.1) / Clean Start (5.0). */
  clean: boolean;
  /** Seconds; 0 disables keepalive. */
  keepalive: number;
  username?: string;
  password?: Uint8Array;
  will?: Will;
  properties?: ConnectProperties;
  /** How long to wait for PINGRESP before giving up on the line; default: the keepalive interval. */
  pingTimeoutMs?: number;
  /** Our own cap on unacknowledged QoS 1/2 publishes, below the server's Receive Maximum. */
  maxInflight?: number;
  /** Messages waiting to be sent (offline or window full) before `dropPolicy` applies. */
  queueLimit?: number;
  /** Which message gives way when the queue is full; the dropped one fails with MQTT_ERR_QUEUE_FULL. */
  dropPolicy?: 'oldest' | 'newest';
  /**
   * Assign topic aliases to outgoing publishes when the server allows them (5.0). Default true. A `topicAlias`
   * the caller puts in a message's properties is honoured either way: it is bound in the same table (unbinding
   * the topic that held it), so automatic and caller-chosen aliases never disagree.
   */
  topicAliases?: boolean;
  /**
   * Incoming QoS 1/2 messages are acknowledged (PUBACK / PUBREC) only when `ack()` is called with the token their
   * `message` event carries. Acks still go out in arrival order ([MQTT-4.6.0-2], [MQTT-4.6.0-3]): an `ack()` for a
   * later message is held until every earlier one of the connection was acknowledged.
   */
  manualAck?: boolean;
  /**
   * `consumersBehind` is read for each incoming QoS 1/2 message without `manualAck`: true holds its PUBACK / PUBREC
   * until `ack()` is called with the token its `message` event then carries, as with `manualAck`; unlike it, a
   * resend of a held message (after a reconnect) is not delivered again: the held copy answers for it. The client
   * holds acks while a consumer is behind: the server's send window then stops its flow of QoS 1/2 messages. Acks
   * after a held one wait for it, in arrival order.
   */
  consumers?: { readonly consumersBehind: boolean };
  /**
   * Emit `store-put` / `store-delete` events (default true). False when the client keeps no store: its queue and
   * in-flight map are then the only copy, which outlives reconnects just the same, and a publish costs no record.
   */
  persist?: boolean;
  /**
   * With a full window and more messages waiting, let freed slots gather until a quarter of the window (at most 8)
   * is free, so one write carries several PUBLISHes instead of one per PUBACK read (default false). The caller
   * must call `releaseHeld` once `holding` has lasted a moment: a server with Nagle on sends its next PUBACKs only
   * after our TCP ACK, which rides on our next write. Holds that keep running out turn batching off for the
   * connection.
   */
  batchRefills?: boolean;
  /**
   * A QoS 1/2 message the server closed the line over this many connections in a row is given up: it fails with
   * MQTT_ERR_POISON_MESSAGE, leaving the store, so the messages behind it can go (see `judgeClose`). Default 5; 0
   * keeps such a message for ever, as MQTT.js and Paho do.
   */
  poisonStrikes?: number;
}

export interface OutgoingMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties?: PublishProperties;
  /**
   * The payload is the caller's, who may reuse it once publish() returns. The session copies what it keeps: a QoS
   * 1/2 message at once (it is sent again after a reconnect, and stored a turn later), a QoS 0 one when it has to
   * wait (offline, or queued behind a full window).
   */
  borrowed?: boolean;
}

export type SessionEvent =
  | { type: 'connected'; connack: ConnackPacket }
  | { type: 'refused'; connack: ConnackPacket }
  /** `ack` is set for QoS 1/2 with `manualAck` or a held ack (`consumers`): pass it to `ack()` once processed. */
  | { type: 'message'; message: PublishPacket; ack?: AckToken | undefined }
  /** `owner` is what was passed to `publish` for this message (absent when nothing was, e.g. restored ones). */
  | {
      type: 'published';
      seq: number;
      reasonCode: number;
      properties?: AckProperties | undefined;
      /** QoS 2 in 5.0: the PUBREC's reason code and properties, when it said more than a bare success. */
      pubrec?: PubrecAnswer | undefined;
      owner?: unknown;
      /** A QoS 0 message: done once written, nothing comes back for it. */
      handedOff?: true;
    }
  | { type: 'publish-failed'; seq: number; error: MqttError; owner?: unknown }
  | { type: 'suback'; packet: SubackPacket }
  | { type: 'unsuback'; packet: UnsubackPacket }
  | { type: 'auth'; packet: AuthPacket }
  | { type: 'server-disconnect'; packet: DisconnectPacket }
  /** The session wants the line closed (keepalive timeout, protocol error); any DISCONNECT is in `packets`. */
  | { type: 'close'; error: MqttError }
  /**
   * `durable`: when the change must be on disk. Absent: before the step's packets go. A QoS 2 record and an
   * incoming id are: a lost PUBREC state would send the message again after the server released it, a lost
   * incoming delete would drop the server's next message with that id as a duplicate.
   * 'after-send': soon (with the store's batch), but packets need not wait: a queued QoS 1 message, which is no
   * less safe sent before its record is on disk than after.
   * 'optional': a crash may lose it: it only makes a message go again, as at least once allows (a QoS 1 message's
   * packet id, the deletion of an outgoing message the server took; a QoS 2 message past PUBREC comes back as its
   * PUBREL). The deletion of a message the client gave up on (refused, expired, dropped) is strict.
   */
  | { type: 'store-put'; key: string; record: StoredRecord; durable?: 'after-send' | 'optional' }
  | { type: 'store-delete'; key: string; durable?: 'optional' };

/** An incoming QoS 1/2 message whose PUBACK / PUBREC has not gone out (manualAck, or held for a consumer). */
interface AwaitingAck {
  qos: 1 | 2;
  /** Acknowledged by the application (or never held), waiting behind an earlier one. */
  acked: boolean;
  /** A QoS 2 id already in `incomingQos2` and the store: its ack does not record it again. */
  recorded?: boolean;
  /**
   * The delivery whose token acknowledges it (held ones); for the resend of one held across a reconnect, the token
   * an earlier connection gave the copy the consumer holds.
   */
  serial?: number;
  /** Without manualAck, the message (as delivered): its resend after a reconnect is recognised by it. */
  message?: PublishPacket;
}

interface HeldBefore {
  consumed: boolean;
  message: PublishPacket;
  serial: number | undefined;
}

/** A resend (DUP) of `before`: same id, QoS, topic and payload. */
function sameMessage(before: HeldBefore, resend: PublishPacket): boolean {
  if (before.message.qos !== resend.qos || before.message.topic !== resend.topic) return false;
  const [a, b] = [before.message.payload, resend.payload];
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Identifies an incoming message awaiting its acknowledgement on one connection. */
export interface AckToken {
  readonly packetId: number;
  readonly qos: 1 | 2;
  /** The connection it arrived on: a token from an earlier connection acknowledges nothing (but see `serial`). */
  readonly connection: number;
  /**
   * Which delivery it belongs to: a message held for a consumer across a reconnect is acknowledged on the new
   * connection by the token of the copy the consumer holds, and by no other (its packet id may have been reused).
   */
  readonly serial: number;
}

export interface Step {
  packets: Packet[];
  events: SessionEvent[];
}

interface OutEntry extends InflightEntry {
  seq: number;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties: PublishProperties | undefined;
  state: 'queued' | 'publish' | 'pubrel';
  packetId: number | undefined;
  /** The store key, made once: every put and the delete reuse one string, whose hash V8 keeps. */
  key: string | undefined;
  /** The limits this entry was last checked against: unchanged limits need no second measuring at send time. */
  checked: ServerLimits | undefined;
  /** The caller's handle for this message (the client's pending promise), handed back in its outcome event. */
  owner: unknown;
  /** When its Message Expiry Interval runs out (epoch ms); 0 when it has none. */
  expiresAt: number;
  /** QoS 2: what a successful PUBREC said beyond a bare 0 (0x10 No matching subscribers, a reason string). */
  pubrec?: PubrecAnswer;
  /** The connection (number) it was last sent on, and when (session clock). */
  sentOn: number;
  sentAt: number;
  /** Connections in a row the server closed while this was the oldest message it had not acknowledged. */
  strikes: number;
}

/**
 * A client must not send a Subscription Identifier ([MQTT-3.3.4-6]; the server closes the line over it). A received
 * message carries its subscriptions' identifiers, so forwarding its `properties` would: they are left out instead.
 */
function withoutSubscriptionIds(properties: PublishProperties | undefined): PublishProperties | undefined {
  if (properties?.subscriptionIdentifiers === undefined) return properties;
  const { subscriptionIdentifiers: _, ...rest } = properties;
  return Object.keys(rest).length === 0 ? undefined : rest;
}

/** A successful PUBREC's reason code and properties, reported with the PUBCOMP's outcome. */
export interface PubrecAnswer {
  reasonCode: number;
  properties?: AckProperties;
}

export type SessionState = 'disconnected' | 'connecting' | 'connected';

/** Server limits learned from CONNACK (defaults per MQTT 5.0 when absent). */
export interface ServerLimits {
  receiveMaximum: number;
  topicAliasMaximum: number;
  maximumPacketSize: number;
  maximumQoS: QoS;
  retainAvailable: boolean;
  keepalive: number;
}

/**
 * A step starts with shared empty arrays and gets its own on the first packet or event, as a one-element literal:
 * most steps carry one event (a message in, a publish settled), and pushing onto an empty `[]` makes V8 allocate
 * room for 16. Frozen, so that a push past addPacket/addEvent throws instead of leaking into every other step.
 */
const NO_PACKETS = Object.freeze([]) as unknown as Packet[];
const NO_EVENTS = Object.freeze([]) as unknown as SessionEvent[];

/** A class, not a literal: `{ packets: [], events: [] }` nests array literals, which V8 builds by copying a boilerplate. */
class StepRecord implements Step {
  packets: Packet[] = NO_PACKETS;
  events: SessionEvent[] = NO_EVENTS;
}

function addPacket(step: Step, packet: Packet): void {
  if (step.packets === NO_PACKETS) step.packets = [packet];
  else step.packets.push(packet);
}

function addEvent(step: Step, event: SessionEvent): void {
  if (step.events === NO_EVENTS) step.events = [event];
  else step.events.push(event);
}

function newStep(): Step {
  return new StepRecord();
}

/** Strikes that fail a poison message by default (`poisonStrikes`); with the default backoff, ~30 s of tries. */
const DEFAULT_POISON_STRIKES = 5;
/** A server that refuses a message closes the line as it reads it; a close later than this blames no message. */
const POISON_WINDOW_MS = 5000;
/**
 * DISCONNECT reason codes that can be a message's fault: malformed, protocol error, implementation specific, not
 * authorized, topic name invalid, packet too large, payload format invalid, retain / QoS not supported.
 */
const MESSAGE_FAULTS = new Set([0x81, 0x82, 0x83, 0x87, 0x90, 0x95, 0x99, 0x9a, 0x9b]);

/** PUBCOMP 0x92: the server no longer knew the packet id (it lost the session after PUBREC). */
const PACKET_ID_NOT_FOUND = 0x92;

/** The outcome event of `entry`, carrying its owner when it has one. */
type PublishedEvent = Extract<SessionEvent, { type: 'published' }>;

function publishedEvent(entry: OutEntry, reasonCode: number): PublishedEvent {
  const event: PublishedEvent = { type: 'published', seq: entry.seq, reasonCode };
  if (entry.owner !== undefined) event.owner = entry.owner;
  return event;
}

function failedEvent(entry: OutEntry, error: MqttError): SessionEvent {
  const event: SessionEvent = { type: 'publish-failed', seq: entry.seq, error };
  if (entry.owner !== undefined) event.owner = entry.owner;
  return event;
}

export class ClientSession {
  readonly version: ProtocolVersion;
  state: SessionState = 'disconnected';
  clientId: string;
  limits: ServerLimits;
  private readonly options: SessionOptions;
  /**
   * The next packet id to try. Ids go round-robin, so a just-freed one is not reused at once (a late duplicate ack
   * for it would be taken for the new message's), skipping any still in use: an id is in use while `inflight` or
   * `control` holds it, so no set of ids is kept beside them (adding and deleting one per message was ~5 % of a
   * QoS 1 message's instructions and allocation).
   */
  private nextId = 1;
  private readonly queue = new Fifo<OutEntry>();
  /** Unacknowledged QoS 1/2 publishes by packet id, in the order they were sent. */
  private readonly inflight = new InflightTable<OutEntry>();
  /**
   * In-flight PUBLISHes of an earlier connection not yet sent again on this one, in their order: they go out with
   * DUP as the server's Receive Maximum allows ([MQTT-3.3.4-9] holds for resends too), before anything queued.
   */
  private unsent: OutEntry[] | undefined;
  /** SUBSCRIBE/UNSUBSCRIBE awaiting their ack; resent after a reconnect. */
  private readonly control = new Map<number, SubscribePacket | UnsubscribePacket>();
  /** The session this client started is the server's now (see onConnack): reconnects say Clean Start 0. */
  private rejoin = false;
  /** The Clean Start / Clean Session flag of the CONNECT in flight. */
  private sentClean = false;
  /** Incoming QoS 2 ids acknowledged with PUBREC and not yet released by PUBREL. */
  private readonly incomingQos2 = new Set<number>();
  /**
   * Those of `incomingQos2` the server sent (or sent again) on this connection: only they count against our Receive
   * Maximum, since the server's send quota starts afresh with each connection (MQTT 5.0 section 4.9).
   */
  private readonly qos2ThisConnection = new Set<number>();
  /**
   * With manualAck: incoming QoS 1/2 ids delivered on this connection whose PUBACK/PUBREC has not gone out, in
   * arrival order (a Map keeps insertion order). `acked` marks those the application acknowledged that still wait
   * behind an earlier one, since acks must leave in the order the PUBLISH packets arrived.
   */
  private readonly awaitingAck = new Map<number, AwaitingAck>();
  /**
   * Without manualAck: ids whose ack was held (for a consumer, or behind one) when their connection was lost. The
   * server sends those messages again; the copy a consumer still holds answers for the resend (`consumed`: it was
   * read meanwhile, so the resend is acknowledged at once), so a consumer that stays behind across reconnects is
   * not handed a copy per connection, and its acks still hold the server's window.
   */
  private heldBefore: Map<number, HeldBefore> | undefined;
  /** Numbers the deliveries that carry an ack token (AckToken.serial). */
  private deliveries = 0;
  /** How many entries of `awaitingAck` the application already acknowledged (held behind an earlier one). */
  private heldAcks = 0;
  /** Counts connections (and losses), so an ack token from an earlier connection is recognised as stale. */
  private connectionNumber = 0;
  /** Whether a CONNACK has told us the server's limits (before that, `limits` holds permissive defaults). */
  private limitsLearned = false;
  private outAliases = new OutgoingTopicAliases(0);
  private inAliases = new IncomingTopicAliases(0);
  private lastSeq = 0;
  private lastSent = 0;
  /** When a packet last came from the server: a line silent that long gets a PINGREQ too (as Paho does). */
  private lastReceived = 0;
  private pingSentAt: number | undefined;
  private readonly persist: boolean;
  /** Freed window slots are being held back for a batch (see `batchRefills`). */
  private held = false;
  /**
   * No queued message expires before this (epoch ms): a full queue first sheds expired messages, and the scan for
   * them is skipped until one can have expired. Only ever too early (a message sent or dropped since), never late.
   */
  private earliestExpiry = Number.POSITIVE_INFINITY;
  /** No timed sweep for expired messages before this: a sweep walks the whole queue (see dropExpired). */
  private nextSweepAt = 0;
  /** Holds of this connection ended by `releaseHeld`, and by enough slots freeing. */
  private holdsReleased = 0;
  private holdsFilled = 0;
  private batchingOff = false;
  /** This connection's end was judged for a poison message already (a DISCONNECT, or `serverClosed`). */
  private closeJudged = false;

  constructor(options: SessionOptions) {
    this.options = options;
    this.persist = options.persist !== false;
    this.version = options.protocolVersion;
    this.clientId = options.clientId;
    this.limits = defaultLimits(options.keepalive);
  }

  /** Waiting to be sent. */
  get queuedCount(): number {
    return this.queue.length;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** When a queued message's Message Expiry Interval may next run out (epoch ms, at times early); undefined: none has one. */
  get nextExpiry(): number | undefined {
    const at = this.earliestExpiry;
    return at === Number.POSITIVE_INFINITY ? undefined : Math.max(at, this.nextSweepAt);
  }

  /**
   * Fails the queued messages whose Message Expiry Interval ran out. Sending does it too, but a message waiting
   * offline (or behind a full window) would keep its caller waiting until the line came back.
   */
  expireQueued(now: number): Step {
    const step = newStep();
    if (now >= this.earliestExpiry && now >= this.nextSweepAt) this.dropExpired(step, now);
    return step;
  }

  /** Nothing queued, in flight, or awaiting a SUBACK/UNSUBACK. */
  get idle(): boolean {
    return this.queue.length === 0 && this.inflight.size === 0 && this.control.size === 0;
  }

  /**
   * The owners of every message not yet settled (queued or in flight), in no particular order, forgetting them:
   * for a client that closes and must fail what it still promised.
   */
  takeOwners(): unknown[] {
    const owners: unknown[] = [];
    for (const entry of this.queue) {
      if (entry.owner !== undefined) owners.push(entry.owner);
      entry.owner = undefined;
    }
    for (const entry of this.inflight.inSendOrder()) {
      if (entry.owner !== undefined) owners.push(entry.owner);
      entry.owner = undefined;
    }
    return owners;
  }

  /**
   * Loads what a durable store kept from an earlier run. Call before the first connect. Messages published before
   * it (none written to the store yet) go after the restored ones, numbered after them, and the step stores them.
   */
  restore(records: Iterable<StoredRecord>, now = 0): Step {
    const step = newStep();
    const early = this.queue.removeWhere(() => true);
    const outgoing: OutgoingRecord[] = [];
    for (const r of records) {
      if (r.kind === 'incoming') this.incomingQos2.add(r.packetId);
      else outgoing.push(r);
    }
    outgoing.sort((a, b) => a.seq - b.seq);
    for (const r of outgoing) {
      const entry: OutEntry = {
        seq: r.seq,
        topic: r.topic,
        payload: r.payload,
        qos: r.qos,
        retain: r.retain,
        properties: r.properties,
        state: r.state,
        packetId: r.packetId,
        key: undefined,
        checked: undefined,
        owner: undefined,
        expiresAt: r.expiresAt ?? 0,
        sentBefore: undefined,
        sentAfter: undefined,
        sentOn: -1,
        sentAt: 0,
        strikes: 0,
      };
      // An id that is no packet id (a damaged or foreign store) or already taken: the message goes again as new.
      if (r.state !== 'queued' && isPacketId(r.packetId) && !this.idInUse(r.packetId)) {
        this.inflight.add(entry);
      } else {
        entry.state = 'queued';
        entry.packetId = undefined;
        this.queue.push(entry);
        this.noteExpiry(entry);
      }
      this.lastSeq = Math.max(this.lastSeq, r.seq);
    }
    for (const entry of early) {
      entry.seq = ++this.lastSeq;
      entry.key = undefined;
      this.queue.push(entry);
      if (entry.qos > 0) this.storeOutgoing(step, entry);
    }
    // The limit holds for what a restart brings back too, not from the next publish on (which dropped the excess
    // all at once; without one, the whole backlog was sent).
    this.enforceQueueLimit(step, now);
    return step;
  }

  /** Starts the handshake; `extraProperties` (e.g. authentication data for this attempt) join the options'. */
  connect(now: number, extraProperties?: ConnectProperties): Step {
    const step = newStep();
    const o = this.options;
    this.state = 'connecting';
    this.pingSentAt = undefined;
    this.sentClean = o.clean && !this.rejoin;
    const connect: ConnectPacket = {
      type: 'connect',
      protocolVersion: this.version,
      clientId: this.clientId,
      clean: this.sentClean,
      keepalive: o.keepalive,
    };
    if (o.username !== undefined) connect.username = o.username;
    if (o.password !== undefined) connect.password = o.password;
    if (o.will !== undefined) connect.will = o.will;
    if (this.version === 5 && (o.properties !== undefined || extraProperties !== undefined)) {
      connect.properties = { ...o.properties, ...extraProperties };
    }
    this.send(step, connect, now);
    return step;
  }

  /**
   * The server hung up by itself (a FIN, or a reset: one that closes with our next packets unread resets the line),
   * without a DISCONNECT, after accepting the connection. Call before `connectionLost`. The step may fail a message
   * the server keeps closing the line over (`judgeClose`).
   */
  serverClosed(now: number): Step {
    const step = newStep();
    if (this.state === 'connected') this.judgeClose(step, now, 'closed the connection');
    return step;
  }

  /** The transport closed (or is being closed): per-connection state goes, the session's survives. */
  connectionLost(): void {
    // Any other end of a connection (an error, a timeout, ours, a DISCONNECT for another reason) breaks a run of
    // strikes against the message it was sending.
    if (this.state === 'connected' && !this.closeJudged) {
      const suspect = this.suspect();
      if (suspect !== undefined) suspect.strikes = 0;
    }
    this.closeJudged = false;
    this.held = false;
    this.unsent = undefined;
    this.state = 'disconnected';
    this.pingSentAt = undefined;
    this.outAliases = new OutgoingTopicAliases(0);
    // [MQTT-3.3.2-7]: the server's aliases die with the connection.
    this.inAliases = new IncomingTopicAliases(0);
    this.qos2ThisConnection.clear();
    if (this.options.manualAck !== true) {
      for (const [id, { acked, message, serial }] of this.awaitingAck) {
        if (message === undefined) continue;
        this.heldBefore ??= new Map();
        this.heldBefore.set(id, { consumed: acked, message, serial });
      }
    }
    // Unacknowledged deliveries die with the connection: the server sends them again (persistent session).
    this.awaitingAck.clear();
    this.heldAcks = 0;
    this.connectionNumber++;
  }

  /** Incoming QoS 1/2 messages delivered (manualAck, or held: `consumers`) whose `ack()` has not been called yet. */
  get unackedCount(): number {
    return this.awaitingAck.size - this.heldAcks;
  }

  /** Messages the application acknowledged whose PUBACK/PUBREC waits for an earlier message's `ack()`. */
  get heldAckCount(): number {
    return this.heldAcks;
  }

  /**
   * Acknowledges a message delivered under `manualAck`. Its PUBACK (QoS 1) or PUBREC (QoS 2) goes out once every
   * message that arrived before it on this connection was acknowledged too, together with the held acks of the
   * messages behind it, in arrival order. Idempotent; a token from an earlier connection sends nothing (the
   * server redelivers that message, and the redelivery has its own).
   */
  ack(token: AckToken, now: number): Step {
    const step = newStep();
    if (token.connection !== this.connectionNumber) {
      // A message held across a reconnect: its resend was adopted (the entry carries this token's serial: its ack
      // goes now), or is still to come. Serials are never reused, so no other entry matches.
      const before = this.heldBefore?.get(token.packetId);
      if (before !== undefined && before.serial === token.serial) before.consumed = true;
      if (this.awaitingAck.get(token.packetId)?.serial !== token.serial) return step;
    }
    if (this.state !== 'connected') return step;
    const waiting = this.awaitingAck.get(token.packetId);
    if (waiting === undefined || waiting.qos !== token.qos || waiting.acked) return step;
    waiting.acked = true;
    this.heldAcks++;
    for (const [id, entry] of this.awaitingAck) {
      if (!entry.acked) break;
      this.awaitingAck.delete(id);
      this.heldAcks--;
      this.sendAck(step, id, entry.qos, now, entry.recorded === true);
    }
    return step;
  }

  private sendAck(step: Step, id: number, qos: 1 | 2, now: number, recorded = false): void {
    if (qos === 1) {
      this.send(step, { type: 'puback', packetId: id }, now);
      return;
    }
    this.incomingQos2.add(id);
    this.qos2ThisConnection.add(id);
    if (this.persist && !recorded) {
      addEvent(step, { type: 'store-put', key: incomingKey(id), record: { kind: 'incoming', packetId: id } });
    }
    this.send(step, { type: 'pubrec', packetId: id }, now);
  }

  disconnect(now: number, reasonCode?: number, properties?: DisconnectProperties): Step {
    const step = newStep();
    const packet: DisconnectPacket = { type: 'disconnect' };
    if (reasonCode !== undefined) packet.reasonCode = reasonCode;
    if (properties !== undefined) packet.properties = properties;
    if (this.state !== 'disconnected') this.send(step, packet, now);
    this.connectionLost();
    return step;
  }

  auth(now: number, reasonCode: number, properties: AuthProperties): Step {
    const step = newStep();
    this.send(step, { type: 'auth', reasonCode, properties }, now);
    return step;
  }

  /**
   * Accepts a message for sending. Returns its sequence number; its outcome arrives later as a `published` or
   * `publish-failed` event with that number and `owner` (so the caller needs no table of its own). Throws
   * MqttError for a message that can never be sent.
   */
  publish(message: OutgoingMessage, now: number, owner?: unknown): { seq: number; step: Step } {
    validateTopicName(message.topic);
    // Before it is stored: the server would close the line over it at every reconnect.
    checkResponseTopic(message.properties?.responseTopic);
    if (message.qos !== 0 && message.qos !== 1 && message.qos !== 2) {
      throw new MqttError('MQTT_ERR_INVALID_OPTION', `QoS must be 0, 1 or 2, got ${String(message.qos)}`);
    }
    const borrowed = message.borrowed === true;
    const entry: OutEntry = {
      seq: ++this.lastSeq,
      topic: message.topic,
      payload: borrowed && message.qos !== 0 ? copyBytes(message.payload) : message.payload,
      qos: message.qos,
      retain: message.retain,
      properties: withoutSubscriptionIds(message.properties),
      state: 'queued',
      packetId: undefined,
      key: undefined,
      checked: undefined,
      owner,
      expiresAt: expiryDeadline(message.properties, now),
      sentBefore: undefined,
      sentAfter: undefined,
      sentOn: -1,
      sentAt: 0,
      strikes: 0,
    };
    this.checkAgainstServer(entry);
    const step = newStep();
    this.queue.push(entry);
    this.noteExpiry(entry);
    if (entry.qos > 0) this.storeOutgoing(step, entry);
    this.pump(step, now);
    if (borrowed && entry.qos === 0 && entry.sentOn === -1) entry.payload = copyBytes(entry.payload);
    this.enforceQueueLimit(step, now);
    return { seq: entry.seq, step };
  }

  subscribe(subscriptions: Subscription[], properties: SubscribeProperties | undefined, now: number) {
    for (const s of subscriptions) validateTopicFilter(s.topicFilter);
    const packetId = this.allocateId();
    const packet: SubscribePacket = { type: 'subscribe', packetId, subscriptions };
    if (properties !== undefined && this.version === 5) packet.properties = properties;
    // Measuring validates options and properties: a bad one throws here, before the packet is kept to resend.
    encodedLength(packet, this.version);
    return { packetId, step: this.sendControl(packet, now) };
  }

  unsubscribe(topicFilters: string[], properties: UnsubscribeProperties | undefined, now: number) {
    for (const f of topicFilters) validateTopicFilter(f);
    const packetId = this.allocateId();
    const packet: UnsubscribePacket = { type: 'unsubscribe', packetId, topicFilters };
    if (properties !== undefined && this.version === 5) packet.properties = properties;
    encodedLength(packet, this.version);
    return { packetId, step: this.sendControl(packet, now) };
  }

  /** Handles one packet from the server; `into` gathers the outcome of several into one step (a run of acks). */
  handle(packet: Packet, now: number, into?: Step): Step {
    const step = into ?? newStep();
    this.lastReceived = now;
    if (
      this.state === 'connecting' &&
      packet.type !== 'connack' &&
      packet.type !== 'auth' &&
      packet.type !== 'disconnect'
    ) {
      // [MQTT-3.2.0-1]: nothing but AUTH comes before CONNACK (a PUBLISH would resolve aliases of no connection).
      this.protocolError(step, now, `${packet.type} before CONNACK`, 0x82);
      return step;
    }
    switch (packet.type) {
      case 'connack':
        this.onConnack(packet, step, now);
        break;
      case 'publish':
        this.onPublish(packet, step, now);
        break;
      case 'puback':
        this.onPuback(packet.packetId, packet.reasonCode ?? 0, packet.properties, step, now);
        break;
      case 'pubrec':
        this.onPubrec(packet.packetId, packet.reasonCode ?? 0, packet.properties, step, now);
        break;
      case 'pubcomp':
        this.onPubcomp(packet.packetId, packet.reasonCode ?? 0, packet.properties, step, now);
        break;
      case 'pubrel': {
        const known = this.incomingQos2.delete(packet.packetId);
        this.qos2ThisConnection.delete(packet.packetId);
        if (known && this.persist) addEvent(step, { type: 'store-delete', key: incomingKey(packet.packetId) });
        const comp: Packet = { type: 'pubcomp', packetId: packet.packetId };
        if (!known && this.version === 5) comp.reasonCode = 0x92;
        this.send(step, comp, now);
        break;
      }
      case 'suback':
      case 'unsuback':
        if (this.control.get(packet.packetId)?.type === (packet.type === 'suback' ? 'subscribe' : 'unsubscribe')) {
          this.control.delete(packet.packetId);
          if (packet.type === 'suback') addEvent(step, { type: 'suback', packet });
          else addEvent(step, { type: 'unsuback', packet });
        }
        break;
      case 'pingresp':
        this.pingSentAt = undefined;
        break;
      case 'disconnect': {
        addEvent(step, { type: 'server-disconnect', packet });
        const code = packet.reasonCode ?? 0;
        if (this.state === 'connected' && MESSAGE_FAULTS.has(code)) {
          this.judgeClose(step, now, `sent DISCONNECT ${reasonName(code, 5, 'disconnect')}`);
        }
        this.connectionLost();
        break;
      }
      case 'auth':
        addEvent(step, { type: 'auth', packet });
        break;
      default:
        this.protocolError(step, now, `a server must not send ${packet.type}`, 0x82);
    }
    return step;
  }

  /**
   * Keepalive: a PINGREQ when nothing was sent for the keepalive interval, or a close when PINGRESP is overdue.
   * With `reading` false (the client paused reading for backpressure) a PINGRESP cannot be seen, so none is
   * overdue: PINGREQs go on keeping the server's timer alive, and the wait starts again on `readingResumed`.
   */
  tick(now: number, reading = true): Step {
    const step = newStep();
    const keepaliveMs = this.limits.keepalive * 1000;
    if (this.state !== 'connected' || keepaliveMs <= 0) return step;
    if (this.pingSentAt !== undefined && reading) {
      if (now - this.pingSentAt >= this.pingTimeoutMs()) {
        addEvent(step, {
          type: 'close',
          error: new MqttError('MQTT_ERR_KEEPALIVE_TIMEOUT', `no PINGRESP within ${this.pingTimeoutMs()} ms`),
        });
        this.connectionLost();
      }
      return step;
    }
    if (now - this.idleSince(reading) >= keepaliveMs) {
      this.send(step, { type: 'pingreq' }, now);
      this.pingSentAt = now;
    }
    return step;
  }

  /**
   * Bytes came in, a whole packet or not. A PINGRESP outstanding is not overdue while they do: on a slow line it
   * waits at the server behind a large message still arriving, and a timeout counted from the PINGREQ cut that
   * line for ever (every resend of the message cut again). The timeout counts from the last byte heard.
   */
  bytesArrived(now: number): void {
    if (this.pingSentAt !== undefined) this.pingSentAt = now;
  }

  /** Reading resumed after a pause: a PINGRESP outstanding gets a full timeout from now. */
  readingResumed(now: number): void {
    this.lastReceived = now;
    if (this.pingSentAt !== undefined) this.pingSentAt = now;
  }

  /** When `tick` next has something to decide, or undefined when keepalive is off. */
  nextTick(reading = true): number | undefined {
    const keepaliveMs = this.limits.keepalive * 1000;
    if (this.state !== 'connected' || keepaliveMs <= 0) return undefined;
    if (this.pingSentAt !== undefined && reading) return this.pingSentAt + this.pingTimeoutMs();
    return this.idleSince(reading) + keepaliveMs;
  }

  /**
   * Since when the line was idle: nothing sent, or nothing received. A client that only sends QoS 0 hears nothing
   * back and, if only its sending counted ([MQTT-3.1.2-23] asks no more), would not notice a dead line for as long
   * as the kernel retransmits (minutes); Paho probes it too. While reading is paused nothing can be heard.
   */
  private idleSince(reading: boolean): number {
    return reading ? Math.min(this.lastSent, this.lastReceived) : this.lastSent;
  }

  private pingTimeoutMs(): number {
    return this.options.pingTimeoutMs ?? this.limits.keepalive * 1000;
  }

  private send(step: Step, packet: Packet, now: number): void {
    addPacket(step, packet);
    this.lastSent = now;
  }

  private sendControl(packet: SubscribePacket | UnsubscribePacket, now: number): Step {
    const step = newStep();
    this.control.set(packet.packetId, packet);
    if (this.state === 'connected') this.send(step, packet, now);
    return step;
  }

  private protocolError(step: Step, now: number, message: string, reasonCode: number, cause?: unknown): void {
    if (this.version === 5) this.send(step, { type: 'disconnect', reasonCode }, now);
    addEvent(step, {
      type: 'close',
      error: new MqttError('MQTT_ERR_PROTOCOL_ERROR', message, { reasonCode, cause }),
    });
    this.connectionLost();
  }

  private onConnack(packet: ConnackPacket, step: Step, now: number): void {
    if (this.state !== 'connecting') {
      this.protocolError(step, now, 'CONNACK outside the connect handshake', 0x82);
      return;
    }
    if (packet.reasonCode !== 0) {
      addEvent(step, { type: 'refused', connack: packet });
      this.connectionLost();
      return;
    }
    if (packet.sessionPresent && this.sentClean) {
      // [MQTT-3.2.2-2]: Clean Start 1 is answered with no session; a server that resumes one is not to be trusted
      // with ours ([MQTT-3.2.2-4]).
      this.protocolError(step, now, 'CONNACK resumed a session after Clean Start 1', 0x82);
      return;
    }
    const p = packet.properties ?? {};
    this.limits = {
      receiveMaximum: p.receiveMaximum ?? 65535,
      topicAliasMaximum: p.topicAliasMaximum ?? 0,
      maximumPacketSize: p.maximumPacketSize ?? Number.POSITIVE_INFINITY,
      maximumQoS: p.maximumQoS ?? 2,
      retainAvailable: p.retainAvailable !== 0,
      keepalive: p.serverKeepAlive ?? this.options.keepalive,
    };
    this.limitsLearned = true;
    this.holdsReleased = 0;
    this.holdsFilled = 0;
    this.batchingOff = false;
    if (p.assignedClientIdentifier !== undefined) this.clientId = p.assignedClientIdentifier;
    this.outAliases = new OutgoingTopicAliases(this.limits.topicAliasMaximum, this.options.topicAliases !== false);
    this.inAliases = new IncomingTopicAliases(this.options.properties?.topicAliasMaximum ?? 0);
    this.state = 'connected';
    this.lastSent = now;
    this.lastReceived = now;
    // Clean Start asks for a fresh session once. One the server keeps after the connection (a Session Expiry
    // Interval) is rejoined when the line comes back, as AWS IoT's SDKs do by default: a dropped line must not
    // discard the messages queued for us or turn our in-flight QoS 2 messages into new ones.
    if (this.version === 5 && (this.options.properties?.sessionExpiryInterval ?? 0) > 0) this.rejoin = true;
    if (!packet.sessionPresent) {
      // The server has no record of our in-flight messages: unreleased QoS 2 ids are void, messages the server
      // acknowledged with PUBREC are done (it took them over; sent again they could arrive twice), reported with
      // 0x92 as a PUBCOMP saying the same would be, and the rest go out again as new messages.
      if (this.persist) {
        for (const id of this.incomingQos2) addEvent(step, { type: 'store-delete', key: incomingKey(id) });
      }
      this.incomingQos2.clear();
      this.heldBefore = undefined;
      const resend: OutEntry[] = [];
      for (const entry of this.inflight.inSendOrder()) {
        if (entry.state === 'pubrel') {
          this.unstore(step, entry, true);
          addEvent(step, publishedEvent(entry, PACKET_ID_NOT_FOUND));
        } else {
          entry.state = 'queued';
          entry.packetId = undefined;
          resend.push(entry);
          this.noteExpiry(entry);
        }
      }
      this.inflight.clear();
      if (resend.length > 0) this.queue.unshiftAll(resend);
    }
    addEvent(step, { type: 'connected', connack: packet });
    // Again in the order first sent: PUBREL, and PUBLISH with DUP as far as this server's Receive Maximum allows
    // ([MQTT-3.3.4-9] holds for resends too); pump sends the rest as acks free the window. One this server could
    // not take (a smaller Maximum Packet Size, a lower Maximum QoS) fails here, as a new publish would: sent again,
    // it would only be refused again, connection after connection.
    const again: OutEntry[] = [];
    const unsent: OutEntry[] = [];
    for (const entry of this.inflight.inSendOrder()) {
      if (entry.state === 'publish') {
        try {
          if (entry.checked !== this.limits) this.checkAgainstServer(entry, true);
        } catch (err) {
          this.inflight.delete(entry.packetId!);
          this.unstore(step, entry);
          addEvent(step, failedEvent(entry, err as MqttError));
          continue;
        }
        unsent.push(entry);
      }
      again.push(entry);
    }
    this.unsent = unsent;
    const window = this.window();
    for (const entry of again) {
      if (entry.state === 'pubrel') this.send(step, { type: 'pubrel', packetId: entry.packetId! }, now);
      else if (unsent[0] === entry && this.resendFits(window)) {
        unsent.shift();
        this.send(step, this.wirePublish(entry, true, now), now);
      }
    }
    if (unsent.length === 0) this.unsent = undefined;
    for (const control of this.control.values()) this.send(step, control, now);
    this.pump(step, now);
  }

  /**
   * A poison message: the server closes the line over it, connection after connection, and the messages behind it
   * never go (AWS IoT closes a 3.1.1 line on a publish its policy denies; Mosquitto on a retained publish with
   * `retain_available false`; a 5.0 server may answer with DISCONNECT 0x87, 0x90, 0x95 …). A server works through
   * its input in order and acknowledges what it takes, so the likely culprit is the oldest message sent on this
   * connection and not acknowledged. It earns a strike when the server ends the connection within
   * POISON_WINDOW_MS of sending it; `poisonStrikes` strikes in a row fail it. A line that drops for any other reason
   * (an error, a keepalive timeout, a broker going down with 0x8B) breaks the run, so a flaky line does not cost a
   * message; a broker killed again and again the moment the message goes out could, in theory.
   */
  private judgeClose(step: Step, now: number, how: string): void {
    this.closeJudged = true;
    const limit = this.options.poisonStrikes ?? DEFAULT_POISON_STRIKES;
    if (limit <= 0) return;
    const suspect = this.suspect();
    if (suspect === undefined) return;
    if (now - suspect.sentAt > POISON_WINDOW_MS) {
      suspect.strikes = 0;
      return;
    }
    if (++suspect.strikes < limit) return;
    this.inflight.delete(suspect.packetId!);
    this.unstore(step, suspect);
    const error = new MqttError(
      'MQTT_ERR_POISON_MESSAGE',
      `the server ${how} right after this message, before acknowledging it, on ${limit} connections in a row: ` +
        'given up, so that the messages behind it can go (a message the server refuses by closing the line, ' +
        'e.g. a topic its policy denies; option poisonStrikes)',
    );
    addEvent(step, failedEvent(suspect, error));
  }

  /** The oldest PUBLISH sent on this connection that the server has not acknowledged (a PUBREC counts). */
  private suspect(): OutEntry | undefined {
    for (const entry of this.inflight.inSendOrder()) {
      if (entry.state === 'publish' && entry.sentOn === this.connectionNumber) return entry;
    }
    return undefined;
  }

  /** Unacknowledged QoS 1/2 PUBLISHes the server takes at a time (its Receive Maximum, or our maxInflight). */
  private window(): number {
    return Math.min(this.limits.receiveMaximum, this.options.maxInflight ?? 65535);
  }

  private onPublish(packet: PublishPacket, step: Step, now: number): void {
    let topic: string;
    try {
      topic = this.inAliases.resolve(packet.topic, packet.properties?.topicAlias);
    } catch (err) {
      this.protocolError(step, now, (err as Error).message, (err as MqttError).reasonCode ?? 0x82, err);
      return;
    }
    const message = delivered(packet, topic);
    if (packet.qos === 0) {
      addEvent(step, { type: 'message', message });
      return;
    }
    const id = packet.packetId!;
    const receiveMaximum = this.options.properties?.receiveMaximum ?? 65535;
    // Every QoS 1 message not yet PUBACKed and QoS 2 message not yet PUBCOMPed counts against our Receive Maximum:
    // those the server sent on this connection, as its quota starts again with each one (section 4.9).
    const unacked = this.qos2ThisConnection.size + this.awaitingAck.size;
    const isNew = !this.qos2ThisConnection.has(id) && !this.awaitingAck.has(id);
    if (isNew && this.version === 5 && unacked >= receiveMaximum) {
      this.protocolError(step, now, `the server exceeded our Receive Maximum of ${receiveMaximum}`, 0x93);
      return;
    }
    if (this.options.manualAck === true && !(packet.qos === 2 && this.incomingQos2.has(id))) {
      // Delivered on every (re)send until acknowledged: the application has not taken it yet. A repeat keeps the
      // place (and any held ack) of the first copy.
      if (!this.awaitingAck.has(id)) this.awaitingAck.set(id, { qos: packet.qos, acked: false });
      addEvent(step, {
        type: 'message',
        message,
        ack: { packetId: id, qos: packet.qos, connection: this.connectionNumber, serial: ++this.deliveries },
      });
      return;
    }
    if (this.heldBefore !== undefined) {
      const before = this.heldBefore.get(id);
      this.heldBefore.delete(id);
      // The server resends what it had in flight first ([MQTT-4.4.0-1]), flagged DUP: a new message ends the resends.
      if (!packet.dup || this.heldBefore.size === 0) this.heldBefore = undefined;
      if (packet.dup && before !== undefined && sameMessage(before, message)) {
        this.adoptResend(message, before, step, now);
        return;
      }
    }
    const hold = this.options.consumers?.consumersBehind === true;
    if (hold || this.awaitingAck.size > 0) {
      this.holdIncoming(packet, message, hold, step, now);
      return;
    }
    if (packet.qos === 1) {
      addEvent(step, { type: 'message', message });
      this.send(step, { type: 'puback', packetId: id }, now);
    } else {
      if (!this.incomingQos2.has(id)) {
        // Delivered now, once: a repeated PUBLISH with this id before PUBREL only gets its PUBREC again.
        addEvent(step, { type: 'message', message });
        this.incomingQos2.add(id);
        if (this.persist) {
          addEvent(step, { type: 'store-put', key: incomingKey(id), record: { kind: 'incoming', packetId: id } });
        }
      }
      this.qos2ThisConnection.add(id);
      this.send(step, { type: 'pubrec', packetId: id }, now);
    }
  }

  /**
   * The resend of a message whose ack was held when the line was lost: the copy a consumer holds (or held) answers
   * for it, so it is not delivered again. Its ack goes once that copy is read (at once if it was), in arrival order.
   */
  private adoptResend(message: PublishPacket, before: HeldBefore, step: Step, now: number): void {
    const id = message.packetId!;
    const qos = message.qos as 1 | 2;
    if (before.consumed) this.ackInTurn(message, step, now);
    else this.awaitingAck.set(id, { qos, acked: false, recorded: true, message, serial: before.serial });
  }

  /** A due ack of a recorded message: sent now if no earlier one waits, else queued behind it, in arrival order. */
  private ackInTurn(message: PublishPacket, step: Step, now: number): void {
    const id = message.packetId!;
    const qos = message.qos as 1 | 2;
    if (this.awaitingAck.size === 0) {
      this.sendAck(step, id, qos, now, true);
      return;
    }
    this.awaitingAck.set(id, { qos, acked: true, recorded: true, message });
    this.heldAcks++;
  }

  /**
   * Without manualAck, a message whose ack waits: for a consumer (`hold`), or behind an earlier held one (acks leave
   * in arrival order, [MQTT-4.6.0-2]). A QoS 2 message is delivered and recorded (stored) once, as when
   * acknowledged at once: exactly once to the application, for a 'message' listener that took it at once too, at
   * the price of a copy still unread in an iterator when the process stops. A repeat of a message whose ack waits
   * is answered by that ack.
   */
  private holdIncoming(packet: PublishPacket, message: PublishPacket, hold: boolean, step: Step, now: number): void {
    const id = packet.packetId!;
    const qos = packet.qos as 1 | 2;
    if (this.awaitingAck.has(id)) return;
    const known = qos === 2 && this.incomingQos2.has(id);
    let serial: number | undefined;
    if (!known) {
      const event: SessionEvent = { type: 'message', message };
      if (hold) {
        serial = ++this.deliveries;
        event.ack = { packetId: id, qos, connection: this.connectionNumber, serial };
      }
      addEvent(step, event);
      if (qos === 2) {
        this.incomingQos2.add(id);
        if (this.persist) {
          addEvent(step, { type: 'store-put', key: incomingKey(id), record: { kind: 'incoming', packetId: id } });
        }
      }
    }
    if (serial !== undefined) this.awaitingAck.set(id, { qos, acked: false, recorded: true, message, serial });
    else this.ackInTurn(message, step, now);
  }

  private onPuback(id: number, code: number, props: AckProperties | undefined, step: Step, now: number): void {
    const entry = this.inflight.get(id);
    if (entry === undefined || entry.qos !== 1) return;
    this.finish(entry, code, props, step);
    this.pump(step, now);
  }

  private onPubrec(id: number, code: number, props: AckProperties | undefined, step: Step, now: number): void {
    const entry = this.inflight.get(id);
    if (entry === undefined || entry.qos !== 2) {
      const rel: Packet = { type: 'pubrel', packetId: id };
      if (this.version === 5) rel.reasonCode = 0x92;
      this.send(step, rel, now);
      return;
    }
    if (code >= 0x80) {
      this.finish(entry, code, props, step);
      this.pump(step, now);
      return;
    }
    if (entry.state === 'publish') {
      entry.state = 'pubrel';
      this.storeOutgoing(step, entry);
    }
    if (code !== 0 || props !== undefined)
      entry.pubrec = props === undefined ? { reasonCode: code } : { reasonCode: code, properties: props };
    this.send(step, { type: 'pubrel', packetId: id }, now);
  }

  private onPubcomp(id: number, code: number, props: AckProperties | undefined, step: Step, now: number): void {
    const entry = this.inflight.get(id);
    if (entry === undefined || entry.state !== 'pubrel') return;
    // A successful PUBREC already handed the message over; PUBCOMP's only failure (0x92, the server lost the id,
    // e.g. with its session) cannot undo that, so the publish completes and the code is reported, not thrown.
    this.finish(entry, code, props, step, true);
    this.pump(step, now);
  }

  private finish(
    entry: OutEntry,
    code: number,
    props: AckProperties | undefined,
    step: Step,
    handedOver = false,
  ): void {
    this.inflight.delete(entry.packetId!);
    this.unstore(step, entry, code < 0x80 || handedOver);
    if (code >= 0x80 && !handedOver) {
      // The server's reason string says why (an ACL rule, a quota): in the message and, with its user properties,
      // on the error.
      const said = props?.reasonString === undefined ? '' : `: ${props.reasonString}`;
      const error = new MqttError(
        'MQTT_ERR_PUBLISH_FAILED',
        `the server refused the message: ${reasonName(code, this.version)}${said}`,
        { reasonCode: code, properties: props },
      );
      addEvent(step, failedEvent(entry, error));
    } else {
      const event = publishedEvent(entry, code);
      event.properties = props;
      if (entry.pubrec !== undefined) event.pubrec = entry.pubrec;
      addEvent(step, event);
    }
  }

  private idInUse(id: number): boolean {
    return this.inflight.has(id) || (this.control.size > 0 && this.control.has(id));
  }

  /** Every packet id is held by an unacknowledged publish or SUBSCRIBE/UNSUBSCRIBE. */
  private get idsExhausted(): boolean {
    return this.inflight.size + this.control.size >= 0xffff;
  }

  private allocateId(): number {
    if (this.idsExhausted) {
      throw new MqttError('MQTT_ERR_PACKET_ID_EXHAUSTED', 'all 65535 packet identifiers are in use');
    }
    // An id whose slot in the in-flight table is taken (by an id still held from much earlier) is passed over, so
    // the table need not grow; after a run of those any free id does, and the table makes room.
    for (let passed = 0; ; ) {
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1;
      if (!this.idInUse(id) && (this.inflight.fits(id) || ++passed > 16)) return id;
    }
  }

  /** Whether freed window slots are held back, waiting for more to free (`batchRefills`). */
  get holding(): boolean {
    return this.held;
  }

  /**
   * Ends a hold that lasted: sends what the window allows now. A hold that had to be released means the next
   * PUBACK did not come by itself (a server with Nagle on waits for our TCP ACK): when that keeps happening,
   * batching stops for this connection.
   */
  releaseHeld(now: number): Step {
    const step = newStep();
    if (!this.held) return step;
    this.held = false;
    // As often released as filled: the server waits for our write (Nagle). Now and then: a busy machine, keep on.
    if (++this.holdsReleased >= RELEASES_BEFORE_JUDGING && this.holdsReleased * 2 > this.holdsFilled) {
      this.batchingOff = true;
    }
    this.pump(step, now, true);
    return step;
  }

  /**
   * With a full window and a backlog, hold fewer than a batch of freed slots. Against a server that acknowledges
   * one PUBLISH per write (Mosquitto with TCP_NODELAY), refilling each slot as its PUBACK arrives costs a write
   * per message on both sides; a batch of refills is one write, and the server still has the rest of the window
   * to work on meanwhile.
   */
  private shouldHold(window: number): boolean {
    if (this.options.batchRefills !== true || this.batchingOff || this.unsent !== undefined) return false;
    const inflight = this.inflight.size;
    const free = window - inflight;
    if (inflight === 0 || free <= 0) return false;
    const head = this.queue.peek();
    if (head === undefined || head.qos === 0) return false;
    const batch = Math.min(8, window >> 2);
    return batch >= 2 && free < Math.min(batch, this.queue.length);
  }

  /** Sends queued messages while connected and the window allows (and no batch of refills is being gathered). */
  private pump(step: Step, now: number, release = false): void {
    if (this.state !== 'connected') return;
    const window = this.window();
    if (!release && this.shouldHold(window)) {
      this.held = true;
      return;
    }
    if (this.held) {
      this.held = false;
      this.holdsFilled++;
    }
    if (this.unsent !== undefined && !this.resendSome(step, now, window)) return;
    // Without batching every free slot is refilled at once (the client writes one read's refills as one chunk).
    for (;;) {
      const entry = this.queue.peek();
      if (entry === undefined) return;
      // The QoS 2 cap holds QoS 1 back too: Mosquitto counts QoS 2 messages awaiting PUBREL against the same 20
      // and drops a QoS 1 message that finds them full, with a 3.1.1 PUBACK that cannot say so.
      if (
        entry.qos > 0 &&
        (this.inflight.size >= window ||
          this.idsExhausted ||
          this.inflight.exactlyOnce >= this.exactlyOnceWindow(window))
      )
        return;
      this.queue.shift();
      if (entry.expiresAt !== 0 && entry.expiresAt <= now) {
        this.expire(step, entry);
        continue;
      }
      try {
        if (entry.checked !== this.limits) this.checkAgainstServer(entry);
      } catch (err) {
        if (entry.qos > 0) this.unstore(step, entry);
        addEvent(step, failedEvent(entry, err as MqttError));
        continue;
      }
      if (entry.qos === 0) {
        this.send(step, this.wirePublish(entry, false, now), now);
        const event = publishedEvent(entry, 0);
        event.handedOff = true;
        addEvent(step, event);
        continue;
      }
      entry.packetId = this.allocateId();
      entry.state = 'publish';
      this.inflight.add(entry);
      this.storeOutgoing(step, entry);
      this.send(step, this.wirePublish(entry, false, now), now);
    }
  }

  /**
   * QoS 2 messages in flight at a time. 5.0: the window (the server's Receive Maximum says what it takes). 3.1.1,
   * unless maxInflight is set: 20, as libmosquitto and Mosquitto's max_inflight_messages. A 3.1.1 server has no way
   * to announce its window, and a PUBREC has no reason code to refuse with: Mosquitto answers a QoS 2 message beyond
   * its 20 with a plain PUBREC and drops it (0x97 in its log), so every promise resolved while 80 of 100 were lost.
   * While 20 are out no QoS 1 message goes either (see pump).
   */
  private exactlyOnceWindow(window: number): number {
    return this.version === 4 && this.options.maxInflight === undefined ? Math.min(window, 20) : window;
  }

  /** One more resend fits the window: those not sent again on this connection do not count against it yet. */
  private resendFits(window: number): boolean {
    return this.inflight.size - this.unsent!.length < window;
  }

  /** Sends lined-up resends while the window has room; returns whether all have gone. */
  private resendSome(step: Step, now: number, window: number): boolean {
    const unsent = this.unsent!;
    while (unsent.length > 0 && this.resendFits(window)) {
      const entry = unsent.shift()!;
      if (this.inflight.get(entry.packetId!) === entry) this.send(step, this.wirePublish(entry, true, now), now);
    }
    if (unsent.length > 0) return false;
    this.unsent = undefined;
    return true;
  }

  /** Rejects what this server cannot take (before CONNACK: the defaults, which take anything valid): QoS above its maximum, retain it lacks, a packet above its size limit. */
  private checkAgainstServer(entry: OutEntry, resend = false): void {
    const l = this.limits;
    if (entry.qos > l.maximumQoS) {
      throw new MqttError('MQTT_ERR_PUBLISH_FAILED', `the server accepts QoS up to ${l.maximumQoS}`, {
        reasonCode: 0x9b,
      });
    }
    if (entry.retain && !l.retainAvailable) {
      throw new MqttError('MQTT_ERR_PUBLISH_FAILED', 'the server does not support retained messages', {
        reasonCode: 0x9a,
      });
    }
    // A resend drops a caller's alias this server does not allow (wirePublish) rather than failing.
    const alias = resend ? undefined : entry.properties?.topicAlias;
    if (alias !== undefined && this.version === 5 && this.limitsLearned && alias > l.topicAliasMaximum) {
      throw new MqttError(
        'MQTT_ERR_INVALID_OPTION',
        `topic alias ${alias} is outside the server's Topic Alias Maximum (${l.topicAliasMaximum})`,
        { reasonCode: 0x94 },
      );
    }
    // Measuring also validates (properties, lengths), so a bad message fails here and never reaches the wire.
    // Measured with the full topic and without an alias of ours: wirePublish adds one only where it still fits.
    const size = measureEntry(entry, this.version);
    if (size > l.maximumPacketSize) {
      throw new MqttError(
        'MQTT_ERR_PACKET_TOO_LARGE',
        `a PUBLISH of ${size} bytes exceeds the server's Maximum Packet Size of ${l.maximumPacketSize}`,
        { reasonCode: 0x95 },
      );
    }
    if (!resend) entry.checked = l;
  }

  private plainPublish(entry: OutEntry, dup: boolean, packetId: number | undefined, now: number): PublishPacket {
    const packet: PublishPacket = {
      type: 'publish',
      topic: entry.topic,
      payload: entry.payload,
      qos: entry.qos,
      retain: entry.retain,
      dup,
    };
    if (packetId !== undefined) packet.packetId = packetId;
    if (entry.properties !== undefined && this.version === 5) {
      packet.properties = entry.expiresAt === 0 ? entry.properties : withExpiryLeft(entry, now);
    }
    return packet;
  }

  /**
   * Whether the PUBLISH still fits the server's Maximum Packet Size with an alias of ours added: at most 5 bytes (the
   * property's 3, and one more byte in each of the two length fields). Measured only when a cheap bound says it
   * might not: a message without properties takes at most 16 bytes besides its payload and 3 per topic character.
   */
  private aliasFits(entry: OutEntry): boolean {
    const max = this.limits.maximumPacketSize;
    if (entry.properties === undefined && entry.payload.length + 3 * entry.topic.length + 16 <= max) return true;
    return measureEntry(entry, this.version) + 5 <= max;
  }

  private wirePublish(entry: OutEntry, dup: boolean, now: number): PublishPacket {
    entry.sentOn = this.connectionNumber;
    entry.sentAt = now;
    const packet = this.plainPublish(entry, dup, entry.packetId, now);
    if (this.version !== 5) return packet;
    const requested = entry.properties?.topicAlias;
    let choice: AliasChoice | undefined;
    if (requested !== undefined && requested >= 1 && requested <= this.outAliases.maximum) {
      choice = this.outAliases.assign(entry.topic, requested);
    } else {
      // No alias asked for, or one this server cannot take (a message resent after a reconnect to a server with a
      // lower maximum; new ones fail in checkAgainstServer): the table decides, with the topic in full if need be.
      // Not for a message an alias would push over the server's Maximum Packet Size: a topic's first message
      // carries the topic and the alias both.
      if (this.aliasFits(entry)) choice = this.outAliases.choose(entry.topic);
      if (requested !== undefined) {
        const rest = withoutTopicAlias(entry.properties);
        if (rest === undefined) delete packet.properties;
        else packet.properties = rest;
      }
    }
    if (choice !== undefined) {
      const properties = packet.properties;
      // The usual case, no properties of the caller's: the table's shared `{ topicAlias }`, not a spread.
      packet.properties = properties === undefined ? choice.properties : { ...properties, topicAlias: choice.alias };
      if (!choice.sendTopic) packet.topic = '';
    }
    return packet;
  }

  /**
   * `delivered`: the server took the message (its PUBACK, PUBCOMP, or PUBREC before a lost session), so losing the
   * deletion in a crash only sends it again as its QoS allows. A message the client gave up (refused, expired,
   * dropped, a poison message) is deleted strictly: back after a power cut, it would go out after the application
   * was told it failed.
   */
  private unstore(step: Step, entry: OutEntry, delivered = false): void {
    if (!this.persist) return;
    if (delivered) addEvent(step, { type: 'store-delete', key: keyOf(entry), durable: 'optional' });
    else addEvent(step, { type: 'store-delete', key: keyOf(entry) });
  }

  private storeOutgoing(step: Step, entry: OutEntry): void {
    if (!this.persist) return;
    // Past PUBREC the server has the message: only the PUBREL is ever sent again (a lost session resolves it with
    // 0x92), so its record drops the payload rather than write every QoS 2 payload to flash twice.
    const released = entry.state === 'pubrel';
    const record: OutgoingRecord = {
      kind: 'outgoing',
      seq: entry.seq,
      topic: entry.topic,
      payload: released ? RELEASED_PAYLOAD : entry.payload,
      qos: entry.qos as 1 | 2,
      retain: entry.retain,
      state: entry.state,
    };
    if (entry.properties !== undefined && !released) record.properties = entry.properties;
    if (entry.packetId !== undefined) record.packetId = entry.packetId;
    if (entry.expiresAt !== 0) record.expiresAt = entry.expiresAt;
    if (entry.qos === 2) addEvent(step, { type: 'store-put', key: keyOf(entry), record });
    else {
      const durable = entry.state === 'queued' ? 'after-send' : 'optional';
      addEvent(step, { type: 'store-put', key: keyOf(entry), record, durable });
    }
  }

  private noteExpiry(entry: OutEntry): void {
    if (entry.expiresAt !== 0 && entry.expiresAt < this.earliestExpiry) this.earliestExpiry = entry.expiresAt;
  }

  /** A message whose Message Expiry Interval ran out while it waited: it fails instead of going out stale. */
  private expire(step: Step, entry: OutEntry): void {
    if (entry.qos > 0) this.unstore(step, entry);
    const interval = entry.properties?.messageExpiryInterval ?? 0;
    addEvent(
      step,
      failedEvent(
        entry,
        new MqttError(
          'MQTT_ERR_MESSAGE_EXPIRED',
          `a message to ${entry.topic} was not sent: its Message Expiry Interval (${interval} s) ran out first`,
        ),
      ),
    );
  }

  /**
   * Takes the expired messages out of the queue (failing them), keeping the order of the rest. It walks the whole
   * queue, so the timed sweeps of a long one are spaced (1 ms per 500 queued, at most 1 s): 500 000 messages queued
   * offline behind telemetry that expires a second after it is published cost a walk per message, 58 % of a core.
   * A message is checked again as it goes out, so none is sent stale.
   */
  private dropExpired(step: Step, now: number): void {
    const expired = this.queue.removeWhere((entry) => entry.expiresAt !== 0 && entry.expiresAt <= now);
    for (const entry of expired) this.expire(step, entry);
    this.earliestExpiry = Number.POSITIVE_INFINITY;
    for (const entry of this.queue) this.noteExpiry(entry);
    this.nextSweepAt = now + Math.min(1000, Math.ceil(this.queue.length / 500));
  }

  private enforceQueueLimit(step: Step, now: number): void {
    const limit = this.options.queueLimit ?? Number.POSITIVE_INFINITY;
    // Messages past their expiry give way before any live one is dropped, as far as the sweeps' spacing allows: at
    // the limit, a sweep per publish was a walk of the whole queue per message.
    if (this.queue.length > limit && now >= this.earliestExpiry && now >= this.nextSweepAt) this.dropExpired(step, now);
    while (this.queue.length > limit) {
      const dropped = this.options.dropPolicy === 'newest' ? this.queue.pop() : this.queue.shift();
      if (dropped === undefined) return;
      if (dropped.qos > 0) this.unstore(step, dropped);
      addEvent(
        step,
        failedEvent(
          dropped,
          new MqttError('MQTT_ERR_QUEUE_FULL', `the send queue holds its limit of ${limit} messages`),
        ),
      );
    }
  }
}

/** Held refills released by the caller's timer before batching may be judged useless for the connection. */
const RELEASES_BEFORE_JUDGING = 8;

/**
 * One PUBLISH shape, refilled for each message measured when it is queued (with a placeholder packet id), so that
 * measuring builds no packet per message; emptied again after, so it holds on to no payload.
 */
const measured: PublishPacket = {
  type: 'publish',
  topic: '',
  payload: new Uint8Array(0),
  qos: 0,
  retain: false,
  dup: false,
  packetId: undefined,
  properties: undefined,
};
const NO_PAYLOAD = measured.payload;

function measureEntry(entry: OutEntry, version: ProtocolVersion): number {
  measured.topic = entry.topic;
  measured.payload = entry.payload;
  measured.qos = entry.qos;
  measured.retain = entry.retain;
  measured.packetId = entry.qos > 0 ? 1 : undefined;
  measured.properties = version === 5 ? entry.properties : undefined;
  try {
    return encodedLength(measured, version);
  } finally {
    measured.topic = '';
    measured.payload = NO_PAYLOAD;
    measured.properties = undefined;
  }
}

/**
 * When a message's Message Expiry Interval runs out, or 0 for none. An interval of 0 sets no local deadline: the
 * message goes out as given and the server decides what 0 means.
 */
function expiryDeadline(properties: PublishProperties | undefined, now: number): number {
  const interval = properties?.messageExpiryInterval;
  return interval === undefined || interval <= 0 ? 0 : now + interval * 1000;
}

/**
 * The entry's properties with the Message Expiry Interval it has left, in whole seconds rounded up: what a server
 * does for a message it held ([MQTT-3.3.2-6]), done by the client for the time a message waited in its queue or
 * store. At least 1 (a message in flight is resent even past its deadline, and the server drops it then), and never
 * more than it was given (a system clock set back meanwhile).
 */
function withExpiryLeft(entry: OutEntry, now: number): PublishProperties {
  const properties = entry.properties!;
  const given = properties.messageExpiryInterval ?? 0;
  const left = Math.min(given, Math.max(1, Math.ceil((entry.expiresAt - now) / 1000)));
  return left === given ? properties : { ...properties, messageExpiryInterval: left };
}

function defaultLimits(keepalive: number): ServerLimits {
  return {
    receiveMaximum: 65535,
    topicAliasMaximum: 0,
    maximumPacketSize: Number.POSITIVE_INFINITY,
    maximumQoS: 2,
    retainAvailable: true,
    keepalive,
  };
}

/** The message as the application sees it: the topic resolved, and so no topic alias left to misuse. */
function delivered(packet: PublishPacket, topic: string): PublishPacket {
  if (packet.properties?.topicAlias === undefined) return topic === packet.topic ? packet : { ...packet, topic };
  const message: PublishPacket = { ...packet, topic };
  const properties = withoutTopicAlias(packet.properties);
  if (properties === undefined) delete message.properties;
  else message.properties = properties;
  return message;
}

function withoutTopicAlias(properties: PublishProperties | undefined): PublishProperties | undefined {
  if (properties === undefined) return undefined;
  const { topicAlias: _alias, ...rest } = properties;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

function keyOf(entry: OutEntry): string {
  entry.key ??= outgoingKey(entry.seq);
  return entry.key;
}
