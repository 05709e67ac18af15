// Crash rounds: publishers and persistent subscribers at QoS 1 and 2 against a broker child process that is
// SIGKILLed at random moments and restarted on the same data directory. The clients live in this process and keep
// their protocol state across the broker's deaths (unacknowledged PUBLISH resent with DUP, PUBREL resent, the QoS 2
// receiver's packet ids). At the end: no acknowledged message lost, no QoS 2 message delivered twice to a
// subscriber, the retained message and the subscriptions intact (subscribers never subscribe again).
// 3 rounds in the normal suite, 20 with OTALINK_FULL_TESTS=1.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Packet, ProtocolVersion } from '@otalink/mqtt';
import { type BrokerChild, startChild } from './support/durable-child.js';
import { delay, RawClient, str, text } from './support/raw-client.js';

const ROUNDS = process.env.OTALINK_FULL_TESTS === '1' ? 20 : 3;

/** A client connection that may die with the broker; `run` reconnects it each round. */
abstract class Peer {
  readonly clientId: string;
  readonly version: ProtocolVersion;
  client: RawClient | undefined;
  constructor(clientId: string, version: ProtocolVersion) {
    this.clientId = clientId;
    this.version = version;
  }
  async connect(port: number): Promise<boolean> {
    const client = await RawClient.open(port, this.version);
    client.send({
      type: 'connect',
      protocolVersion: this.version,
      clientId: this.clientId,
      clean: false,
      keepalive: 60,
      properties: this.version === 5 ? { sessionExpiryInterval: 86_400 } : undefined,
    });
    const connack = await client.expect('connack', 10_000);
    assert.equal(connack.reasonCode, 0);
    this.client = client;
    return connack.sessionPresent;
  }
}

class Subscriber extends Peer {
  /** QoS 2 packet ids received and not yet released (the receiver's side of exactly-once). */
  readonly pendingQos2 = new Set<number>();
  readonly counts = new Map<string, number>();
  readonly qos2Counts = new Map<string, number>();

  record(id: string, qos: number): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
    if (qos === 2) this.qos2Counts.set(id, (this.qos2Counts.get(id) ?? 0) + 1);
  }

  /** Handles packets until the connection ends. */
  async serve(): Promise<void> {
    const client = this.client!;
    for (;;) {
      let packet: Packet;
      try {
        packet = await client.next(3_600_000);
      } catch {
        return;
      }
      if (packet.type === 'publish') {
        const id = str(packet.payload);
        if (packet.qos === 1) {
          this.record(id, 1);
          client.send({ type: 'puback', packetId: packet.packetId! });
        } else if (packet.qos === 2) {
          if (!this.pendingQos2.has(packet.packetId!)) {
            this.pendingQos2.add(packet.packetId!);
            this.record(id, 2);
          }
          client.send({ type: 'pubrec', packetId: packet.packetId! });
        }
      } else if (packet.type === 'pubrel') {
        this.pendingQos2.delete(packet.packetId);
        client.send({ type: 'pubcomp', packetId: packet.packetId });
      }
    }
  }
}

type Outstanding = { id: string; packetId: number; stage: 'publish' | 'pubrel' };

class Publisher extends Peer {
  readonly qos: 1 | 2;
  readonly acked = new Set<string>();
  #seq = 0;
  #packetId = 0;
  outstanding: Outstanding | undefined;
  stopping = false;
  constructor(clientId: string, version: ProtocolVersion, qos: 1 | 2) {
    super(clientId, version);
    this.qos = qos;
  }

  /** Publishes one message at a time until told to stop or the connection dies; resumes an interrupted exchange first. */
  async run(): Promise<void> {
    const client = this.client!;
    try {
      for (;;) {
        let current = this.outstanding;
        let resend = true;
        if (current === undefined) {
          if (this.stopping) return;
          this.#packetId = (this.#packetId % 60_000) + 1;
          current = { id: `${this.clientId}:${++this.#seq}`, packetId: this.#packetId, stage: 'publish' };
          this.outstanding = current;
          resend = false;
        }
        if (current.stage === 'publish') {
          client.send({
            type: 'publish',
            topic: `crash/${this.clientId}`,
            payload: text(current.id),
            qos: this.qos,
            retain: false,
            dup: resend,
            packetId: current.packetId,
          });
          const ack = await client.expect(this.qos === 1 ? 'puback' : 'pubrec', 3_600_000);
          assert.equal(ack.packetId, current.packetId);
          assert.ok((ack.reasonCode ?? 0) < 0x80, `refused: 0x${(ack.reasonCode ?? 0).toString(16)}`);
          this.acked.add(current.id);
          if (this.qos === 1) {
            this.outstanding = undefined;
            continue;
          }
          current.stage = 'pubrel';
        }
        client.send({ type: 'pubrel', packetId: current.packetId });
        const comp = await client.expect('pubcomp', 3_600_000);
        assert.equal(comp.packetId, current.packetId);
        this.outstanding = undefined;
      }
    } catch (error) {
      if (!client.closed) throw error;
    }
  }
}

test(`crash rounds: SIGKILL the broker ${ROUNDS} times under QoS 1/2 load, nothing acknowledged lost, no QoS 2 duplicate`, {
  timeout: ROUNDS * 60_000,
}, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-crash-'));
  const subscribers = [new Subscriber('sub-a', 5), new Subscriber('sub-b', 4)];
  const publishers = [
    new Publisher('pub-q1-v4', 4, 1),
    new Publisher('pub-q1-v5', 5, 1),
    new Publisher('pub-q2-v4', 4, 2),
    new Publisher('pub-q2-v5', 5, 2),
  ];
  let broker: BrokerChild | undefined;
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      broker = await startChild(dataDir, { limits: { maxQueuedMessages: 1_000_000 } });
      const last = round === ROUNDS;
      for (const subscriber of subscribers) {
        const present = await subscriber.connect(broker.port);
        if (round === 0) {
          subscriber.client!.send({
            type: 'subscribe',
            packetId: 1,
            subscriptions: [{ topicFilter: 'crash/#', qos: 2 }],
          });
          await subscriber.client!.expect('suback');
        } else {
          assert.equal(present, true, `${subscriber.clientId}: session lost in round ${round}`);
        }
      }
      const serving = subscribers.map((s) => s.serve());
      if (round === 0) {
        const setter = await RawClient.open(broker.port, 5);
        await setter.handshake({ clientId: 'retainer', clean: true });
        setter.send({
          type: 'publish',
          topic: 'fleet/config',
          payload: text('v1'),
          qos: 1,
          retain: true,
          dup: false,
          packetId: 1,
        });
        await setter.expect('puback');
        setter.end();
      }
      for (const publisher of publishers) {
        publisher.stopping = last;
        await publisher.connect(broker.port);
      }
      const running = publishers.map((p) => p.run());
      if (!last) {
        await delay(150 + Math.floor(Math.random() * 900));
        broker.child.kill('SIGKILL');
        await broker.exited;
        await Promise.all(running);
        for (const peer of [...publishers, ...subscribers]) peer.client?.end();
        await Promise.all(serving);
        continue;
      }
      // Last round: finish what is outstanding, then wait until every subscriber has every acknowledged message.
      await Promise.all(running);
      const acked = publishers.flatMap((p) => [...p.acked]);
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && subscribers.some((s) => acked.some((id) => !s.counts.has(id)))) await delay(100);
      const reader = await RawClient.open(broker.port, 5);
      await reader.handshake({ clientId: 'reader', clean: true });
      reader.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'fleet/#', qos: 1 }] });
      await reader.expect('suback');
      const retained = await reader.expect('publish');
      assert.equal(str(retained.payload), 'v1');
      reader.end();
      for (const peer of [...publishers, ...subscribers]) peer.client?.end();
      await Promise.all(serving);
      const lost = subscribers.flatMap((s) =>
        acked.filter((id) => !s.counts.has(id)).map((id) => `${s.clientId} ${id}`),
      );
      const duplicates = subscribers.flatMap((s) =>
        [...s.qos2Counts].filter(([, n]) => n > 1).map(([id, n]) => `${s.clientId} ${id} x${n}`),
      );
      console.log(
        `# crash rounds: ${ROUNDS} kills, ${acked.length} acknowledged messages, ` +
          `${subscribers.map((s) => `${s.clientId} received ${s.counts.size}`).join(', ')}, lost ${lost.length}, QoS 2 duplicates ${duplicates.length}`,
      );
      assert.ok(acked.length > 0, 'nothing was acknowledged');
      assert.deepEqual(lost.slice(0, 10), [], `acknowledged messages lost (${lost.length})`);
      assert.deepEqual(duplicates.slice(0, 10), [], `QoS 2 duplicates (${duplicates.length})`);
    }
  } finally {
    if (broker !== undefined && broker.child.exitCode === null && broker.child.signalCode === null) {
      broker.child.kill('SIGTERM');
      await broker.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});
