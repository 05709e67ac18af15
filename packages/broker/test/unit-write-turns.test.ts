// When output is written: the first socket read of an event-loop turn has its output written before the read's
// handler returns (no setImmediate hop at low load), while later reads of the same turn are coalesced into one write
// per socket at the turn's end. Driven with in-memory streams and a turn clock that moves only when a test lets a turn
// pass (nextTurn), so that "the same turn" is exact.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Packet } from '@otalink/mqtt';
import { type BrokerCore, TURN_PACKETS } from '../src/core.js';
import { bareCore as plainCore } from './support/bare-core.js';
import { attach, connected, type Peer, nextTurn as turnPasses } from './support/memory-peer.js';

/** Reads between two nextTurn() calls are reads of one event-loop turn, however long the test takes over them. */
let turnClock = 0;
const nextTurn = (): Promise<void> => {
  turnClock += 1;
  return turnPasses();
};
function bareCore(): BrokerCore {
  const core = plainCore();
  core.turnClock = () => turnClock;
  return core;
}

/** A client subscribed at QoS 1 to the topic it publishes to, a turn later, with nothing written yet. */
async function selfSubscribed(clientId: string): Promise<Peer> {
  const peer = await connected(bareCore(), clientId);
  peer.read({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'turns/t', qos: 1 }] });
  await nextTurn();
  peer.writes.length = 0;
  return peer;
}

const publish = (packetId: number): Packet => ({
  type: 'publish',
  topic: 'turns/t',
  payload: new Uint8Array([packetId]),
  qos: 1,
  retain: false,
  dup: false,
  packetId,
});

describe('output per event-loop turn', () => {
  test('a lone read has its answer written before its handler returns', () => {
    const core = bareCore();
    const peer = attach(core);
    peer.read({ type: 'connect', protocolVersion: 4, clientId: 'lone', clean: true, keepalive: 0 });
    assert.deepEqual(
      peer.writes.map((w) => [...w]),
      [[0x20, 0x02, 0x00, 0x00]],
    );
  });

  test('a QoS 1 publish to itself: delivery and PUBACK leave in one write, at once', async () => {
    const peer = await selfSubscribed('self');
    peer.read(publish(7));
    assert.equal(peer.writes.length, 1);
    const bytes = peer.writes[0]!;
    assert.equal(bytes[0]! >> 4, 3, 'the delivery first');
    assert.deepEqual([...bytes.subarray(bytes.length - 4)], [0x40, 0x02, 0x00, 0x07], 'then the PUBACK');
  });

  test('a read well after the last (no turn end in between) starts a turn: written at once, no setImmediate needed', async () => {
    const peer = await selfSubscribed('spaced');
    peer.read(publish(1));
    assert.equal(peer.writes.length, 1, 'the first read of a turn is written at once');
    // Right behind it (the clock has not moved): another read of the same poll, so its output waits for the turn end.
    peer.read(publish(2));
    assert.equal(peer.writes.length, 1);
    await nextTurn();
    assert.equal(peer.writes.length, 2);
    // A millisecond later, with nothing scheduled since that turn ended: a new turn, written at once again.
    turnClock += 1;
    peer.read(publish(3));
    assert.equal(peer.writes.length, 3);
    turnClock += 1;
    peer.read(publish(4));
    assert.equal(peer.writes.length, 4, 'each spaced read by itself, without waiting for a setImmediate');
  });

  test('later reads of a busy turn are coalesced into one write per socket at its end', async () => {
    const core = bareCore();
    const subscriber = await connected(core, 'sub');
    subscriber.read({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'turns/t', qos: 0 }] });
    await nextTurn();
    subscriber.writes.length = 0;
    const publishers = [await connected(core, 'p1'), await connected(core, 'p2'), await connected(core, 'p3')];
    await nextTurn();
    for (const [i, publisher] of publishers.entries()) publisher.read(publish(i + 1));
    // The first read's delivery and PUBACK are out; the two later ones wait for the turn's end.
    assert.equal(subscriber.writes.length, 1);
    assert.deepEqual(
      publishers.map((p) => p.writes.length),
      [1, 0, 0],
    );
    await nextTurn();
    assert.equal(subscriber.writes.length, 2, 'the two later deliveries in one write');
    assert.deepEqual(
      publishers.map((p) => p.writes.length),
      [1, 1, 1],
    );
    // The next turn's first read is written at once again.
    publishers[0]!.read(publish(9));
    assert.equal(subscriber.writes.length, 3);
  });

  test('a turn that has handled TURN_PACKETS packets stops reading until the next turn', async () => {
    const core = bareCore();
    // 40 publishers whose reads (2 000 QoS 0 publishes each, to a topic nobody subscribes to: no output, so only the
    // packet bound can end the turn) all arrive in one turn.
    const publishers: Peer[] = [];
    for (let i = 0; i < 40; i++) publishers.push(await connected(core, `burst-${i}`));
    const packets: Packet[] = [];
    for (let i = 0; i < 2000; i++) {
      packets.push({
        type: 'publish',
        topic: 'turns/none',
        payload: new Uint8Array(0),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    for (const publisher of publishers) publisher.read(...packets);
    const total = publishers.length * packets.length;
    const handled = core.stats.messagesIn[0];
    assert.ok(handled >= TURN_PACKETS && handled < TURN_PACKETS + 2 * packets.length + publishers.length, `${handled}`);
    assert.ok(
      publishers.some((publisher) => publisher.socket.isPaused()),
      'publishers read past the bound wait',
    );
    await nextTurn();
    await nextTurn();
    assert.equal(core.stats.messagesIn[0], total, 'the rest in the next turns');
    assert.ok(publishers.every((publisher) => !publisher.socket.isPaused()));
  });
});
