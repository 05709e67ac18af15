import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type {
  ConnackPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  PublishProperties,
} from '../../src/codec/packets.js';
import { ClientSession, type SessionOptions, type Step } from '../../src/session/client-session.js';
import type { StoredRecord } from '../../src/session/records.js';

const bytes = (s: string) => new TextEncoder().encode(s);

function session(overrides: Partial<SessionOptions> = {}, version: ProtocolVersion = 5): ClientSession {
  return new ClientSession({ protocolVersion: version, clientId: 'c1', clean: true, keepalive: 60, ...overrides });
}

function connack(properties: ConnackPacket['properties'] = {}, sessionPresent = false): ConnackPacket {
  return { type: 'connack', sessionPresent, reasonCode: 0, properties };
}

function connected(overrides: Partial<SessionOptions> = {}, props: ConnackPacket['properties'] = {}) {
  const s = session(overrides);
  s.connect(0);
  const step = s.handle(connack(props), 0);
  assert.equal(s.state, 'connected');
  return { s, step };
}

const types = (step: Step) => step.packets.map((p) => p.type);
const eventTypes = (step: Step) => step.events.map((e) => e.type);
const publishes = (step: Step) => step.packets.filter((p): p is PublishPacket => p.type === 'publish');
const msg = (topic: string, qos: 0 | 1 | 2, payload = 'x') => ({ topic, payload: bytes(payload), qos, retain: false });

describe('packet ids', () => {
  test('round-robin: a freed id is not reused at once, ids in use are skipped, all 65535 in use refuse more', () => {
    const { s } = connected({ maxInflight: 0xffff }, { receiveMaximum: 0xffff });
    const ids = (step: Step) => publishes(step).map((p) => p.packetId);
    assert.deepEqual(ids(s.publish(msg('a/b', 1), 0).step), [1]);
    assert.deepEqual(ids(s.publish(msg('a/b', 1), 0).step), [2]);
    s.handle({ type: 'puback', packetId: 1 }, 0);
    assert.deepEqual(ids(s.publish(msg('a/b', 1), 0).step), [3], 'a freed id is not reused at once');
    const sub = s.subscribe([{ topicFilter: 'x', qos: 0 }], undefined, 0);
    assert.equal(sub.packetId, 4, 'SUBSCRIBE draws from the same ids');
    for (let i = 5; i <= 0xffff; i++) s.publish(msg('a/b', 1), 0);
    assert.deepEqual(ids(s.publish(msg('a/b', 1), 0).step), [1], 'wraps to the freed id, skipping 2 and 3 in use');
    assert.deepEqual(ids(s.publish(msg('a/b', 1), 0).step), [], 'all 65535 in use: the next one waits in the queue');
    assert.throws(() => s.subscribe([{ topicFilter: 'y', qos: 0 }], undefined, 0), {
      code: 'MQTT_ERR_PACKET_ID_EXHAUSTED',
    });
    s.handle({ type: 'suback', packetId: 4, reasonCodes: [0] }, 0);
    assert.deepEqual(
      ids(s.handle({ type: 'puback', packetId: 3 }, 0)),
      [3],
      'the queued one: the next free id after 1',
    );
  });

  test('an id held for long (a QoS 2 message the server sits on) is passed over as ids wrap, and still settles', () => {
    const { s } = connected({}, { receiveMaximum: 20 });
    const held = s.publish(msg('held', 2), 0);
    const heldId = publishes(held.step)[0]?.packetId as number;
    let sent = 0;
    let settled = 0;
    // 70 000 QoS 1 messages through the other 19 slots: the ids wrap around 65 535 past the held one.
    const pending: number[] = [];
    const take = (step: Step) => {
      for (const p of publishes(step)) pending.push(p.packetId as number);
      settled += step.events.filter((e) => e.type === 'published').length;
    };
    while (sent < 70_000) {
      take(s.publish(msg('flow', 1), 0).step);
      sent++;
      if (pending.length >= 19) take(s.handle({ type: 'puback', packetId: pending.shift() as number }, 0));
    }
    while (pending.length > 0) take(s.handle({ type: 'puback', packetId: pending.shift() as number }, 0));
    assert.equal(settled, 70_000);
    assert.equal(s.inflightCount, 1, 'only the held QoS 2 message is left');
    const rec = s.handle({ type: 'pubrec', packetId: heldId }, 0);
    assert.deepEqual(types(rec), ['pubrel']);
    const comp = s.handle({ type: 'pubcomp', packetId: heldId }, 0);
    assert.ok(eventTypes(comp).includes('published'));
    assert.equal(s.inflightCount, 0);
  });
});

describe('connect', () => {
  test('CONNECT carries the options; CONNACK sets limits, assigned id and server keepalive', () => {
    const s = session({ clientId: '', keepalive: 30, username: 'u', properties: { sessionExpiryInterval: 10 } });
    const step = s.connect(0);
    assert.deepEqual(step.packets[0], {
      type: 'connect',
      protocolVersion: 5,
      clientId: '',
      clean: true,
      keepalive: 30,
      username: 'u',
      properties: { sessionExpiryInterval: 10 },
    });
    const out = s.handle(
      connack({ assignedClientIdentifier: 'srv-1', serverKeepAlive: 5, receiveMaximum: 3, topicAliasMaximum: 2 }),
      0,
    );
    assert.deepEqual(eventTypes(out), ['connected']);
    assert.equal(s.clientId, 'srv-1');
    assert.equal(s.limits.keepalive, 5);
    assert.equal(s.limits.receiveMaximum, 3);
  });

  test('Session Present 1 in answer to Clean Start 1 is a protocol error: DISCONNECT 0x82, closed', () => {
    // [MQTT-3.2.2-2]: the server must answer Clean Start 1 with no session; [MQTT-3.2.2-4]: a client cannot go on.
    const s = session({ clean: true });
    s.connect(0);
    const step = s.handle(connack({}, true), 1);
    assert.deepEqual(
      step.packets.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
      [0x82],
    );
    assert.ok(step.events.some((e) => e.type === 'close'));
    assert.equal(s.state, 'disconnected');
  });

  test('Clean Start asks for a fresh session once: one kept by a Session Expiry Interval is rejoined after a drop', () => {
    const cleanFlags = (s: ClientSession) => {
      const flags: boolean[] = [];
      for (let i = 0; i < 2; i++) {
        const connect = s.connect(i).packets[0];
        assert.ok(connect?.type === 'connect');
        flags.push(connect.clean);
        // The second time the server has the session: Session Present 1 is no protocol error then.
        s.handle(connack({}, i > 0 && !connect.clean), i);
        assert.equal(s.state, 'connected');
        const sent = s.publish({ topic: 'q2', payload: new Uint8Array([1]), qos: 2, retain: false }, i);
        assert.ok(sent.step.packets.some((p) => p.type === 'publish'));
        s.connectionLost();
      }
      return flags;
    };
    assert.deepEqual(cleanFlags(session({ clean: true, properties: { sessionExpiryInterval: 300 } })), [true, false]);
    // No session outlives the connection (no expiry, or 3.1.1's clean session): every CONNECT starts clean.
    assert.deepEqual(cleanFlags(session({ clean: true })), [true, true]);
    assert.deepEqual(cleanFlags(session({ clean: true }, 4)), [true, true]);
  });

  test('a refused CONNACK is an event and leaves the session disconnected', () => {
    const s = session();
    s.connect(0);
    const out = s.handle({ type: 'connack', sessionPresent: false, reasonCode: 0x87 }, 0);
    assert.deepEqual(eventTypes(out), ['refused']);
    assert.equal(s.state, 'disconnected');
  });
});

describe('QoS 1 and 2 sender', () => {
  test('QoS 0 goes out at once and completes', () => {
    const { s } = connected();
    const { seq, step } = s.publish(msg('a/b', 0), 1);
    assert.deepEqual(types(step), ['publish']);
    assert.deepEqual(step.events, [{ type: 'published', seq, reasonCode: 0, handedOff: true }]);
  });

  test('QoS 1: stored, sent, completed and forgotten on PUBACK', () => {
    const { s } = connected();
    const { seq, step } = s.publish(msg('a/b', 1), 1);
    const [p] = publishes(step);
    assert.equal(p?.packetId, 1);
    assert.deepEqual(eventTypes(step), ['store-put', 'store-put']);
    // Queued, it must reach the disk (packets need not wait); its packet id and its deletion may be lost in a crash.
    assert.deepEqual(
      step.events.map((e) =>
        e.type === 'store-put' ? [e.record.kind === 'outgoing' && e.record.state, e.durable] : [],
      ),
      [
        ['queued', 'after-send'],
        ['publish', 'optional'],
      ],
    );
    const done = s.handle({ type: 'puback', packetId: 1, reasonCode: 0 }, 2);
    assert.deepEqual(done.events, [
      { type: 'store-delete', key: `out:${seq}`, durable: 'optional' },
      { type: 'published', seq, reasonCode: 0, properties: undefined },
    ]);
    assert.equal(s.inflightCount, 0);
  });

  test('a PUBACK with a failure code fails the message with MQTT_ERR_PUBLISH_FAILED', () => {
    const { s } = connected();
    s.publish(msg('a/b', 1), 1);
    const done = s.handle({ type: 'puback', packetId: 1, reasonCode: 0x87 }, 2);
    const failed = done.events.find((e) => e.type === 'publish-failed');
    assert.ok(failed && failed.type === 'publish-failed');
    assert.equal(failed.error.code, 'MQTT_ERR_PUBLISH_FAILED');
    assert.equal(failed.error.reasonCode, 0x87);
    // Strict: back after a power cut, the refused message would go out after the application was told it failed.
    assert.deepEqual(
      done.events.find((e) => e.type === 'store-delete'),
      { type: 'store-delete', key: 'out:1' },
    );
  });

  test('QoS 2: PUBREC → PUBREL (stored as pubrel), PUBCOMP completes; duplicate PUBREC repeats PUBREL', () => {
    const { s } = connected();
    const { seq } = s.publish(msg('a/b', 2), 1);
    const rec = s.handle({ type: 'pubrec', packetId: 1 }, 2);
    assert.deepEqual(rec.packets, [{ type: 'pubrel', packetId: 1 }]);
    const put = rec.events[0];
    assert.ok(put?.type === 'store-put' && put.record.kind === 'outgoing');
    assert.equal(put.record.state, 'pubrel');
    assert.equal(put.durable, undefined, 'the PUBREL waits until it is on disk');
    // Only the PUBREL is ever sent again: the record does not write the payload to flash a second time.
    assert.equal(put.record.payload.length, 0);
    assert.deepEqual(s.handle({ type: 'pubrec', packetId: 1 }, 3).packets, [{ type: 'pubrel', packetId: 1 }]);
    const comp = s.handle({ type: 'pubcomp', packetId: 1 }, 4);
    assert.deepEqual(eventTypes(comp), ['store-delete', 'published']);
    assert.equal(comp.events[1]?.type === 'published' && comp.events[1].seq, seq);
    assert.equal(s.handle({ type: 'pubcomp', packetId: 1 }, 5).events.length, 0, 'late PUBCOMP is ignored');
  });

  test('PUBCOMP 0x92 (packet id not found) after a successful PUBREC completes the message, code reported', () => {
    const { s } = connected();
    const { seq } = s.publish(msg('a/b', 2), 1);
    s.handle({ type: 'pubrec', packetId: 1 }, 2);
    const comp = s.handle({ type: 'pubcomp', packetId: 1, reasonCode: 0x92 }, 3);
    assert.deepEqual(eventTypes(comp), ['store-delete', 'published']);
    const done = comp.events[1];
    assert.ok(done?.type === 'published');
    assert.deepEqual([done.seq, done.reasonCode], [seq, 0x92]);
    assert.equal(s.inflightCount, 0);
  });

  test('PUBREC with a failure code ends the exchange without PUBREL', () => {
    const { s } = connected();
    s.publish(msg('a/b', 2), 1);
    const rec = s.handle({ type: 'pubrec', packetId: 1, reasonCode: 0x97 }, 2);
    assert.deepEqual(rec.packets, []);
    assert.ok(rec.events.some((e) => e.type === 'publish-failed'));
  });
});

describe('without a store (persist: false)', () => {
  /** The same exchange on a persisting session and on one without a store, step by step. */
  function both(drive: (s: ClientSession) => Step[]) {
    const withStore = drive(connected({}, { receiveMaximum: 2 }).s);
    const without = drive(connected({ persist: false }, { receiveMaximum: 2 }).s);
    return { withStore, without };
  }

  test('the same packets and outcomes as with a store, and no store-put or store-delete at all', () => {
    const { withStore, without } = both((s) => {
      const incoming: PublishPacket = { ...msg('in', 2), type: 'publish', dup: false, packetId: 9 };
      const steps = [1, 2, 2, 1].map((qos, i) => s.publish(msg(`t/${i}`, qos as 1 | 2), 1).step);
      steps.push(s.handle({ type: 'puback', packetId: 1 }, 2)); // frees a slot: the queued QoS 2 goes out
      steps.push(s.handle({ type: 'pubrec', packetId: 2 }, 3));
      steps.push(s.handle(incoming, 4), s.handle({ type: 'pubrel', packetId: 9 }, 5));
      s.connectionLost();
      s.connect(6);
      // No session on the server: in-flight messages go out again as new ones, PUBREL'd ones are done.
      steps.push(s.handle(connack({ receiveMaximum: 2 }, false), 7));
      steps.push(s.handle({ type: 'puback', packetId: 3 }, 8), s.handle({ type: 'pubrec', packetId: 4 }, 9));
      steps.push(s.handle({ type: 'pubcomp', packetId: 4 }, 10), s.handle({ type: 'puback', packetId: 5 }, 11));
      return steps;
    });
    const storeEvent = (e: Step['events'][number]) => e.type === 'store-put' || e.type === 'store-delete';
    assert.ok(
      withStore.some((step) => step.events.some(storeEvent)),
      'the persisting session does store',
    );
    assert.deepEqual(
      without.map((step) => step.packets),
      withStore.map((step) => step.packets),
    );
    assert.deepEqual(
      without.map((step) => step.events),
      withStore.map((step) => step.events.filter((e) => !storeEvent(e))),
    );
    const published = without.flatMap((step) => step.events.filter((e) => e.type === 'published'));
    assert.deepEqual(
      published.map((e) => e.type === 'published' && e.seq).sort(),
      [1, 2, 3, 4],
      'every message completes once',
    );
  });
});

describe('QoS 2 receiver', () => {
  test('delivers once on PUBLISH, answers a repeat with PUBREC only, forgets on PUBREL', () => {
    const { s } = connected();
    const pub: PublishPacket = { ...msg('t', 2), type: 'publish', dup: false, packetId: 7 };
    const first = s.handle(pub, 1);
    assert.deepEqual(eventTypes(first), ['message', 'store-put']);
    assert.deepEqual(first.packets, [{ type: 'pubrec', packetId: 7 }]);
    const again = s.handle({ ...pub, dup: true }, 2);
    assert.deepEqual(eventTypes(again), []);
    assert.deepEqual(again.packets, [{ type: 'pubrec', packetId: 7 }]);
    const rel = s.handle({ type: 'pubrel', packetId: 7 }, 3);
    assert.deepEqual(rel.packets, [{ type: 'pubcomp', packetId: 7 }]);
    assert.deepEqual(rel.events, [{ type: 'store-delete', key: 'in:7' }]);
    assert.deepEqual(eventTypes(s.handle(pub, 4)), ['message', 'store-put'], 'after PUBREL the id is new again');
  });

  test('more unreleased QoS 2 messages than our Receive Maximum is a protocol error 0x93', () => {
    const { s } = connected({ properties: { receiveMaximum: 2 } });
    const pub = (id: number): PublishPacket => ({ ...msg('t', 2), type: 'publish', dup: false, packetId: id });
    s.handle(pub(1), 1);
    s.handle(pub(2), 1);
    assert.deepEqual(s.handle(pub(2), 1).packets, [{ type: 'pubrec', packetId: 2 }], 'a repeat does not count');
    const over = s.handle(pub(3), 2);
    assert.deepEqual(over.packets, [{ type: 'disconnect', reasonCode: 0x93 }]);
    assert.equal(s.state, 'disconnected');
  });

  test('QoS 1 is acked and delivered', () => {
    const { s } = connected();
    const step = s.handle({ ...msg('t', 1), type: 'publish', dup: false, packetId: 3 }, 1);
    assert.deepEqual(step.packets, [{ type: 'puback', packetId: 3 }]);
    assert.deepEqual(eventTypes(step), ['message']);
  });

  test('only what the server sent on this connection counts against our Receive Maximum (section 4.9)', () => {
    const s = session({ clean: false, properties: { receiveMaximum: 2 } });
    const pub = (id: number, dup = false): PublishPacket => ({ ...msg('t', 2), type: 'publish', dup, packetId: id });
    s.connect(0);
    s.handle(connack(), 0);
    s.handle(pub(1), 1);
    s.handle(pub(2), 1);
    s.connectionLost();
    s.connect(2);
    s.handle(connack({}, true), 2);
    // Ids 1 and 2 await PUBREL from the last connection; the server's send quota started again at 2.
    const third = s.handle(pub(3), 3);
    assert.deepEqual(third.packets, [{ type: 'pubrec', packetId: 3 }]);
    assert.deepEqual(eventTypes(third), ['message', 'store-put']);
    const again = s.handle(pub(1, true), 3);
    assert.deepEqual(again.packets, [{ type: 'pubrec', packetId: 1 }], 'sent again on this connection: it counts');
    assert.deepEqual(eventTypes(again), [], 'and is still not delivered twice');
    assert.deepEqual(s.handle(pub(4), 4).packets, [{ type: 'disconnect', reasonCode: 0x93 }]);
  });

  test('restored incoming ids still suppress redelivery', () => {
    const s = session({ clean: false });
    s.restore([{ kind: 'incoming', packetId: 9 }]);
    s.connect(0);
    s.handle(connack({}, true), 0);
    const step = s.handle({ ...msg('t', 2), type: 'publish', dup: true, packetId: 9 }, 1);
    assert.deepEqual(eventTypes(step), []);
    assert.deepEqual(step.packets, [{ type: 'pubrec', packetId: 9 }]);
  });
});

describe('manual acknowledgement', () => {
  const incoming = (id: number, qos: 1 | 2, topic = 't'): PublishPacket => ({
    ...msg(topic, qos),
    type: 'publish',
    dup: false,
    packetId: id,
  });
  const delivery = (step: Step) => {
    const e = step.events.find((x) => x.type === 'message');
    assert.ok(e?.type === 'message');
    return e;
  };

  test('QoS 1: PUBACK only on ack(); a second ack() sends nothing', () => {
    const { s } = connected({ manualAck: true });
    const got = s.handle(incoming(4, 1), 1);
    assert.deepEqual(got.packets, [], 'no PUBACK on delivery');
    const { ack } = delivery(got);
    assert.ok(ack !== undefined);
    assert.equal(s.unackedCount, 1);
    assert.deepEqual(s.ack(ack, 2).packets, [{ type: 'puback', packetId: 4 }]);
    assert.deepEqual(s.ack(ack, 3).packets, [], 'idempotent');
    assert.equal(s.unackedCount, 0);
  });

  test('QoS 2: PUBREC (and the store record) only on ack(); then PUBREL → PUBCOMP; a resend is not redelivered', () => {
    const { s } = connected({ manualAck: true });
    const got = s.handle(incoming(7, 2), 1);
    assert.deepEqual(got.packets, []);
    assert.deepEqual(eventTypes(got), ['message'], 'nothing stored before the ack');
    const acked = s.ack(delivery(got).ack!, 2);
    assert.deepEqual(acked.packets, [{ type: 'pubrec', packetId: 7 }]);
    assert.deepEqual(acked.events, [{ type: 'store-put', key: 'in:7', record: { kind: 'incoming', packetId: 7 } }]);
    const again = s.handle({ ...incoming(7, 2), dup: true }, 3);
    assert.deepEqual([eventTypes(again), again.packets], [[], [{ type: 'pubrec', packetId: 7 }]]);
    assert.deepEqual(s.handle({ type: 'pubrel', packetId: 7 }, 4).packets, [{ type: 'pubcomp', packetId: 7 }]);
  });

  test('acks leave in arrival order: a later ack() is held until the earlier ones, then released together', () => {
    const { s } = connected({ manualAck: true });
    const got = [
      s.handle(incoming(1, 1), 1),
      s.handle(incoming(2, 2), 1),
      s.handle({ ...msg('t', 0), type: 'publish', dup: false }, 1),
      s.handle(incoming(3, 1), 1),
      s.handle(incoming(4, 2), 1),
    ];
    const [t1, t2, , t3, t4] = got.map((step) => delivery(step).ack);
    const ids = (step: Step) => step.packets.map((p) => `${p.type}:${'packetId' in p ? p.packetId : ''}`);
    const third = s.ack(t3!, 2);
    assert.deepEqual([third.packets, third.events], [[], []], 'held: 1 and 2 came first');
    assert.deepEqual([s.unackedCount, s.heldAckCount], [3, 1]);
    const second = s.ack(t2!, 3);
    assert.deepEqual(second.packets, [], 'still held behind 1');
    assert.deepEqual(s.ack(t3!, 3).packets, [], 'a repeated ack() changes nothing');
    const first = s.ack(t1!, 4);
    assert.deepEqual(ids(first), ['puback:1', 'pubrec:2', 'puback:3'], 'released in arrival order, in one step');
    assert.deepEqual(eventTypes(first), ['store-put'], 'the QoS 2 record is stored when its PUBREC goes out');
    assert.deepEqual([s.unackedCount, s.heldAckCount], [1, 0]);
    assert.deepEqual(ids(s.ack(t4!, 5)), ['pubrec:4'], 'the head of the line goes at once');
  });

  test('held acks count against our Receive Maximum until they go out, and die with the connection', () => {
    const { s } = connected({ manualAck: true, clean: false, properties: { receiveMaximum: 2 } });
    s.handle(incoming(1, 1), 1);
    const t2 = delivery(s.handle(incoming(2, 1), 1)).ack!;
    s.ack(t2, 2);
    const over = s.handle(incoming(3, 1), 2);
    assert.deepEqual(over.packets, [{ type: 'disconnect', reasonCode: 0x93 }], 'a held ack is not on the wire');
    assert.deepEqual([s.unackedCount, s.heldAckCount], [0, 0], 'a lost connection forgets held acks');
    s.connect(3);
    s.handle(connack({}, true), 3);
    const again = delivery(s.handle({ ...incoming(2, 1), dup: true }, 4)).ack!;
    assert.deepEqual(s.ack(again, 5).packets, [{ type: 'puback', packetId: 2 }], 'redelivered: first in line now');
  });

  test('a repeated PUBLISH keeps the place of the first copy', () => {
    const { s } = connected({ manualAck: true });
    const t1 = delivery(s.handle(incoming(1, 1), 1)).ack!;
    const t2 = delivery(s.handle(incoming(2, 1), 1)).ack!;
    const t1again = delivery(s.handle({ ...incoming(1, 1), dup: true }, 1)).ack!;
    assert.deepEqual(s.ack(t2, 2).packets, []);
    assert.deepEqual(
      s.ack(t1again, 3).packets.map((p) => p.type),
      ['puback', 'puback'],
    );
    assert.deepEqual(s.ack(t1, 4).packets, [], 'already acknowledged');
  });

  test('QoS 0 carries no token; without manualAck QoS 1/2 are acked at once and carry none', () => {
    const manual = connected({ manualAck: true }).s;
    const q0 = manual.handle({ ...msg('t', 0), type: 'publish', dup: false }, 1);
    assert.equal(delivery(q0).ack, undefined);
    const auto = connected().s;
    const q1 = auto.handle(incoming(5, 1), 1);
    assert.equal(delivery(q1).ack, undefined);
    assert.deepEqual(q1.packets, [{ type: 'puback', packetId: 5 }]);
  });

  test('unacknowledged QoS 1 messages count against our Receive Maximum', () => {
    const { s } = connected({ manualAck: true, properties: { receiveMaximum: 2 } });
    s.handle(incoming(1, 1), 1);
    s.handle(incoming(2, 2), 1);
    const over = s.handle(incoming(3, 1), 2);
    assert.deepEqual(over.packets, [{ type: 'disconnect', reasonCode: 0x93 }], 'a third is the server’s fault');
    const again = connected({ manualAck: true, properties: { receiveMaximum: 2 } }).s;
    const token = delivery(again.handle(incoming(1, 1), 1)).ack!;
    again.handle(incoming(2, 1), 1);
    again.ack(token, 2);
    assert.deepEqual(eventTypes(again.handle(incoming(3, 1), 3)), ['message'], 'room again after an ack');
  });

  test('after the line is lost an old token acks nothing; the redelivery brings a new one', () => {
    const { s } = connected({ manualAck: true, clean: false });
    const old = delivery(s.handle(incoming(9, 1), 1)).ack!;
    const old2 = delivery(s.handle(incoming(10, 2), 1)).ack!;
    s.connectionLost();
    assert.deepEqual(s.ack(old, 2).packets, [], 'offline: nothing to send it on');
    s.connect(3);
    s.handle(connack({}, true), 3);
    assert.deepEqual(s.ack(old, 4).packets, [], 'a token of the previous connection');
    const redelivered = s.handle({ ...incoming(9, 1), dup: true }, 5);
    assert.equal(delivery(redelivered).message.dup, true, 'delivered again: it was never acknowledged');
    const qos2Again = s.handle({ ...incoming(10, 2), dup: true }, 5);
    assert.deepEqual(eventTypes(qos2Again), ['message'], 'QoS 2 too, since no PUBREC went out');
    assert.deepEqual(s.ack(old2, 6).packets, []);
    assert.deepEqual(s.ack(delivery(redelivered).ack!, 6).packets, [{ type: 'puback', packetId: 9 }]);
  });
});

describe('in-flight window', () => {
  test('honours the server Receive Maximum and refills one per ack', () => {
    const { s } = connected({}, { receiveMaximum: 2 });
    const sent: Packet[] = [];
    for (let i = 0; i < 5; i++) sent.push(...s.publish(msg('a', 1, String(i)), 1).step.packets);
    assert.equal(sent.length, 2);
    assert.equal(s.queuedCount, 3);
    const next = s.handle({ type: 'puback', packetId: 1 }, 2);
    assert.deepEqual(
      publishes(next).map((p) => new TextDecoder().decode(p.payload)),
      ['2'],
    );
  });

  test('a large full window refills each freed slot at once, never above Receive Maximum', () => {
    const { s } = connected({}, { receiveMaximum: 20 });
    for (let i = 0; i < 30; i++) s.publish(msg('a', 1, String(i)), 1);
    assert.equal(s.queuedCount, 10);
    const next = s.handle({ type: 'puback', packetId: 1 }, 2);
    assert.deepEqual(
      publishes(next).map((p) => new TextDecoder().decode(p.payload)),
      ['20'],
    );
    assert.equal(s.queuedCount, 9);
  });

  test('batchRefills: freed slots gather to a batch (a quarter of the window) before the refills go out', () => {
    const { s } = connected({ batchRefills: true }, { receiveMaximum: 20 });
    for (let i = 0; i < 40; i++) s.publish(msg('a', 1, String(i)), 1);
    const text = (step: Step) => publishes(step).map((p) => new TextDecoder().decode(p.payload));
    for (let id = 1; id <= 4; id++) {
      const step = s.handle({ type: 'puback', packetId: id }, 2);
      assert.deepEqual(publishes(step), [], `slot ${id} held`);
      assert.equal(s.holding, true);
    }
    assert.equal(s.inflightCount, 16, 'never above Receive Maximum, and the server keeps work meanwhile');
    const fifth = s.handle({ type: 'puback', packetId: 5 }, 3);
    assert.deepEqual(text(fifth), ['20', '21', '22', '23', '24'], 'one batch, in order');
    assert.equal(s.holding, false);
    assert.equal(s.inflightCount, 20);
  });

  test('batchRefills: nothing is held with the window empty, a short backlog, or QoS 0 next', () => {
    const { s } = connected({ batchRefills: true }, { receiveMaximum: 20 });
    for (let i = 0; i < 21; i++) s.publish(msg('a', 1, String(i)), 1);
    // One message waiting: a batch of one.
    assert.equal(publishes(s.handle({ type: 'puback', packetId: 1 }, 2)).length, 1);
    assert.equal(s.holding, false);
    s.publish(msg('zero', 0), 3);
    assert.equal(s.queuedCount, 0, 'QoS 0 takes no slot and waits for none');
    const small = connected({ batchRefills: true }, { receiveMaximum: 4 }).s;
    for (let i = 0; i < 8; i++) small.publish(msg('a', 1, String(i)), 1);
    assert.equal(publishes(small.handle({ type: 'puback', packetId: 1 }, 2)).length, 1, 'window 4: no batching');
  });

  test('batchRefills: releaseHeld sends what is free; holds that keep needing it turn batching off', () => {
    const { s } = connected({ batchRefills: true, clean: false }, { receiveMaximum: 20 });
    for (let i = 0; i < 100; i++) s.publish(msg('a', 1, String(i)), 1);
    let nextAck = 1;
    // As a server with Nagle on: one PUBACK, then nothing until we write.
    for (let round = 0; round < 8; round++) {
      assert.deepEqual(publishes(s.handle({ type: 'puback', packetId: nextAck++ }, 2)), []);
      assert.equal(s.holding, true);
      assert.equal(publishes(s.releaseHeld(3)).length, 1);
      assert.equal(s.holding, false);
    }
    assert.equal(publishes(s.handle({ type: 'puback', packetId: nextAck++ }, 4)).length, 1, 'no more holding');
    assert.equal(s.holding, false);
    assert.deepEqual(s.releaseHeld(5).packets, [], 'nothing held, nothing sent');
    // A new connection starts batching again.
    s.connectionLost();
    s.connect(6);
    s.handle(connack({ receiveMaximum: 20 }, true), 6);
    assert.deepEqual(publishes(s.handle({ type: 'puback', packetId: nextAck++ }, 7)), []);
    assert.equal(s.holding, true);
  });

  test('replay after reconnect sends a whole window at once, DUP for in-flight ones', () => {
    const s = session({ clean: false });
    s.connect(0);
    s.handle(connack({ receiveMaximum: 3 }), 0);
    for (let i = 0; i < 10; i++) s.publish(msg('a', 1, String(i)), 1);
    s.connectionLost();
    s.connect(10);
    const replay = s.handle(connack({ receiveMaximum: 3 }, true), 11);
    const pubs = publishes(replay);
    assert.equal(pubs.length, 3);
    assert.deepEqual(
      pubs.map((p) => [p.packetId, p.dup]),
      [
        [1, true],
        [2, true],
        [3, true],
      ],
    );
    const refill = s.handle({ type: 'puback', packetId: 2 }, 12);
    assert.deepEqual(
      publishes(refill).map((p) => [new TextDecoder().decode(p.payload), p.dup]),
      [['3', false]],
    );
  });

  test('replay keeps to a smaller Receive Maximum: the rest follow with DUP as acks free the window, before new', () => {
    // A server that comes back (failover, new configuration) with a smaller Receive Maximum ([MQTT-3.3.4-9]).
    const s = session({ clean: false });
    s.connect(0);
    s.handle(connack({ receiveMaximum: 10 }), 0);
    for (let i = 0; i < 12; i++) s.publish(msg('a', 1, String(i)), 1);
    s.handle({ type: 'puback', packetId: 1 }, 2);
    s.connectionLost();
    s.connect(10);
    const replay = s.handle(connack({ receiveMaximum: 2 }, true), 11);
    const sent = (step: Step) => publishes(step).map((p) => `${p.packetId}${p.dup ? 'd' : ''}`);
    assert.deepEqual(sent(replay), ['2d', '3d']);
    assert.deepEqual(sent(s.handle({ type: 'puback', packetId: 2 }, 12)), ['4d']);
    assert.deepEqual(sent(s.handle({ type: 'puback', packetId: 4 }, 13)), ['5d']);
    for (const id of [3, 6, 7, 8, 9, 10]) s.handle({ type: 'puback', packetId: id }, 14);
    // Each ack let one more resend go, up to 11, the last one in flight: 5 and 11 are, the queued twelfth waits.
    assert.equal(s.inflightCount, 2);
    const tail = sent(s.handle({ type: 'puback', packetId: 11 }, 15));
    assert.equal(tail.length, 1);
    assert.ok(!tail[0]!.endsWith('d'), 'a queued message goes out as new');
  });

  test('a resend this server cannot take (Maximum Packet Size, Maximum QoS) fails, instead of looping', () => {
    const s = session({ clean: false });
    s.connect(0);
    s.handle(connack({}), 0);
    const big = s.publish(msg('a', 1, 'y'.repeat(500)), 1);
    const two = s.publish(msg('b', 2), 1);
    s.publish(msg('c', 1), 1);
    s.connectionLost();
    s.connect(10);
    const replay = s.handle(connack({ maximumPacketSize: 100, maximumQoS: 1 }, true), 11);
    assert.deepEqual(
      publishes(replay).map((p) => [p.topic, p.dup]),
      [['c', true]],
    );
    const failed = replay.events.flatMap((e) => (e.type === 'publish-failed' ? [[e.seq, e.error.code]] : []));
    assert.deepEqual(failed, [
      [big.seq, 'MQTT_ERR_PACKET_TOO_LARGE'],
      [two.seq, 'MQTT_ERR_PUBLISH_FAILED'],
    ]);
    assert.equal(s.inflightCount, 1);
  });

  test('without a session on the server, unacked messages go again as new and PUBREL-pending ones complete', () => {
    const s = session({ clean: true });
    s.connect(0);
    s.handle(connack(), 0);
    s.publish(msg('a', 1, 'one'), 1);
    s.publish(msg('a', 2, 'two'), 1);
    s.handle({ type: 'pubrec', packetId: 2 }, 2);
    s.connectionLost();
    s.connect(10);
    const step = s.handle(connack({}, false), 11);
    // Taken over by the server at PUBREC: complete, with 0x92 as a PUBCOMP for an id it lost would say.
    assert.ok(step.events.some((e) => e.type === 'published' && e.seq === 2 && e.reasonCode === 0x92));
    const pubs = publishes(step);
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0]?.dup, false);
    assert.equal(new TextDecoder().decode(pubs[0]?.payload), 'one');
    assert.ok(!step.packets.some((p) => p.type === 'pubrel'));
  });

  test('restore from a store: in-flight resent with their ids, queued ones after, PUBREL for pubrel', () => {
    const records: StoredRecord[] = [
      { kind: 'outgoing', seq: 5, topic: 'a', payload: bytes('q'), qos: 1, retain: false, state: 'queued' },
      {
        kind: 'outgoing',
        seq: 3,
        topic: 'a',
        payload: bytes('p'),
        qos: 2,
        retain: false,
        state: 'pubrel',
        packetId: 40,
      },
      {
        kind: 'outgoing',
        seq: 4,
        topic: 'a',
        payload: bytes('i'),
        qos: 1,
        retain: false,
        state: 'publish',
        packetId: 41,
      },
    ];
    const s = session({ clean: false });
    s.restore(records);
    s.connect(0);
    const step = s.handle(connack({}, true), 0);
    assert.deepEqual(
      step.packets.map((p) =>
        p.type === 'publish' ? `${p.packetId}:${p.dup}` : `${p.type}:${'packetId' in p ? p.packetId : ''}`,
      ),
      ['pubrel:40', '41:true', '1:false'],
    );
    const { seq } = s.publish(msg('a', 1), 1);
    assert.equal(seq, 6, 'sequence numbers continue after the restored ones');
  });

  /** A stored QoS 1 message to topic 'a' with its sequence number as payload. */
  const storedQos1 = (seq: number, state: 'queued' | 'publish', packetId?: number): StoredRecord => ({
    kind: 'outgoing',
    seq,
    topic: 'a',
    payload: bytes(String(seq)),
    qos: 1,
    retain: false,
    state,
    ...(packetId === undefined ? {} : { packetId }),
  });

  test('restore: the queue limit holds for what a restart brings back, with its drop policy', () => {
    const queued = (seq: number) => storedQos1(seq, 'queued');
    for (const [dropPolicy, kept] of [
      ['oldest', ['3', '4', '5']],
      ['newest', ['1', '2', '3']],
    ] as const) {
      const s = session({ clean: false, queueLimit: 3, dropPolicy });
      const step = s.restore([1, 2, 3, 4, 5].map(queued), 0);
      const failed = step.events.flatMap((e) => (e.type === 'publish-failed' ? [e.error.code] : []));
      assert.deepEqual(failed, ['MQTT_ERR_QUEUE_FULL', 'MQTT_ERR_QUEUE_FULL'], dropPolicy);
      assert.equal(s.queuedCount, 3);
      s.connect(0);
      const sent = publishes(s.handle(connack({}, true), 0)).map((p) => new TextDecoder().decode(p.payload));
      assert.deepEqual(sent, kept, dropPolicy);
    }
  });

  test('restore: a record whose id is no packet id, or one already taken, goes again as a new message', () => {
    const record = (seq: number, packetId: number) => storedQos1(seq, 'publish', packetId);
    const s = session({ clean: false });
    // 65 537 and 1 share a slot at every table size: kept apart, neither message may be lost.
    s.restore([record(1, 1), record(2, 65_537), record(3, 0), record(4, 1), record(5, 2.5)]);
    s.connect(0);
    const step = s.handle(connack({}, true), 0);
    assert.deepEqual(
      publishes(step).map((p) => `${new TextDecoder().decode(p.payload)}@${p.packetId}:${p.dup}`),
      ['1@1:true', '2@2:false', '3@3:false', '4@4:false', '5@5:false'],
    );
  });
});

describe('offline queue', () => {
  test('drop oldest: the oldest queued message fails with MQTT_ERR_QUEUE_FULL', () => {
    const s = session({ queueLimit: 2, dropPolicy: 'oldest' });
    s.publish(msg('a', 1, '1'), 0);
    s.publish(msg('a', 1, '2'), 0);
    const third = s.publish(msg('a', 1, '3'), 0);
    const failed = third.step.events.find((e) => e.type === 'publish-failed');
    assert.ok(failed?.type === 'publish-failed');
    assert.equal(failed.seq, 1);
    assert.equal(failed.error.code, 'MQTT_ERR_QUEUE_FULL');
    assert.ok(third.step.events.some((e) => e.type === 'store-delete' && e.key === 'out:1'));
  });

  test('drop newest: the new message fails', () => {
    const s = session({ queueLimit: 1, dropPolicy: 'newest' });
    s.publish(msg('a', 0, '1'), 0);
    const second = s.publish(msg('a', 0, '2'), 0);
    assert.deepEqual(
      second.step.events.map((e) => (e.type === 'publish-failed' ? e.seq : -1)),
      [2],
    );
    s.connect(1);
    const out = s.handle(connack(), 1);
    assert.deepEqual(
      publishes(out).map((p) => new TextDecoder().decode(p.payload)),
      ['1'],
    );
  });
});

describe('message expiry of queued messages', () => {
  const HOUR = 3600;
  const expiring = (payload: string, seconds: number, qos: 0 | 1 | 2 = 1) => ({
    ...msg('t', qos, payload),
    properties: { messageExpiryInterval: seconds, userProperties: [['k', 'v']] } as PublishProperties,
  });
  const text = (p: PublishPacket) => new TextDecoder().decode(p.payload);
  const failures = (step: Step) =>
    step.events.flatMap((e) => (e.type === 'publish-failed' ? [`${e.seq}:${e.error.code}`] : []));

  test('expireQueued fails what ran out while offline, at its deadline; nextExpiry says when to look', () => {
    const s = session({}, 5);
    assert.equal(s.nextExpiry, undefined);
    s.publish(expiring('long', HOUR), 0);
    s.publish(expiring('short', 10), 0);
    s.publish(msg('t', 1, 'none'), 0);
    assert.equal(s.nextExpiry, 10_000);
    assert.deepEqual(failures(s.expireQueued(9_999)), [], 'not yet');
    const step = s.expireQueued(10_000);
    assert.deepEqual(failures(step), ['2:MQTT_ERR_MESSAGE_EXPIRED']);
    assert.ok(step.events.some((e) => e.type === 'store-delete' && e.key === 'out:2'));
    assert.equal(s.queuedCount, 2);
    assert.equal(s.nextExpiry, HOUR * 1000, 'the next one');
    s.connect(20_000);
    assert.deepEqual(publishes(s.handle(connack(), 20_000)).map(text), ['long', 'none'], 'the rest go, in order');
  });

  test('a long queue is swept for expired messages at spaced times (a walk each), and none is sent stale', () => {
    const s = session({}, 5);
    for (let i = 0; i < 49_900; i++) s.publish(msg('t', 1, 'bulk'), 0);
    // Telemetry every 10 ms that expires after a second: a deadline passes every 10 ms.
    for (let i = 0; i < 100; i++) s.publish(expiring(`tel-${i}`, 1), i * 10);
    assert.equal(s.nextExpiry, 1_000);
    assert.deepEqual(failures(s.expireQueued(1_000)), ['49901:MQTT_ERR_MESSAGE_EXPIRED']);
    // 49 999 queued: the next sweep no sooner than 100 ms on, for the ten deadlines passed by then.
    assert.equal(s.nextExpiry, 1_100);
    assert.deepEqual(failures(s.expireQueued(1_050)), [], 'not swept before its time');
    assert.equal(failures(s.expireQueued(1_100)).length, 10);
    // Connected before the next sweep: what ran out meanwhile fails as it comes up, and is not sent.
    s.connect(1_150);
    const step = s.handle(connack({ receiveMaximum: 65535 }), 1_150);
    assert.equal(failures(step).length, 5);
    assert.ok(publishes(step).every((p) => text(p) === 'bulk' || Number(text(p).slice(4)) >= 16));
  });

  test('sent with what is left of the interval, rounded up; one past its deadline fails and leaves the store', () => {
    const s = session({}, 5);
    s.publish(expiring('short', 10), 0);
    s.publish(expiring('long', HOUR, 2), 0);
    s.publish(msg('t', 1, 'none'), 0);
    s.publish(expiring('zero', 0), 0);
    s.connect(10_500);
    const step = s.handle(connack(), 10_500);
    assert.deepEqual(failures(step), ['1:MQTT_ERR_MESSAGE_EXPIRED']);
    assert.ok(step.events.some((e) => e.type === 'store-delete' && e.key === 'out:1'));
    const sent = publishes(step);
    assert.deepEqual(sent.map(text), ['long', 'none', 'zero']);
    assert.equal(
      sent[0]!.properties?.messageExpiryInterval,
      HOUR - 10,
      '3 600 s less the 10.5 s it waited, rounded up',
    );
    assert.deepEqual(sent[0]!.properties?.userProperties, [['k', 'v']], 'the other properties go as given');
    assert.equal(sent[1]!.properties, undefined);
    assert.equal(sent[2]!.properties?.messageExpiryInterval, 0, 'an interval of 0 sets no local deadline');
  });

  test('the failure says how long the message had', () => {
    const s = session({}, 5);
    s.publish(expiring('short', 10, 0), 0);
    s.connect(20_000);
    const event = s.handle(connack(), 20_000).events.find((e) => e.type === 'publish-failed');
    assert.ok(event?.type === 'publish-failed');
    assert.match(
      event.error.message,
      /^a message to t was not sent: its Message Expiry Interval \(10 s\) ran out first$/,
    );
  });

  test('a message sent at once keeps its interval; the stored record carries the deadline', () => {
    const { s } = connected();
    const { step } = s.publish(expiring('now', 60), 5_000);
    assert.equal(publishes(step)[0]!.properties?.messageExpiryInterval, 60);
    const puts = step.events.flatMap((e) => (e.type === 'store-put' && e.record.kind === 'outgoing' ? [e.record] : []));
    assert.deepEqual(
      puts.map((r) => r.expiresAt),
      [65_000, 65_000],
    );
  });

  test('restored from a store: the deadline counts from when the message was first accepted', () => {
    const first = session({}, 5);
    const records = new Map<string, StoredRecord>();
    const keep = (step: Step) => {
      for (const e of step.events) {
        if (e.type === 'store-put') records.set(e.key, e.record);
        if (e.type === 'store-delete') records.delete(e.key);
      }
    };
    keep(first.publish(expiring('a', 30), 1_000).step);
    keep(first.publish(expiring('b', 300), 1_000).step);
    // The process ends; another starts 60 s later on the same store.
    const second = session({}, 5);
    second.restore(records.values());
    second.connect(61_000);
    const step = second.handle(connack(), 61_000);
    keep(step);
    assert.deepEqual(failures(step), ['1:MQTT_ERR_MESSAGE_EXPIRED']);
    assert.deepEqual(
      publishes(step).map((p) => `${text(p)}:${p.properties?.messageExpiryInterval}`),
      ['b:240'],
    );
    assert.deepEqual([...records.keys()], ['out:2']);
  });

  test('in flight when the line dropped: resent (DUP) with what is left, at least 1 s, even past its deadline', () => {
    const { s } = connected({ clean: false });
    s.publish(expiring('a', 100), 0);
    s.publish(expiring('b', 5), 0);
    s.connectionLost();
    s.connect(30_000);
    const step = s.handle(connack({}, true), 30_000);
    assert.deepEqual(failures(step), [], 'a message in flight must be resent [MQTT-4.4.0-1]');
    assert.deepEqual(
      publishes(step).map((p) => `${text(p)}:${p.dup}:${p.properties?.messageExpiryInterval}`),
      ['a:true:70', 'b:true:1'],
    );
  });

  test('in flight when the server lost the session: sent again as new, so an expired one fails', () => {
    const { s } = connected();
    s.publish(expiring('a', 100), 0);
    s.publish(expiring('b', 5), 0);
    s.connectionLost();
    s.connect(30_000);
    const step = s.handle(connack({}, false), 30_000);
    assert.deepEqual(failures(step), ['2:MQTT_ERR_MESSAGE_EXPIRED']);
    assert.deepEqual(
      publishes(step).map((p) => `${text(p)}:${p.dup}:${p.properties?.messageExpiryInterval}`),
      ['a:false:70'],
    );
  });

  test('a system clock set back meanwhile never lengthens the interval', () => {
    const s = session({}, 5);
    s.publish(expiring('a', 60), 1_000_000);
    s.connect(500_000);
    const sent = publishes(s.handle(connack(), 500_000));
    assert.equal(sent[0]!.properties?.messageExpiryInterval, 60);
  });

  test('a full queue sheds expired messages before it drops a live one, whichever the drop policy', () => {
    for (const dropPolicy of ['oldest', 'newest'] as const) {
      const s = session({ queueLimit: 3, dropPolicy }, 5);
      s.publish(msg('t', 1, 'keep'), 0);
      s.publish(expiring('stale-1', 10), 0);
      s.publish(expiring('stale-2', 20), 0);
      const { step } = s.publish(msg('t', 1, 'new'), 30_000);
      assert.deepEqual(failures(step), ['2:MQTT_ERR_MESSAGE_EXPIRED', '3:MQTT_ERR_MESSAGE_EXPIRED'], dropPolicy);
      assert.equal(s.queuedCount, 2);
      s.connect(30_000);
      assert.deepEqual(publishes(s.handle(connack(), 30_000)).map(text), ['keep', 'new'], dropPolicy);
    }
  });

  test('a full queue of messages not yet expired drops by its policy, as before', () => {
    const s = session({ queueLimit: 2, dropPolicy: 'oldest' }, 5);
    s.publish(expiring('a', 100), 0);
    s.publish(expiring('b', 100), 0);
    const { step } = s.publish(expiring('c', 100), 50_000);
    assert.deepEqual(failures(step), ['1:MQTT_ERR_QUEUE_FULL']);
  });

  test('3.1.1 has no such property on the wire, but a message that expired while queued is still not sent', () => {
    const s = session({}, 4);
    s.publish(expiring('old', 10), 0);
    s.publish(expiring('fresh', HOUR), 0);
    s.connect(20_000);
    const step = s.handle(connack({}), 20_000);
    assert.deepEqual(failures(step), ['1:MQTT_ERR_MESSAGE_EXPIRED']);
    const sent = publishes(step);
    assert.deepEqual(sent.map(text), ['fresh']);
    assert.equal(sent[0]!.properties, undefined);
  });
});

describe('topic aliases', () => {
  test('outgoing: assigned when allowed, topic omitted on reuse, least recently used gives way', () => {
    const { s } = connected({}, { topicAliasMaximum: 2 });
    const wire = (topic: string) => publishes(s.publish(msg(topic, 0), 1).step)[0]!;
    assert.deepEqual([wire('a').topic, wire('a').properties?.topicAlias], ['a', 1]);
    assert.equal(wire('a').topic, '');
    assert.equal(wire('b').properties?.topicAlias, 2);
    wire('a'); // a is now the most recently used
    const c = wire('c');
    assert.deepEqual([c.topic, c.properties?.topicAlias], ['c', 2], 'b (least recent) gives its alias to c');
  });

  test('outgoing: a topic sent again and again stays the most recently used', () => {
    const { s } = connected({}, { topicAliasMaximum: 2 });
    const wire = (topic: string) => publishes(s.publish(msg(topic, 0), 1).step)[0]!;
    for (const topic of ['a', 'a', 'a', 'b', 'a', 'a']) wire(topic);
    const c = wire('c');
    assert.deepEqual([c.topic, c.properties?.topicAlias], ['c', 2], 'b, used less recently than a, gives way');
    assert.deepEqual([wire('a').topic, wire('a').properties?.topicAlias], ['', 1]);
    const b = wire('b');
    assert.deepEqual([b.topic, b.properties?.topicAlias], ['b', 2], 'then c, not a, gives way');
  });

  test("outgoing: a caller's properties travel with the alias; the alias-only properties stay alias-only", () => {
    const { s } = connected({}, { topicAliasMaximum: 2 });
    const send = (properties?: PublishProperties) =>
      publishes(s.publish({ ...msg('a', 0), properties }, 1).step)[0]!.properties;
    const first = send();
    const own = send({ userProperties: [['k', 'v']] });
    assert.deepEqual(own, { userProperties: [['k', 'v']], topicAlias: 1 });
    const again = send();
    assert.deepEqual(again, { topicAlias: 1 });
    assert.deepEqual(first, { topicAlias: 1 });
  });

  test('outgoing: not used when the server allows none, nor in 3.1.1', () => {
    const { s } = connected();
    assert.equal(publishes(s.publish(msg('a', 0), 1).step)[0]?.properties, undefined);
  });

  test('incoming: resolves known aliases; an unknown one is a protocol error 0x82', () => {
    const { s } = connected({ properties: { topicAliasMaximum: 5 } });
    const set = s.handle({ ...msg('x/y', 0), type: 'publish', dup: false, properties: { topicAlias: 1 } }, 1);
    assert.equal(set.events[0]?.type === 'message' && set.events[0].message.topic, 'x/y');
    const use = s.handle({ ...msg('', 0), type: 'publish', dup: false, properties: { topicAlias: 1 } }, 2);
    assert.equal(use.events[0]?.type === 'message' && use.events[0].message.topic, 'x/y');
    // 0x94 (Topic Alias invalid) names an alias above our maximum; one never set is a Protocol Error.
    const bad = s.handle({ ...msg('', 0), type: 'publish', dup: false, properties: { topicAlias: 2 } }, 3);
    assert.deepEqual(bad.packets, [{ type: 'disconnect', reasonCode: 0x82 }]);
    const close = bad.events[0];
    assert.ok(close?.type === 'close');
    assert.equal(close.error.reasonCode, 0x82);
    assert.equal(s.state, 'disconnected');
  });

  test('incoming: an alias above our Topic Alias Maximum is 0x94; a topic with a known alias rebinds it', () => {
    const { s } = connected({ properties: { topicAliasMaximum: 2 } });
    const topicOf = (step: Step) => (step.events[0]?.type === 'message' ? step.events[0].message.topic : undefined);
    s.handle({ ...msg('a', 0), type: 'publish', dup: false, properties: { topicAlias: 2 } }, 1);
    s.handle({ ...msg('b', 0), type: 'publish', dup: false, properties: { topicAlias: 2 } }, 1);
    assert.equal(
      topicOf(s.handle({ ...msg('', 0), type: 'publish', dup: false, properties: { topicAlias: 2 } }, 1)),
      'b',
    );
    const over = s.handle({ ...msg('c', 0), type: 'publish', dup: false, properties: { topicAlias: 3 } }, 2);
    assert.deepEqual(over.packets, [{ type: 'disconnect', reasonCode: 0x94 }]);
  });

  test('incoming: no alias outlives its connection, and nothing but AUTH comes before CONNACK [MQTT-3.3.2-7]', () => {
    const s = session({ properties: { topicAliasMaximum: 2 } });
    s.connect(0);
    s.handle(connack(), 0);
    s.handle({ ...msg('old/topic', 0), type: 'publish', dup: false, properties: { topicAlias: 1 } }, 1);
    s.connectionLost();
    s.connect(2);
    // A PUBLISH before CONNACK (here using the last connection's alias) is a protocol error, never a message.
    const early = s.handle({ ...msg('', 0), type: 'publish', dup: false, properties: { topicAlias: 1 } }, 3);
    assert.deepEqual(eventTypes(early), ['close']);
    assert.deepEqual(early.packets, [{ type: 'disconnect', reasonCode: 0x82 }]);
    s.connect(4);
    s.handle(connack(), 4);
    const after = s.handle({ ...msg('', 0), type: 'publish', dup: false, properties: { topicAlias: 1 } }, 5);
    assert.deepEqual(after.packets, [{ type: 'disconnect', reasonCode: 0x82 }], 'the old mapping is gone');
  });
});

describe('topic aliases chosen by the caller', () => {
  const wireOf = (s: ClientSession, topic: string, properties?: PublishProperties) =>
    publishes(s.publish({ ...msg(topic, 0), properties }, 1).step)[0]!;
  const onWire = (p: PublishPacket) => [p.topic, p.properties?.topicAlias];

  test('a caller alias rebinds the table: the topic that held it gets a new one, sent in full', () => {
    const { s } = connected({}, { topicAliasMaximum: 3 });
    assert.deepEqual(onWire(wireOf(s, 'b')), ['b', 1]);
    assert.deepEqual(onWire(wireOf(s, 'a', { topicAlias: 1 })), ['a', 1], 'the caller binds 1 to a, topic sent');
    assert.deepEqual(onWire(wireOf(s, 'b')), ['b', 2], 'b no longer claims 1: a new alias with its topic');
    assert.deepEqual(onWire(wireOf(s, 'a')), ['', 1], 'the automatic path reuses the caller binding');
    assert.deepEqual(onWire(wireOf(s, 'a', { topicAlias: 1 })), ['', 1], 'repeating a known binding omits the topic');
  });

  test('a caller alias above the ones in use is never handed out again automatically', () => {
    const { s } = connected({}, { topicAliasMaximum: 3 });
    assert.deepEqual(onWire(wireOf(s, 'x', { topicAlias: 2 })), ['x', 2]);
    assert.deepEqual(onWire(wireOf(s, 'p')), ['p', 1]);
    assert.deepEqual(onWire(wireOf(s, 'q')), ['q', 3], 'skips 2, which x holds');
    // Full: the least recently used (x) gives way.
    assert.deepEqual(onWire(wireOf(s, 'r')), ['r', 2]);
    assert.deepEqual(onWire(wireOf(s, 'x')), ['x', 1], 'p was least recent after x was evicted');
  });

  test('moving a topic to another caller alias frees its old one for the next topic', () => {
    const { s } = connected({}, { topicAliasMaximum: 2 });
    assert.deepEqual(onWire(wireOf(s, 'a')), ['a', 1]);
    assert.deepEqual(onWire(wireOf(s, 'a', { topicAlias: 2 })), ['a', 2]);
    assert.deepEqual(onWire(wireOf(s, 'b')), ['b', 1], 'alias 1 was freed, not the LRU a evicted');
    assert.deepEqual(onWire(wireOf(s, 'a')), ['', 2]);
  });

  test('with automatic aliasing off, a caller alias is still recorded and sent', () => {
    const { s } = connected({ topicAliases: false }, { topicAliasMaximum: 2 });
    assert.deepEqual(onWire(wireOf(s, 'a')), ['a', undefined]);
    assert.deepEqual(onWire(wireOf(s, 'a', { topicAlias: 2 })), ['a', 2]);
  });

  test('an alias outside the server maximum fails locally with MQTT_ERR_INVALID_OPTION', () => {
    const { s } = connected({}, { topicAliasMaximum: 2 });
    assert.throws(() => s.publish({ ...msg('a', 1), properties: { topicAlias: 3 } }, 1), {
      code: 'MQTT_ERR_INVALID_OPTION',
      reasonCode: 0x94,
    });
    const none = connected().s;
    assert.throws(() => none.publish({ ...msg('a', 0), properties: { topicAlias: 1 } }, 1), {
      code: 'MQTT_ERR_INVALID_OPTION',
    });
  });

  test('queued offline before any CONNACK: checked once the server limits are known', () => {
    const s = session();
    const { seq } = s.publish({ ...msg('a', 1), properties: { topicAlias: 7 } }, 0);
    s.connect(0);
    const out = s.handle(connack({ topicAliasMaximum: 2 }), 1);
    assert.equal(publishes(out).length, 0);
    const failed = out.events.find((e) => e.type === 'publish-failed');
    assert.ok(failed?.type === 'publish-failed' && failed.seq === seq);
    assert.equal(failed.error.code, 'MQTT_ERR_INVALID_OPTION');
  });

  test('in flight when reconnecting to a server with a lower maximum: resent without the caller alias', () => {
    const { s } = connected({ clean: false }, { topicAliasMaximum: 5 });
    const first = publishes(s.publish({ ...msg('a', 1), properties: { topicAlias: 4, contentType: 'c' } }, 1).step);
    assert.deepEqual(onWire(first[0]!), ['a', 4]);
    s.connectionLost();
    s.connect(2);
    const again = publishes(s.handle(connack({ topicAliasMaximum: 2 }, true), 3));
    assert.equal(again.length, 1);
    assert.equal(again[0]?.dup, true);
    assert.deepEqual(onWire(again[0]!), ['a', 1], 'an automatic alias instead of the out-of-range one');
    assert.equal(again[0]?.properties?.contentType, 'c', 'the other properties kept');
  });

  test('delivered messages carry no topicAlias, so forwarding their properties cannot rebind one', () => {
    const { s } = connected({ properties: { topicAliasMaximum: 5 } }, { topicAliasMaximum: 5 });
    const incoming = (topic: string, properties: PublishProperties) =>
      s.handle({ ...msg(topic, 0), type: 'publish', dup: false, properties }, 1).events[0];
    const set = incoming('in/x', { topicAlias: 1, contentType: 'json' });
    assert.ok(set?.type === 'message');
    assert.deepEqual([set.message.topic, set.message.properties], ['in/x', { contentType: 'json' }]);
    const use = incoming('', { topicAlias: 1 });
    assert.ok(use?.type === 'message');
    assert.equal(use.message.topic, 'in/x');
    assert.equal(use.message.properties, undefined, 'nothing but the alias: no properties left');
    // Forwarding what was received (the bug): a message to another topic, then back to the first.
    assert.deepEqual(onWire(wireOf(s, 'out/b')), ['out/b', 1]);
    assert.deepEqual(onWire(wireOf(s, 'out/a', set.message.properties)), ['out/a', 2]);
    assert.deepEqual(onWire(wireOf(s, 'out/b')), ['', 1]);
  });
});

describe('limits', () => {
  test('a publish above the server Maximum Packet Size is rejected locally', () => {
    const { s } = connected({}, { maximumPacketSize: 64 });
    assert.throws(() => s.publish(msg('a', 1, 'x'.repeat(100)), 1), { code: 'MQTT_ERR_PACKET_TOO_LARGE' });
    assert.equal(publishes(s.publish(msg('a', 1, 'x'.repeat(10)), 1).step).length, 1);
  });

  test('queued while offline, then too large for the server: fails at send time', () => {
    const s = session();
    const { seq } = s.publish(msg('a', 1, 'x'.repeat(100)), 0);
    s.connect(1);
    const step = s.handle(connack({ maximumPacketSize: 64 }), 1);
    const failed = step.events.find((e) => e.type === 'publish-failed');
    assert.ok(failed?.type === 'publish-failed' && failed.seq === seq);
    assert.equal(failed.error.code, 'MQTT_ERR_PACKET_TOO_LARGE');
    assert.equal(publishes(step).length, 0);
  });

  test('QoS above the server maximum and retain it lacks are refused', () => {
    const { s } = connected({}, { maximumQoS: 1, retainAvailable: 0 });
    assert.throws(() => s.publish(msg('a', 2), 1), { code: 'MQTT_ERR_PUBLISH_FAILED', reasonCode: 0x9b });
    assert.throws(() => s.publish({ ...msg('a', 0), retain: true }, 1), { reasonCode: 0x9a });
  });
});

describe('keepalive', () => {
  test('PINGREQ only after the line was idle for the keepalive; missing PINGRESP closes', () => {
    const { s } = connected({ keepalive: 10, pingTimeoutMs: 5000 });
    assert.deepEqual(types(s.tick(9_999)), []);
    s.publish(msg('a', 1), 9_000);
    s.handle({ type: 'puback', packetId: 1 }, 9_500);
    assert.deepEqual(types(s.tick(10_000)), [], 'sent at 9 s, heard from at 9.5 s: not idle');
    assert.equal(s.nextTick(), 19_000);
    assert.deepEqual(types(s.tick(19_000)), ['pingreq']);
    assert.deepEqual(types(s.tick(20_000)), [], 'one PINGREQ outstanding at a time');
    s.handle({ type: 'pingresp' }, 20_500);
    assert.equal(s.nextTick(), 29_000);
    assert.deepEqual(types(s.tick(29_000)), ['pingreq']);
    assert.deepEqual(eventTypes(s.tick(33_999)), []);
    const timeout = s.tick(34_000);
    assert.ok(timeout.events[0]?.type === 'close');
    assert.equal(timeout.events[0].error.code, 'MQTT_ERR_KEEPALIVE_TIMEOUT');
    assert.equal(s.state, 'disconnected');
  });

  test('a client that only sends QoS 0 hears nothing back: it still sends PINGREQ, so a dead line shows', () => {
    const { s } = connected({ keepalive: 10, pingTimeoutMs: 5000 });
    for (let t = 2_000; t < 10_000; t += 2_000) {
      s.publish(msg('a', 0), t);
      assert.deepEqual(types(s.tick(t)), []);
    }
    s.publish(msg('a', 0), 10_000);
    assert.deepEqual(types(s.tick(10_000)), ['pingreq'], 'sending all along, but nothing heard for 10 s');
    s.publish(msg('a', 0), 12_000);
    assert.deepEqual(eventTypes(s.tick(15_000)), ['close'], 'no PINGRESP: the line is dead');
  });

  test('while reading is paused an overdue PINGRESP closes nothing; PINGREQs go on; resuming restarts the wait', () => {
    const { s } = connected({ keepalive: 10 });
    assert.deepEqual(types(s.tick(10_000)), ['pingreq']);
    assert.deepEqual(types(s.tick(20_000, false)), ['pingreq'], 'paused: another PINGREQ keeps the server happy');
    assert.equal(s.nextTick(false), 30_000);
    assert.deepEqual(eventTypes(s.tick(29_000, false)), [], 'no keepalive timeout while not reading');
    assert.equal(s.state, 'connected');
    s.readingResumed(35_000);
    assert.equal(s.nextTick(), 45_000, 'a full timeout from the resume');
    assert.deepEqual(eventTypes(s.tick(44_000)), []);
    assert.deepEqual(eventTypes(s.tick(45_000)), ['close']);
  });

  test('Server Keep Alive replaces ours', () => {
    const { s } = connected({ keepalive: 60 }, { serverKeepAlive: 2 });
    assert.deepEqual(types(s.tick(2000)), ['pingreq']);
  });
});

describe('subscriptions', () => {
  test('SUBSCRIBE waits while offline, goes out on connect, SUBACK completes it', () => {
    const s = session();
    const { packetId, step } = s.subscribe([{ topicFilter: 'a/#', qos: 1 }], undefined, 0);
    assert.equal(step.packets.length, 0);
    s.connect(1);
    const out = s.handle(connack(), 1);
    assert.deepEqual(types(out), ['subscribe']);
    const ack = s.handle({ type: 'suback', packetId, reasonCodes: [1] }, 2);
    assert.deepEqual(eventTypes(ack), ['suback']);
    assert.ok(s.idle);
  });

  test('invalid filters throw', () => {
    const { s } = connected();
    assert.throws(() => s.subscribe([{ topicFilter: 'a/#/b', qos: 0 }], undefined, 0));
    assert.throws(() => s.publish(msg('a/+', 0), 0), { code: 'MQTT_ERR_INVALID_TOPIC_NAME' });
  });

  test('the last valid topic is remembered, and nothing else passes unchecked', () => {
    const { s } = connected();
    assert.throws(() => s.publish(msg('', 1), 0), { code: 'MQTT_ERR_INVALID_TOPIC_NAME' }, 'empty, first of all');
    s.publish(msg('a/b', 1), 0);
    s.publish(msg('a/b', 1), 0);
    for (const bad of ['', 'a/+', 'a/#', 'a\u0000b']) {
      assert.throws(() => s.publish(msg(bad, 1), 0), { code: 'MQTT_ERR_INVALID_TOPIC_NAME' }, JSON.stringify(bad));
      s.publish(msg('a/b', 1), 0);
    }
  });
});

describe('poison messages', () => {
  type Failed = Extract<Step['events'][number], { type: 'publish-failed' }>;
  const failures = (step: Step) => step.events.filter((e): e is Failed => e.type === 'publish-failed');
  const topicsSent = (step: Step) => publishes(step).map((p) => p.topic);

  /** A persistent 3.1.1 session with `topics` published QoS 1 and none acknowledged, not yet connected. */
  function offline(topics: string[], options: Partial<SessionOptions> = {}) {
    const s = session({ clean: false, ...options }, 4);
    for (const topic of topics) s.publish(msg(topic, 1), 0);
    return s;
  }

  /** Connects at `now` (the server kept the session); returns the CONNACK step, with the resends. */
  function reconnect(s: ClientSession, now: number): Step {
    s.connect(now);
    return s.handle(connack(undefined, true), now);
  }

  test('the oldest unacknowledged message fails after 5 connections in a row the server closed right after it', () => {
    const s = offline(['ok', 'bad', 'after']);
    const first = reconnect(s, 0);
    assert.deepEqual(topicsSent(first), ['ok', 'bad', 'after']);
    // The server takes 'ok' and hangs up reading 'bad', as AWS IoT does on a topic the policy denies.
    s.handle({ type: 'puback', packetId: 1 }, 10);
    let now = 20;
    for (let strike = 1; strike <= 5; strike++) {
      const closed = s.serverClosed(now);
      s.connectionLost();
      if (strike < 5) {
        assert.deepEqual(failures(closed), [], `strike ${strike} fails nothing`);
        now += 1000 * 2 ** strike; // the backoff
        const again = reconnect(s, now);
        assert.deepEqual(topicsSent(again), ['bad', 'after'], 'sent again, DUP');
        now += 5;
        continue;
      }
      const [failed] = failures(closed);
      assert.equal(failed?.error.code, 'MQTT_ERR_POISON_MESSAGE');
      assert.match(failed?.error.message ?? '', /closed the connection .* on 5 connections in a row/);
      assert.deepEqual(
        closed.events.filter((e) => e.type === 'store-delete').map((e) => (e as { key: string }).key),
        ['out:2'],
        'it leaves the store',
      );
    }
    const last = reconnect(s, now + 60_000);
    assert.deepEqual(topicsSent(last), ['after'], 'the message behind it goes');
    assert.equal(s.inflightCount, 1);
  });

  test('any other end of a connection starts the count again; a close long after sending blames nothing', () => {
    const s = offline(['bad']);
    let now = 0;
    const strike = (n: number) => {
      for (let i = 0; i < n; i++) {
        reconnect(s, now);
        now += 100;
        assert.deepEqual(failures(s.serverClosed(now)), []);
        s.connectionLost();
      }
    };
    strike(4);
    // A line lost to an error (or a keepalive timeout, or our own close): connectionLost alone.
    reconnect(s, now);
    s.connectionLost();
    strike(4);
    // Closed 6 s after the message went: the server did not close over it.
    reconnect(s, now);
    now += 6000;
    assert.deepEqual(failures(s.serverClosed(now)), []);
    s.connectionLost();
    strike(4);
    // A server going down (5.0 would say 0x8B) or a connection that never got to send it: no strike either way.
    s.connect(now);
    assert.deepEqual(failures(s.serverClosed(now)), [], 'closed before CONNACK');
    s.connectionLost();
    reconnect(s, now);
    assert.equal(failures(s.serverClosed(now + 1)).length, 1, 'the fifth in a row');
  });

  test('an acknowledged message is never blamed: the strikes go to the next one sent', () => {
    const s = offline(['a', 'b']);
    let now = 0;
    for (let i = 0; i < 4; i++) {
      reconnect(s, now);
      now += 10;
      s.serverClosed(now);
      s.connectionLost();
    }
    reconnect(s, now);
    s.handle({ type: 'puback', packetId: 1 }, now + 1);
    const closed = s.serverClosed(now + 2);
    assert.deepEqual(failures(closed), [], "'b' has one strike, 'a' is done");
    s.connectionLost();
    assert.equal(s.inflightCount, 1);
  });

  test('a QoS 2 message the server took (PUBREC) is not blamed', () => {
    const s = offline([]);
    s.publish(msg('q2', 2), 0);
    reconnect(s, 0);
    s.handle({ type: 'pubrec', packetId: 1 }, 1);
    for (let i = 0; i < 6; i++) {
      assert.deepEqual(failures(s.serverClosed(2 + i)), []);
      s.connectionLost();
      reconnect(s, 2 + i);
    }
    assert.equal(s.inflightCount, 1);
  });

  test('5.0: a DISCONNECT that can be a message’s fault strikes it, one that cannot breaks the run', () => {
    const s = session({ clean: false, properties: { sessionExpiryInterval: 3600 } });
    s.publish(msg('denied', 1), 0);
    const connect = (now: number) => {
      s.connect(now);
      return s.handle(connack({}, true), now);
    };
    let now = 0;
    for (let i = 0; i < 4; i++) {
      connect(now);
      now += 10;
      assert.deepEqual(failures(s.handle({ type: 'disconnect', reasonCode: 0x87 }, now)), []);
    }
    connect(now);
    s.handle({ type: 'disconnect', reasonCode: 0x8b }, now + 1);
    for (let i = 0; i < 4; i++) {
      connect(now);
      now += 10;
      assert.deepEqual(failures(s.handle({ type: 'disconnect', reasonCode: 0x90 }, now)), []);
    }
    connect(now);
    const fifth = s.handle({ type: 'disconnect', reasonCode: 0x95 }, now + 1);
    assert.deepEqual(eventTypes(fifth), ['server-disconnect', 'store-delete', 'publish-failed']);
    assert.match(failures(fifth)[0]?.error.message ?? '', /sent DISCONNECT 0x95 Packet too large/);
  });

  test('poisonStrikes sets the count; 0 resends for ever', () => {
    for (const [poisonStrikes, fails] of [
      [2, 2],
      [0, Number.POSITIVE_INFINITY],
    ] as const) {
      const s = offline(['bad'], { poisonStrikes });
      let failedAt = Number.POSITIVE_INFINITY;
      for (let i = 1; i <= 50 && failedAt === Number.POSITIVE_INFINITY; i++) {
        reconnect(s, i * 100);
        if (failures(s.serverClosed(i * 100 + 1)).length > 0) failedAt = i;
        s.connectionLost();
      }
      assert.equal(failedAt, fails);
    }
  });

  test('the strikes follow the message when the server lost the session and it goes again as new', () => {
    const s = offline(['bad', 'next']);
    let now = 0;
    for (let i = 1; i <= 5; i++) {
      s.connect(now);
      const sent = s.handle(connack(undefined, false), now);
      assert.deepEqual(topicsSent(sent), ['bad', 'next']);
      now += 10;
      const closed = s.serverClosed(now);
      s.connectionLost();
      assert.equal(failures(closed).length, i === 5 ? 1 : 0);
    }
  });
});
