// A scriptable MQTT server for client tests, built on our codec: it acks, withholds acks, drops the line or
// injects packets as a test tells it, and records what it received. It keeps just enough session state (per
// client id: incoming QoS 2 ids) to show whether a client's messages were delivered exactly once.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Decoder, encode } from '../../src/codec/index.js';
import type {
  AckProperties,
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from '../../src/codec/packets.js';

export type Verdict = 'ack' | 'ignore' | 'drop';

export interface FakeBrokerScript {
  /** The CONNACK to send; null sends nothing (the test continues the handshake itself, e.g. with AUTH). */
  connack?: (connect: ConnectPacket, sessionPresent: boolean, conn: FakeConnection) => ConnackPacket | null;
  onAuth?: (packet: AuthPacket, conn: FakeConnection) => void;
  onPublish?: (packet: PublishPacket, conn: FakeConnection) => Verdict;
  onPubrel?: (packetId: number, conn: FakeConnection) => Verdict;
  /** Answer PINGREQ (default true). */
  pong?: boolean;
  /** SUBACK reason codes for a SUBSCRIBE (default: the QoS asked for). */
  suback?: (packet: SubscribePacket, conn: FakeConnection) => number[];
  /** SUBACK properties (5.0; default none). */
  subackProperties?: (packet: SubscribePacket) => AckProperties | undefined;
  /** UNSUBACK properties (5.0; default none). */
  unsubackProperties?: (packet: UnsubscribePacket) => AckProperties | undefined;
}

export class FakeConnection {
  version: ProtocolVersion | undefined;
  clientId = '';
  readonly received: Packet[] = [];
  /** Data events seen: how many writes of the client arrived (loopback does not split small ones). */
  chunks = 0;
  private readonly decoder = new Decoder({ role: 'server' });

  constructor(
    readonly socket: Socket,
    private readonly broker: FakeBroker,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
  }

  send(packet: Packet): void {
    if (!this.socket.destroyed) this.socket.write(encode(packet, this.version ?? 4));
  }

  drop(): void {
    this.socket.destroy();
  }

  private onData(chunk: Uint8Array): void {
    this.chunks++;
    this.decoder.push(chunk);
    for (;;) {
      let packet: Packet | undefined;
      try {
        packet = this.decoder.next();
      } catch {
        this.drop();
        return;
      }
      if (packet === undefined || this.socket.destroyed) return;
      this.received.push(packet);
      this.broker.handle(this, packet);
    }
  }
}

export class FakeBroker {
  readonly connections: FakeConnection[] = [];
  /** Every PUBLISH received, in order, duplicates included. */
  readonly publishes: PublishPacket[] = [];
  /** Messages a correct broker would have forwarded: QoS 2 counted once per id until PUBREL. */
  readonly delivered: PublishPacket[] = [];
  readonly connects: ConnectPacket[] = [];
  /** Per client id: incoming QoS 2 ids awaiting PUBREL (the server's session state). */
  private readonly sessions = new Map<string, Set<number>>();
  private readonly aliases = new WeakMap<FakeConnection, Map<number, string>>();
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    public script: FakeBrokerScript,
  ) {}

  static async start(script: FakeBrokerScript = {}): Promise<FakeBroker> {
    const server = createServer();
    const broker = new FakeBroker(server, script);
    server.on('connection', (socket) => {
      broker.connections.push(new FakeConnection(socket, broker));
      broker.changed();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return broker;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    return address.port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get latest(): FakeConnection | undefined {
    return this.connections.at(-1);
  }

  /** Resolves when `predicate` holds, re-checked after every packet; fails after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  dropAll(): void {
    for (const c of this.connections) c.drop();
  }

  /** Forgets what it recorded and the connections that closed, so that a long test's memory stays its client's. */
  forget(): void {
    this.publishes.length = 0;
    this.delivered.length = 0;
    this.connects.length = 0;
    const open = this.connections.filter((c) => !c.socket.destroyed);
    this.connections.length = 0;
    this.connections.push(...open);
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private changed(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  handle(conn: FakeConnection, packet: Packet): void {
    try {
      this.respond(conn, packet);
    } finally {
      this.changed();
    }
  }

  private respond(conn: FakeConnection, packet: Packet): void {
    switch (packet.type) {
      case 'connect': {
        conn.version = packet.protocolVersion;
        conn.clientId = packet.clientId;
        this.connects.push(packet);
        const had = this.sessions.has(packet.clientId);
        if (packet.clean || !had) this.sessions.set(packet.clientId, new Set());
        const present = !packet.clean && had;
        const scripted = this.script.connack?.(packet, present, conn);
        if (scripted === null) return;
        const connack = scripted ?? { type: 'connack', sessionPresent: present, reasonCode: 0 };
        conn.send(connack);
        if (connack.reasonCode !== 0) conn.socket.end();
        return;
      }
      case 'publish': {
        let topic = packet.topic;
        const alias = packet.properties?.topicAlias;
        if (alias !== undefined) {
          const map = this.aliases.get(conn) ?? new Map<number, string>();
          this.aliases.set(conn, map);
          if (topic === '') topic = map.get(alias) ?? '<unknown alias>';
          else map.set(alias, topic);
        }
        const resolved = { ...packet, topic };
        this.publishes.push(resolved);
        const verdict = this.script.onPublish?.(packet, conn) ?? 'ack';
        const ids = this.sessions.get(conn.clientId) ?? new Set<number>();
        if (packet.qos < 2 || !ids.has(packet.packetId!)) this.delivered.push(resolved);
        if (packet.qos === 2) ids.add(packet.packetId!);
        if (verdict === 'drop') {
          conn.drop();
          return;
        }
        if (verdict === 'ignore' || packet.qos === 0) return;
        conn.send({ type: packet.qos === 1 ? 'puback' : 'pubrec', packetId: packet.packetId! });
        return;
      }
      case 'pubrel': {
        const verdict = this.script.onPubrel?.(packet.packetId, conn) ?? 'ack';
        if (verdict === 'drop') {
          conn.drop();
          return;
        }
        this.sessions.get(conn.clientId)?.delete(packet.packetId);
        if (verdict === 'ack') conn.send({ type: 'pubcomp', packetId: packet.packetId });
        return;
      }
      case 'subscribe': {
        const reasonCodes = this.script.suback?.(packet, conn) ?? packet.subscriptions.map((s) => s.qos);
        const properties = this.script.subackProperties?.(packet);
        conn.send({ type: 'suback', packetId: packet.packetId, reasonCodes, ...(properties ? { properties } : {}) });
        return;
      }
      case 'unsubscribe': {
        const properties = this.script.unsubackProperties?.(packet);
        conn.send({
          type: 'unsuback',
          packetId: packet.packetId,
          reasonCodes: conn.version === 5 ? packet.topicFilters.map(() => 0) : undefined,
          ...(properties ? { properties } : {}),
        });
        return;
      }
      case 'pingreq':
        if (this.script.pong !== false) conn.send({ type: 'pingresp' });
        return;
      case 'disconnect':
        conn.socket.end();
        return;
      case 'auth':
        this.script.onAuth?.(packet, conn);
        return;
      default:
        return;
    }
  }
}

/** A TCP server on loopback that accepts and never answers (a dead middlebox): `run` gets its port, then it closes. */
export async function withSilentServer(run: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    await run((server.address() as { port: number }).port);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}
