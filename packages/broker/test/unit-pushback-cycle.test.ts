// Pushback between two clients that publish to each other (the OTA backend and a client playing a whole fleet):
// each one's acknowledgements drain the other's backlog, so a publisher is not held for a subscriber that is itself
// held. Before, both were held at once and only the hold's time limit and the stuck-subscriber rule let a few
// packets through: ~100 messages a second between them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Decoder, type Packet } from '@otalink/mqtt';
import { bareCore } from './support/bare-core.js';
import { connected, nextTurn, type Peer } from './support/memory-peer.js';

/** More than the in-flight window (100) and the queue length that holds a publisher back (100) together. */
const BURST = 250;

const burst = (topic: string): Packet[] =>
  Array.from({ length: BURST }, (_, i) => ({
    type: 'publish',
    topic,
    payload: new Uint8Array([i & 0xff]),
    qos: 1,
    retain: false,
    dup: false,
    packetId: i + 1,
  }));

/** Decodes what the broker wrote to `peer` since the last call and acknowledges every delivery in it. */
function ackDeliveries(peer: Peer, decoder: Decoder): number {
  const acks: Packet[] = [];
  for (const chunk of peer.writes.splice(0)) {
    decoder.push(chunk);
    for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
      if (packet.type === 'publish' && packet.packetId !== undefined) {
        acks.push({ type: 'puback', packetId: packet.packetId });
      }
    }
  }
  if (acks.length > 0) peer.read(...acks);
  return acks.length;
}

describe('pushback between clients that publish to each other', () => {
  test('a publisher is not held for a subscriber that is held itself, and both drain', async () => {
    const core = bareCore();
    const backend = await connected(core, 'backend');
    const fleet = await connected(core, 'fleet');
    backend.read({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'status', qos: 1 }] });
    fleet.read({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'command', qos: 1 }] });
    await nextTurn();
    backend.writes.length = 0;
    fleet.writes.length = 0;

    backend.read(...burst('command'));
    assert.ok(backend.socket.isPaused(), 'the fleet is backlogged: the backend is held');
    fleet.read(...burst('status'));
    assert.ok(!fleet.socket.isPaused(), 'the backend is held: holding the fleet for it would block both');

    // Each side acknowledges what it got; everything arrives, the backend's hold ending once the fleet caught up.
    const fleetDecoder = new Decoder({ role: 'client', protocolVersion: 4 });
    const backendDecoder = new Decoder({ role: 'client', protocolVersion: 4 });
    let toFleet = 0;
    let toBackend = 0;
    for (let round = 0; round < 200 && (toFleet < BURST || toBackend < BURST); round++) {
      toFleet += ackDeliveries(fleet, fleetDecoder);
      toBackend += ackDeliveries(backend, backendDecoder);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(toFleet, BURST);
    assert.equal(toBackend, BURST);
    assert.ok(!backend.socket.isPaused());
  });
});
