// A minimal MQTT 3.1.1 client for the durable benchmark: raw socket, our codec, QoS 1 only, callbacks per packet.
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { Decoder, encode, type Packet } from '@otalink/mqtt';

export class BenchClient {
  readonly socket: Socket;
  readonly #decoder = new Decoder({ role: 'client', protocolVersion: 4 });
  #handler: ((packet: Packet) => void) | undefined;
  /** Packets that arrived before a handler was set (a broker may send queued PUBLISHes right behind CONNACK). */
  #early: Packet[] = [];

  get onPacket(): (packet: Packet) => void {
    return (packet) => this.#deliver(packet);
  }

  set onPacket(handler: (packet: Packet) => void) {
    this.#handler = handler;
    const early = this.#early;
    this.#early = [];
    for (const packet of early) handler(packet);
  }

  #deliver(packet: Packet): void {
    if (this.#handler === undefined) this.#early.push(packet);
    else this.#handler(packet);
  }
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      for (let p = this.#decoder.next(); p !== undefined; p = this.#decoder.next()) this.#deliver(p);
    });
  }

  /** Connects (clean session false unless `clean`) and resolves with session present. */
  static async open(port: number, clientId: string, clean = false): Promise<{ client: BenchClient; present: boolean }> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const client = new BenchClient(socket);
    const connack = new Promise<boolean>((resolve, reject) => {
      client.onPacket = (packet) => {
        if (packet.type === 'connack') {
          // What follows CONNACK waits for the caller's handler.
          client.#handler = undefined;
          if (packet.reasonCode !== 0) reject(new Error(`CONNACK ${packet.reasonCode}`));
          else resolve(packet.sessionPresent);
        }
      };
      socket.once('close', () => reject(new Error('closed before CONNACK')));
    });
    client.send({ type: 'connect', protocolVersion: 4, clientId, clean, keepalive: 600 });
    return { client, present: await connack };
  }

  send(packet: Packet): void {
    this.socket.write(encode(packet, 4));
  }

  async subscribe(filter: string): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.onPacket = (packet) => {
        if (packet.type === 'suback') resolve();
      };
    });
    this.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
    await done;
  }

  async disconnect(): Promise<void> {
    this.send({ type: 'disconnect' });
    this.socket.end();
    await this.closed;
  }
}
