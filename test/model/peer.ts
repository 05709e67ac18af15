// One client connection of the model run, on a TCP socket or a WebSocket (subprotocol mqtt): it records every PUBLISH it receives (topic aliases
// resolved) and checks what a client can see of the broker's side of the protocol: Receive Maximum, Maximum
// Packet Size, Topic Alias Maximum, packet ids in use. Acknowledgements wait for the next settle round, so the
// broker's in-flight window is actually exercised.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import { Decoder, encode } from '../../packages/mqtt/src/codec/index.js';
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
} from '../../packages/mqtt/src/codec/packets.js';
import { propertiesOf, signatureOf } from './properties.js';
import { realNow, realTimer } from './real-time.js';
import type { ConnectionLimits } from './reference.js';

export interface Received {
  tag: string;
  packetId?: number;
  topic: string;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  subscriptionIds: number[];
  /** The message's note (its user property), and all its passed-through 5.0 properties (signatureOf). */
  note?: string;
  props?: string;
}

/**
 * What a client keeps of its session between connections (as a client's store does): deliveries it has not
 * acknowledged, which the broker must send again with DUP set and the same packet id, and QoS 2 ones it answered
 * with PUBREC, for which the broker must send PUBREL again and never the PUBLISH.
 */
export interface ClientSessionState {
  unacknowledged: Map<number, { qos: QoS; tag: string }>;
  released: Set<number>;
}

/** An application message as the runner sends it; the note gives its 5.0 properties (properties.ts). */
export interface WireMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  note?: string;
  /** Message Expiry Interval in seconds, in place of the note's (a run on virtual time). */
  expiry?: number;
}

/** When acknowledgements go out: at each settle round, never (all held), or all but PUBCOMP. */
export type AckMode = 'prompt' | 'hold' | 'hold-pubcomp';

const decoder = new TextDecoder();

/** The tag is the payload up to its first `|` (big payloads pad after it); an empty payload clears a retained one. */
export function tagOf(topic: string, payload: Uint8Array): string {
  if (payload.length === 0) return `clear:${topic}`;
  const text = decoder.decode(payload);
  const bar = text.indexOf('|');
  return bar < 0 ? text : text.slice(0, bar);
}

export class Peer {
  readonly received: Received[] = [];
  readonly violations: string[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;
  /** Set by the server's DISCONNECT (5.0). */
  disconnectReason: number | undefined;
  /** Bumped by every PUBLISH or PUBREL from the server: a settle round that saw none is quiet. */
  activity = 0;
  serverTopicAliasMaximum = 0;
  readonly #decoder: Decoder;
  readonly #responses: Packet[] = [];
  #wake: (() => void) | undefined;
  ackMode: AckMode = 'prompt';
  /** Off for a peer broker known not to keep to it (see Profile). */
  checksReceiveMaximum = true;
  /** QoS 1/2 deliveries not yet completed by us (PUBACK, or PUBCOMP for QoS 2), by packet id. */
  readonly #inflight = new Map<number, { qos: QoS; tag: string }>();
  /** QoS 2 ids we sent PUBREC for. */
  readonly #pubrecSent = new Set<number>();
  /** Deliveries of an earlier connection the broker still owes us again (ClientSessionState.unacknowledged). */
  #owed = new Map<number, { qos: QoS; tag: string }>();
  readonly #pendingAcks: Packet[] = [];
  readonly #aliasesIn = new Map<number, string>();
  readonly #aliasesOut = new Map<string, number>();
  #nextPacketId = 1;

  private constructor(
    readonly id: string,
    readonly socket: Duplex,
    readonly version: ProtocolVersion,
    readonly limits: ConnectionLimits,
  ) {
    this.#decoder = new Decoder({
      role: 'client',
      protocolVersion: version,
      maximumPacketSize: limits.maximumPacketSize,
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.#wake?.();
        resolve();
      });
    });
  }

  static async open(
    port: number,
    id: string,
    version: ProtocolVersion,
    limits: ConnectionLimits,
    transport: 'tcp' | 'ws' = 'tcp',
  ): Promise<Peer> {
    if (transport === 'ws') {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt');
      await once(ws, 'open');
      // Not half-open: the broker's close frame ends both sides, as a TCP close does.
      return new Peer(id, createWebSocketStream(ws, { allowHalfOpen: false }), version, limits);
    }
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new Peer(id, socket, version, limits);
  }

  #violation(what: string): void {
    this.violations.push(`${this.id}: ${what}`);
  }

  #onData(chunk: Buffer): void {
    try {
      this.#decoder.push(chunk);
      for (let p = this.#decoder.next(); p !== undefined; p = this.#decoder.next()) this.#onPacket(p);
    } catch (error) {
      this.#violation(`undecodable bytes from the broker: ${(error as Error).message}`);
      this.socket.destroy();
    }
    this.#wake?.();
  }

  #onPacket(p: Packet): void {
    if (p.type === 'publish') {
      this.#onPublish(p);
      return;
    }
    if (p.type === 'pubrel') {
      this.activity++;
      if (!this.#pubrecSent.has(p.packetId)) this.#violation(`PUBREL for packet id ${p.packetId} not awaiting one`);
      this.#pendingAcks.push({ type: 'pubcomp', packetId: p.packetId });
      return;
    }
    if (p.type === 'connack' && !p.sessionPresent) {
      // No session to continue: what the client kept of the old one is discarded.
      this.#owed.clear();
      this.#inflight.clear();
      this.#pubrecSent.clear();
    } else if (p.type === 'connack' && this.limits.maximumPacketSize !== undefined) {
      // What is too large for this connection the broker discards as if sent ([MQTT-3.1.2-25]): no longer owed.
      for (const [id, d] of this.#owed) if (d.tag.endsWith('-big')) this.#owed.delete(id);
    }
    if (p.type === 'disconnect') {
      this.disconnectReason = p.reasonCode ?? 0;
      return;
    }
    this.#responses.push(p);
  }

  #onPublish(p: PublishPacket): void {
    this.activity++;
    let topic = p.topic;
    const alias = p.properties?.topicAlias;
    if (alias !== undefined) {
      if (alias === 0 || alias > this.limits.topicAliasMaximum)
        this.#violation(`topic alias ${alias} over our maximum`);
      if (topic === '') {
        const known = this.#aliasesIn.get(alias);
        if (known === undefined) this.#violation(`unknown topic alias ${alias}`);
        topic = known ?? '';
      } else {
        this.#aliasesIn.set(alias, topic);
      }
    }
    const tag = tagOf(topic, p.payload);
    if (p.qos > 0) {
      const id = p.packetId!;
      const owed = this.#owed.get(id);
      if (owed !== undefined) {
        this.#owed.delete(id);
        if (!p.dup || owed.tag !== tag) {
          this.#violation(`packet id ${id} of an unacknowledged ${owed.tag} came back as ${tag} with DUP ${p.dup}`);
        }
      } else if (this.#inflight.has(id)) {
        this.#violation(`packet id ${id} reused while still in flight (dup ${p.dup})`);
      }
      this.#inflight.set(id, { qos: p.qos, tag });
      if (this.#inflight.size > this.limits.receiveMaximum && this.checksReceiveMaximum) {
        this.#violation(
          `${this.#inflight.size} deliveries in flight, over our Receive Maximum ${this.limits.receiveMaximum}`,
        );
      }
      this.#pendingAcks.push(p.qos === 1 ? { type: 'puback', packetId: id } : { type: 'pubrec', packetId: id });
    }
    const { topicAlias: _alias, subscriptionIdentifiers: _ids, ...passed } = p.properties ?? {};
    const props = signatureOf(Object.keys(passed).length === 0 ? undefined : passed);
    const note = p.properties?.userProperties?.find(([k]) => k === 'note')?.[1];
    this.received.push({
      tag,
      packetId: p.packetId,
      topic,
      qos: p.qos,
      retain: p.retain,
      dup: p.dup,
      subscriptionIds: [...(p.properties?.subscriptionIdentifiers ?? [])].sort((a, b) => a - b),
      note,
      props,
    });
  }

  send(packet: Packet): void {
    if (!this.closed) this.socket.write(encode(packet, this.version));
  }

  writeRaw(bytes: number[]): void {
    if (!this.closed) this.socket.write(Uint8Array.from(bytes));
  }

  /** Sends the acknowledgements held since the last round (as `ackMode` allows); PUBACK and PUBCOMP end a flight. */
  flushAcks(): void {
    if (this.ackMode === 'hold') return;
    const held: Packet[] = [];
    for (const ack of this.#pendingAcks.splice(0)) {
      if (ack.type === 'pubcomp' && this.ackMode === 'hold-pubcomp') {
        held.push(ack);
        continue;
      }
      if (ack.type === 'puback' || ack.type === 'pubcomp') this.#inflight.delete(ack.packetId);
      if (ack.type === 'pubcomp') this.#pubrecSent.delete(ack.packetId);
      if (ack.type === 'pubrec') this.#pubrecSent.add(ack.packetId);
      this.send(ack);
    }
    this.#pendingAcks.push(...held);
  }

  /** The session state this connection leaves behind (see ClientSessionState). */
  sessionState(): ClientSessionState {
    const unacknowledged = new Map(this.#owed);
    for (const [id, d] of this.#inflight) if (!this.#pubrecSent.has(id)) unacknowledged.set(id, d);
    return { unacknowledged, released: new Set(this.#pubrecSent) };
  }

  /** Takes over an earlier connection's state before CONNECT (dropped again if the CONNACK has no session). */
  restore(state: ClientSessionState): void {
    this.#owed = new Map(state.unacknowledged);
    for (const id of state.released) {
      this.#pubrecSent.add(id);
      this.#inflight.set(id, { qos: 2, tag: '(released)' });
    }
  }

  /** Deliveries the broker still owes from an earlier connection (empty once it has resent them all). */
  stillOwed(): string[] {
    return [
      ...[...this.#owed.values()].map((d) => `${d.tag} (not resent)`),
      ...[...this.#pubrecSent].filter((id) => this.#inflight.get(id)?.tag === '(released)').map((id) => `PUBREL ${id}`),
    ];
  }

  /** The next response (anything but PUBLISH and PUBREL), which must be of `type`. */
  async expect<T extends Packet['type']>(type: T, timeoutMs = 5000): Promise<Extract<Packet, { type: T }>> {
    const deadline = realNow() + timeoutMs;
    for (;;) {
      const p = this.#responses.shift();
      if (p !== undefined) {
        if (p.type !== type) throw new Error(`${this.id}: expected ${type}, got ${p.type}`);
        return p as Extract<Packet, { type: T }>;
      }
      if (this.closed) throw new Error(`${this.id}: connection closed while awaiting ${type}`);
      const left = deadline - realNow();
      if (left <= 0) throw new Error(`${this.id}: no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = realTimer(left, resolve);
        this.#wake = () => {
          timer.clear();
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  async connect(packet: Omit<ConnectPacket, 'type' | 'protocolVersion'>): Promise<ConnackPacket> {
    this.send({ type: 'connect', protocolVersion: this.version, ...packet });
    const connack = await this.expect('connack');
    this.serverTopicAliasMaximum = connack.properties?.topicAliasMaximum ?? 0;
    return connack;
  }

  packetId(): number {
    const id = this.#nextPacketId;
    this.#nextPacketId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** PUBLISH through its whole flow; returns the PUBACK or PUBREC reason code (0 in 3.1.1). */
  async publish(message: WireMessage, useAlias: boolean): Promise<number> {
    let topic = message.topic;
    let alias: number | undefined;
    if (this.version === 5 && useAlias && this.serverTopicAliasMaximum > 0) {
      const known = this.#aliasesOut.get(topic);
      if (known !== undefined) {
        alias = known;
        topic = '';
      } else if (this.#aliasesOut.size < this.serverTopicAliasMaximum) {
        alias = this.#aliasesOut.size + 1;
        this.#aliasesOut.set(topic, alias);
      }
    }
    const packetId = message.qos > 0 ? this.packetId() : undefined;
    this.sendPublish({ ...message, topic }, packetId, false, alias);
    // A QoS 0 message has no acknowledgement: the PINGRESP after it says the broker has routed it.
    if (message.qos === 0) {
      await this.ping();
      return 0;
    }
    if (message.qos === 1) return (await this.expect('puback')).reasonCode ?? 0;
    const rec = await this.expect('pubrec');
    this.send({ type: 'pubrel', packetId: packetId! });
    await this.expect('pubcomp');
    return rec.reasonCode ?? 0;
  }

  /** One PUBLISH as given, without waiting (also the runner's lost links and repeated packets). */
  sendPublish(message: WireMessage, packetId: number | undefined, dup: boolean, topicAlias?: number): void {
    const { note, expiry, ...fields } = message;
    let properties: PublishPacket['properties'];
    if (this.version === 5) {
      properties = note === undefined ? {} : propertiesOf(note, expiry);
      if (topicAlias !== undefined) properties.topicAlias = topicAlias;
    }
    this.send({ type: 'publish', ...fields, packetId, dup, properties });
  }

  async ping(): Promise<void> {
    this.send({ type: 'pingreq' });
    await this.expect('pingresp');
  }

  /** Everything received since the last call. */
  take(): Received[] {
    return this.received.splice(0);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
