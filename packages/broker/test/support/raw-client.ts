// Test support: a broker on 127.0.0.1:0 and a raw client that writes encoded packets and awaits decoded ones.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type ConnackPacket,
  type ConnectPacket,
  Decoder,
  encode,
  type Packet,
  type ProtocolVersion,
} from '@otalink/mqtt';
import { pino } from 'pino';
import { type Broker, type BrokerOptions, createBroker } from '../../src/index.js';

export const silent = pino({ level: 'silent' });

export interface TestBroker {
  broker: Broker;
  port: number;
  close(): Promise<void>;
}

export async function startBroker(options: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: silent,
    sysIntervalSeconds: 0,
    ...options,
  });
  await broker.listen();
  const port = broker.addresses()[0]!.port;
  return { broker, port, close: () => broker.close() };
}

/** Runs fn against a fresh broker and closes it, whatever fn does. */
export async function withBroker<T>(options: Partial<BrokerOptions>, fn: (b: TestBroker) => Promise<T>): Promise<T> {
  const b = await startBroker(options);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

/** CONNECT options of a persistent session (5.0: expiry one hour). */
export const persistent = (
  clientId: string,
  version: 4 | 5 = 5,
  extra: Partial<ConnectOptions> = {},
): ConnectOptions => ({
  version,
  clientId,
  clean: false,
  properties: version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
  ...extra,
});

type PacketOf<T extends Packet['type']> = Extract<Packet, { type: T }>;

export class RawClient {
  readonly socket: Duplex;
  version: ProtocolVersion;
  readonly decoder: Decoder;
  readonly received: Packet[] = [];
  #waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;
  decodeError: unknown;

  constructor(socket: Duplex, version: ProtocolVersion) {
    this.socket = socket;
    this.version = version;
    this.decoder = new Decoder({ role: 'client', protocolVersion: version });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
        for (let p = this.decoder.next(); p !== undefined; p = this.decoder.next()) this.received.push(p);
      } catch (error) {
        this.decodeError = error;
      }
      this.#wake();
    });
    socket.on('error', () => {});
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.#wake();
        resolve();
      });
    });
  }

  static async open(port: number, version: ProtocolVersion = 4): Promise<RawClient> {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawClient(socket, version);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Sends CONNECT and awaits CONNACK over an already open stream. */
  async handshake(options: ConnectOptions = {}): Promise<ConnackPacket> {
    const { version: _v, ...rest } = options;
    this.send({
      type: 'connect',
      protocolVersion: this.version,
      clientId: 'test',
      clean: true,
      keepalive: 60,
      ...rest,
    });
    return this.expect('connack');
  }

  send(packet: Packet): void {
    this.socket.write(encode(packet, this.version));
  }

  writeRaw(bytes: Uint8Array | number[]): void {
    this.socket.write(Uint8Array.from(bytes));
  }

  /**
   * Sends `packet` with the string `from` in its encoding replaced by `to`, byte for byte (same length): for what our
   * encoder refuses to write, such as a wildcard in a Response Topic.
   */
  sendPatched(packet: Packet, from: string, to: string): void {
    const bytes = encode(packet, this.version);
    const [a, b] = [Buffer.from(from), Buffer.from(to)];
    const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).indexOf(a);
    if (a.length !== b.length || at < 0) throw new Error(`cannot patch "${from}" into "${to}"`);
    bytes.set(b, at);
    this.socket.write(bytes);
  }

  /**
   * The next packet (any type), or throws after `timeoutMs`. The default bounds a wait for a packet that must come,
   * never a speed: generous, as a broker in a child process on a loaded machine may take seconds.
   */
  async next(timeoutMs = 10_000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const packet = this.received.shift();
      if (packet !== undefined) return packet;
      if (this.closed) throw new Error('connection closed while waiting for a packet');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next packet, which must be of `type`. */
  async expect<T extends Packet['type']>(type: T, timeoutMs = 10_000): Promise<PacketOf<T>> {
    const packet = await this.next(timeoutMs);
    if (packet.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(summary(packet))}`);
    return packet as PacketOf<T>;
  }

  /** Resolves true if nothing arrives within `ms` (for "must not be delivered" checks). */
  async silentFor(ms: number): Promise<boolean> {
    if (this.received.length > 0) return false;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.received.length === 0;
  }

  /** Waits for the server to close the connection; returns the packets that came before. */
  async expectClose(timeoutMs = 3000): Promise<Packet[]> {
    const timer = setTimeout(() => this.socket.destroy(new Error('timeout')), timeoutMs);
    await this.closedPromise;
    clearTimeout(timer);
    if (!this.closedByServer()) throw new Error(`the server did not close the connection within ${timeoutMs} ms`);
    return this.received.splice(0);
  }

  closedByServer(): boolean {
    return !(this.socket.errored instanceof Error && this.socket.errored.message === 'timeout');
  }

  end(): void {
    this.socket.destroy();
  }
}

export interface ConnectOptions extends Partial<Omit<ConnectPacket, 'type' | 'protocolVersion'>> {
  version?: ProtocolVersion;
}

/** Opens a socket, sends CONNECT, awaits CONNACK (which must accept unless `expectRefusal`). */
export async function connectClient(
  port: number,
  options: ConnectOptions = {},
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const version = options.version ?? 4;
  const client = await RawClient.open(port, version);
  const { version: _v, ...rest } = options;
  client.send({
    type: 'connect',
    protocolVersion: version,
    clientId: 'test',
    clean: true,
    keepalive: 60,
    ...rest,
  });
  const connack = await client.expect('connack');
  return { client, connack };
}

/** Connects and asserts the CONNACK accepted. */
export async function connected(port: number, options: ConnectOptions = {}): Promise<RawClient> {
  const { client, connack } = await connectClient(port, options);
  if (connack.reasonCode !== 0) throw new Error(`CONNACK refused: 0x${connack.reasonCode.toString(16)}`);
  return client;
}

export function summary(packet: Packet): unknown {
  if (packet.type === 'publish') {
    return { ...packet, payload: new TextDecoder().decode(packet.payload) };
  }
  return packet;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Subscribes and awaits SUBACK; returns its reason codes. */
export async function subscribe(
  client: RawClient,
  topicFilter: string,
  qos: 0 | 1 | 2 = 0,
  extra: { packetId?: number; noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: 0 | 1 | 2 } = {},
  properties?: { subscriptionIdentifiers?: number[] },
): Promise<number[]> {
  const { packetId = 1, ...options } = extra;
  client.send({ type: 'subscribe', packetId, subscriptions: [{ topicFilter, qos, ...options }], properties });
  const suback = await client.expect('suback');
  return suback.reasonCodes;
}

/** A QoS 1 or 2 PUBLISH through its whole flow (PUBACK, or PUBREC, PUBREL, PUBCOMP); returns the PUBACK or PUBREC. */
export async function publishQos(
  client: RawClient,
  topic: string,
  payload: string,
  qos: 1 | 2,
  packetId: number,
  retain = false,
) {
  client.send({ type: 'publish', topic, payload: text(payload), qos, retain, dup: false, packetId });
  if (qos === 1) return client.expect('puback');
  const rec = await client.expect('pubrec');
  client.send({ type: 'pubrel', packetId });
  await client.expect('pubcomp');
  return rec;
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads `client` for one turn every `everyMs`, as a slow line would; clear the returned timer to stop. */
export function readSlowly(client: RawClient, everyMs: number): NodeJS.Timeout {
  client.socket.pause();
  return setInterval(() => {
    client.socket.resume();
    setImmediate(() => client.socket.pause());
  }, everyMs);
}
