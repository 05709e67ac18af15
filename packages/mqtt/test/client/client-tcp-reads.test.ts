// The mqtt:// transport reads every socket into one shared buffer (Node's `onread`) and hands the client a copy:
// bytes the client keeps (payload views, a packet cut across reads) must survive the reads that follow, of this
// connection and of others. What one read causes is written as the read returns, in one write and in order.
// And publishes settle through the session's entries rather than a table of their own: closing must still fail
// every one queued or in flight.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect, type Message, type MqttClient } from '../../src/client/index.js';
import { encode } from '../../src/codec/index.js';
import type { Packet, PublishPacket } from '../../src/codec/packets.js';
import { FakeBroker } from './fake-broker.js';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function publish(topic: string, byte: number): PublishPacket {
  return { type: 'publish', topic, payload: new Uint8Array(300).fill(byte), qos: 0, retain: false, dup: false };
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

describe('mqtt:// reads', () => {
  test('what one read delivered stays intact through the next reads, on this connection and on another', async () => {
    const broker = await FakeBroker.start();
    const clients: MqttClient[] = [];
    try {
      const got: Message[][] = [[], []];
      for (const i of [0, 1]) {
        const client = await connect({ url: broker.url, protocolVersion: 5, reconnect: false });
        client.on('message', (m) => got[i]!.push(m));
        clients.push(client);
      }
      const [first, second] = broker.connections;
      first!.send(publish('a', 0x61));
      await until(() => got[0]!.length === 1, 'the first message');
      // A packet cut in two reads (the decoder holds its first part meanwhile), then reads of the other connection.
      const cut = encode(publish('b', 0x62), 5);
      first!.socket.write(cut.subarray(0, 100));
      await delay(30);
      second!.send(publish('c', 0x63));
      await until(() => got[1]!.length === 1, 'the other connection’s message');
      first!.socket.write(cut.subarray(100));
      await until(() => got[0]!.length === 2, 'the cut message');
      second!.send(publish('d', 0x64));
      await until(() => got[1]!.length === 2, 'the last message');
      const filled = (m: Message | undefined, byte: number) =>
        m !== undefined && m.payload.length === 300 && m.payload.every((b) => b === byte);
      assert.ok(filled(got[0]![0], 0x61), 'first read, after three more reads');
      assert.ok(filled(got[0]![1], 0x62), 'the packet cut across reads');
      assert.ok(filled(got[1]![0], 0x63), 'the other connection, after its next read');
      assert.ok(filled(got[1]![1], 0x64));
    } finally {
      for (const c of clients) await c.end({ force: true });
      await broker.close();
    }
  });

  test('what one read causes leaves in one write as the read returns, in order, nothing held back', async () => {
    const broker = await FakeBroker.start({
      connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 1 } }),
      onPublish: () => 'ignore',
    });
    try {
      const client = await connect({ url: broker.url, protocolVersion: 5, reconnect: false });
      // A listener publishing from inside the read: its message joins the same write, after the PUBACK before it.
      client.on('message', (m) => {
        if (m.topic === 'in/1') void client.publish('echo', 'x');
      });
      const first = client.publish('t', 'm1', { qos: 1 });
      const second = client.publish('t', 'm2', { qos: 1 });
      await broker.until(() => broker.publishes.length === 1);
      const conn = broker.latest!;
      const chunksBefore = conn.chunks;
      const receivedBefore = conn.received.length;
      const inbound = (qos: 1 | 2, packetId: number): PublishPacket => ({
        type: 'publish',
        topic: `in/${qos}`,
        payload: new Uint8Array([qos]),
        qos,
        retain: false,
        dup: false,
        packetId,
      });
      const batch: Packet[] = [
        { type: 'puback', packetId: broker.publishes[0]!.packetId! },
        inbound(1, 7),
        inbound(2, 8),
      ];
      conn.socket.write(Buffer.concat(batch.map((p) => encode(p, 5))));
      await broker.until(() => conn.received.length - receivedBefore >= 4, 5000, 'the answers');
      await first;
      await delay(30);
      const answers = conn.received
        .slice(receivedBefore)
        .map((p) => (p.type === 'publish' ? `publish:${p.topic}` : `${p.type}:${'packetId' in p ? p.packetId : ''}`));
      assert.deepEqual(answers, ['publish:t', 'puback:7', 'publish:echo', 'pubrec:8']);
      assert.equal(conn.chunks - chunksBefore, 1, 'one write for the whole read');
      conn.send({ type: 'puback', packetId: broker.publishes[1]!.packetId! });
      assert.equal((await second).reasonCode, 0);
      await client.end({ force: true });
    } finally {
      await broker.close();
    }
  });

  test('end({ force }) fails every publish still queued or in flight, once', async () => {
    const broker = await FakeBroker.start({
      connack: () => ({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 2 } }),
      onPublish: () => 'ignore',
    });
    try {
      const client = await connect({ url: broker.url, protocolVersion: 5, reconnect: false });
      const outcomes: string[] = [];
      const all = [1, 2, 3, 4, 5].map((n) =>
        client.publish('t', `m${n}`, { qos: 1 }).then(
          () => outcomes.push(`${n}: resolved`),
          (err: { code?: string }) => outcomes.push(`${n}: ${err.code}`),
        ),
      );
      await broker.until(() => broker.publishes.length === 2);
      assert.deepEqual(client.pendingCount, { inflight: 2, queued: 3 });
      await client.end({ force: true });
      await Promise.all(all);
      assert.deepEqual(
        outcomes.sort(),
        [1, 2, 3, 4, 5].map((n) => `${n}: MQTT_ERR_CLIENT_CLOSED`),
      );
    } finally {
      await broker.close();
    }
  });
});
