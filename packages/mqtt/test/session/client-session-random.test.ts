// The client session's sender against a simulated server, at random: publishes at QoS 0-2, acks in any order,
// lost connections with and without a session on the server. Whatever the interleaving, every message settles once,
// the window is never exceeded, no two unacknowledged messages share a packet id, and a resumed session replays
// what the server still holds in the order it was first sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Packet, PublishPacket } from '../../src/codec/packets.js';
import { ClientSession, type Step } from '../../src/session/client-session.js';
import { prng } from '../support/prng.js';

const text = (payload: Uint8Array) => new TextDecoder().decode(payload);

/** What the server holds of one unacknowledged message, by packet id. */
interface Held {
  seq: number;
  qos: 1 | 2;
  /** QoS 2: PUBREC sent, waiting for PUBREL; then PUBREL received, PUBCOMP owed. */
  stage: 'published' | 'recorded' | 'released';
}

function run(seed: number, version: 4 | 5): void {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const window = 1 + Math.floor(random() * 24);
  const s = new ClientSession({
    protocolVersion: version,
    clientId: `r${seed}`,
    clean: false,
    keepalive: 60,
    persist: false,
    maxInflight: window,
  });
  let now = 0;
  let connected = false;
  /** The server's view: unacknowledged messages by packet id, and the order it first saw each. */
  let held = new Map<number, Held>();
  const settled = new Map<number, number>();
  const published = new Set<number>();
  const qosOf = new Map<number, 0 | 1 | 2>();

  const take = (step: Step, replay = false) => {
    const order: number[] = [];
    for (const packet of step.packets) {
      if (packet.type === 'publish') {
        const p = packet as PublishPacket;
        const seq = Number(text(p.payload));
        if (p.qos === 0) continue;
        const id = p.packetId as number;
        const mine = held.get(id);
        if (p.dup) {
          assert.ok(replay, 'DUP only in a replay');
          assert.equal(mine?.seq, seq, `a DUP resend of id ${id} carries the same message`);
          order.push(seq);
        } else {
          assert.equal(mine, undefined, `id ${id} is new while held for #${mine?.seq}`);
          held.set(id, { seq, qos: p.qos as 1 | 2, stage: 'published' });
        }
      } else if (packet.type === 'pubrel') {
        const mine = held.get(packet.packetId);
        assert.ok(mine !== undefined && mine.qos === 2 && mine.stage !== 'published', 'PUBREL follows a PUBREC');
        mine.stage = 'released';
        if (replay) order.push(mine.seq);
      }
    }
    for (const event of step.events) {
      if (event.type === 'published' || event.type === 'publish-failed') {
        const seq = event.seq;
        settled.set(seq, (settled.get(seq) ?? 0) + 1);
      }
    }
    if (connected) assert.ok(s.inflightCount <= window, `in flight ${s.inflightCount} > window ${window}`);
    return order;
  };

  const connect = () => {
    s.connect(now);
    const present = random() < 0.7;
    if (!present) held = new Map();
    const before = [...held.values()].map((h) => h.seq);
    connected = true;
    const props = version === 5 ? { receiveMaximum: window } : undefined;
    const order = take(
      s.handle({ type: 'connack', sessionPresent: present, reasonCode: 0, properties: props } as Packet, now),
      true,
    );
    // What the server still held goes again first, in the order the server first saw it.
    if (present) assert.deepEqual(order, before, 'replay order');
  };

  /** The server's next answer for one held message: PUBACK, PUBREC, or PUBCOMP once the PUBREL came. */
  const answer = (id: number) => {
    const h = held.get(id) as Held;
    if (h.qos === 1) {
      held.delete(id);
      take(s.handle({ type: 'puback', packetId: id }, now));
    } else if (h.stage === 'published') {
      h.stage = 'recorded';
      take(s.handle({ type: 'pubrec', packetId: id }, now));
    } else if (h.stage === 'released') {
      held.delete(id);
      take(s.handle({ type: 'pubcomp', packetId: id }, now));
    } else {
      assert.fail(`id ${id}: PUBREC sent, and the session sent no PUBREL`);
    }
  };

  connect();
  let nextSeq = 0;
  for (let i = 0; i < 4000; i++) {
    now += 1;
    const r = random();
    if (r < 0.45) {
      const qos = pick([0, 1, 1, 2] as const);
      const seq = nextSeq + 1;
      const { seq: got, step } = s.publish(
        { topic: 't', payload: new TextEncoder().encode(String(seq)), qos, retain: false },
        now,
      );
      assert.equal(got, seq);
      nextSeq = seq;
      published.add(seq);
      qosOf.set(seq, qos);
      take(step);
    } else if (r < 0.93 && connected && held.size > 0) {
      // The server answers one held message, not necessarily the oldest.
      const ids = [...held.keys()];
      const id = random() < 0.6 ? (ids[0] as number) : pick(ids);
      answer(id);
    } else if (connected && r >= 0.97) {
      s.connectionLost();
      connected = false;
    } else if (!connected) {
      connect();
    }
  }
  if (!connected) connect();
  // Drain: the server answers everything until nothing is left.
  for (let guard = 0; !s.idle && guard < 100_000; guard++) {
    now += 1;
    answer([...held.keys()][0] as number);
  }
  assert.ok(s.idle, 'everything settled');
  for (const seq of published) assert.equal(settled.get(seq), 1, `#${seq} (QoS ${qosOf.get(seq)}) settled once`);
  assert.equal(settled.size, published.size);
}

test('the sender at random, MQTT 5.0: every message settles once, ids never shared, replays in order', () => {
  for (let seed = 1; seed <= 40; seed++) run(seed, 5);
});

test('the sender at random, MQTT 3.1.1', () => {
  for (let seed = 101; seed <= 140; seed++) run(seed, 4);
});
