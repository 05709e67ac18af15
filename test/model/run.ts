// The model run: random operations from a seeded generator, applied to the reference model and to a real broker
// one at a time; after each, every connection settles (acknowledgements sent, PINGREQ answered, nothing more
// arriving) and what each client received is compared with what the model says it must receive. A failure names
// the seed and the step, so the same run can be replayed.
import type { ProtocolVersion } from '../../packages/mqtt/src/codec/packets.js';
import { describeOp, Generator, malformedBytes, type Op, willOf, wireOf } from './operations.js';
import { type ClientSessionState, Peer, type Received } from './peer.js';
import { expectedSignature } from './properties.js';
import { realNow, sleep } from './real-time.js';
import {
  type ConnectionLimits,
  type Expected,
  type ModelMessage,
  type Profile,
  ReferenceModel,
  type SharedObligation,
} from './reference.js';

export interface ModelRunOptions {
  port: number;
  seed: number;
  steps: number;
  profile: Profile;
  /** Client ids are `${prefix}c0`… so runs against one broker do not meet. */
  prefix?: string;
  /** Shuts the broker down gracefully and starts it again on the same port and data (a durable broker only). */
  restart?: () => Promise<void>;
  /** How the clients connect: TCP (default) or WebSocket at `/mqtt`. */
  transport?: 'tcp' | 'ws';
  /**
   * The broker runs on virtual time (node:test's mock timers): the run then uses short session expiries, will
   * delays and message expiries, and moves time on a second at a time.
   */
  clock?: ModelClock;
}

export interface ModelClock {
  /** Moves the broker's clock and timers on by `ms`. */
  tick(ms: number): void;
  /** Whether the broker still has a connection for the client (it has not yet noticed its end). */
  connected(id: string): boolean;
}

export class ModelDivergence extends Error {}

/** Whether the client left this delivery unacknowledged when its connection ended (its state still holds it). */
const unacknowledged = (state: ClientSessionState, r: Received): boolean =>
  r.packetId !== undefined && state.unacknowledged.has(r.packetId);

export async function runModel(options: ModelRunOptions): Promise<{ steps: number; deliveries: number }> {
  const { port, seed, steps, profile } = options;
  const prefix = options.prefix ?? `s${seed}-`;
  const ids = Array.from({ length: 6 }, (_, i) => `${prefix}c${i}`);
  const versions = new Map<string, ProtocolVersion>(ids.map((id, i) => [id, i < 3 ? 5 : 4]));
  const generator = new Generator(seed, ids, versions, profile, options.restart !== undefined, !!options.clock);
  const model = new ReferenceModel(profile);
  const peers = new Map<string, Peer>();
  const wills = new Map<string, ModelMessage>();
  const trace: string[] = [];
  let deliveries = 0;
  let step = 0;
  /** What every client received in the step being checked, for the failure message. */
  let stepReceived = '';
  /** Clients holding their acknowledgements: what they received and were due meanwhile, checked when it ends. */
  const holds = new Map<string, { expected: Expected[]; received: Received[] }>();
  /** Holds ended by `release` in this step, checked at its end. */
  const releasing = new Map<string, { expected: Expected[]; received: Received[] }>();
  /** What an offline session is owed from its last connection: its client state and the deliveries to come again. */
  const carried = new Map<string, { expect: Expected[]; state: ClientSessionState }>();

  const fail = (what: string): never => {
    const recent = trace.slice(process.env.MODEL_TRACE === 'all' ? 0 : -25).join('\n  ');
    const received = stepReceived === '' ? '' : `\n  received in this step:\n  ${stepReceived}`;
    throw new ModelDivergence(`seed ${seed}, step ${step}: ${what}${received}\n  last operations:\n  ${recent}`);
  };

  // The monitor: a 5.0 client on '#' that sees every message, also how a dropped client's will is awaited.
  const monitorId = `${prefix}monitor`;
  const monitorLimits: ConnectionLimits = { receiveMaximum: 65535, topicAliasMaximum: 0 };
  const openMonitor = async (): Promise<Peer> => {
    const peer = await Peer.open(port, monitorId, 5, monitorLimits, options.transport);
    await peer.connect({ clientId: monitorId, clean: true, keepalive: 0 });
    model.connect(monitorId, 5, true, false, monitorLimits);
    peer.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: '#', qos: 2 }] });
    await peer.expect('suback');
    model.subscribe(monitorId, { filter: '#', qos: 2, noLocal: false, retainAsPublished: false }, 0);
    peers.set(monitorId, peer);
    return peer;
  };
  let monitor = await openMonitor();
  /** Sessions that were connected when the broker went down: their next deliveries come in an order of its own. */
  const reordered = new Set<string>();
  /** Batch numbers the runner gives out (negative, apart from the model's) for deliveries in an order left open. */
  let looseBatch = 0;

  const settle = async (): Promise<void> => {
    for (let round = 0; ; round++) {
      if (round > 200) fail('the broker kept sending for 200 settle rounds');
      const live = [...peers.values()].filter((p) => !p.closed);
      const before = live.reduce((n, p) => n + p.activity, 0);
      for (const p of live) p.flushAcks();
      await Promise.all(live.map((p) => p.ping().catch((e: Error) => fail(e.message))));
      if (live.reduce((n, p) => n + p.activity, 0) === before) return;
    }
  };

  const until = async (predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> => {
    const deadline = realNow() + timeoutMs;
    while (!predicate()) {
      if (realNow() > deadline) fail(`timed out waiting for ${what}`);
      await sleep(2);
    }
  };

  /** The broker noticed the connection end once the monitor has its will (every connection has one). */
  const willSeen = (will: ModelMessage) => () => monitor.received.some((r) => r.tag === will.tag);

  const openPeer = async (op: Extract<Op, { kind: 'connect' | 'takeover' }>): Promise<Peer> => {
    const version = versions.get(op.id)!;
    const peer = await Peer.open(port, op.id, version, op.limits, options.transport);
    peer.checksReceiveMaximum = profile.honoursReceiveMaximum;
    const carry = carried.get(op.id);
    carried.delete(op.id);
    if (carry !== undefined) peer.restore(carry.state);
    const sessionExpiry = op.persistent ? (op.sessionExpiry ?? 3600) : 0;
    const connack = await peer
      .connect({
        clientId: op.id,
        clean: op.cleanStart,
        keepalive: 0,
        will: willOf(op.will, version),
        properties:
          version === 5
            ? {
                sessionExpiryInterval: sessionExpiry,
                receiveMaximum: op.limits.receiveMaximum === 65535 ? undefined : op.limits.receiveMaximum,
                topicAliasMaximum: op.limits.topicAliasMaximum || undefined,
                maximumPacketSize: op.limits.maximumPacketSize,
              }
            : undefined,
      })
      .catch((e: Error) => fail(e.message));
    if (connack.reasonCode !== 0) fail(`CONNACK refused ${op.id}: 0x${connack.reasonCode.toString(16)}`);
    const expiry = version === 4 ? undefined : sessionExpiry;
    const present = model.connect(op.id, version, op.cleanStart, op.persistent, op.limits, expiry);
    if (connack.sessionPresent !== present) fail(`CONNACK session present ${connack.sessionPresent}, model ${present}`);
    // A resumed session first gets again what its last connection left unacknowledged (expired or not: its delivery
    // has begun), then what was not sent (unless it expired meanwhile).
    if (present && carry !== undefined) {
      const owed = carry.expect.filter((e) => e.dup === true || model.live(e)).map((e) => model.sent(e));
      model.expected.set(op.id, [...owed, ...model.takeExpected(op.id)]);
    }
    if (present && reordered.has(op.id)) {
      // After a shutdown, resends and queued messages come in the broker's order, each with DUP or not.
      const batch = --looseBatch;
      model.expected.set(
        op.id,
        model.takeExpected(op.id).map((e) => ({ ...e, batch, anyDup: e.dup !== true ? true : undefined })),
      );
    }
    reordered.delete(op.id);
    wills.set(op.id, op.will);
    peers.set(op.id, peer);
    return peer;
  };

  /** The acknowledgement of a type, which must carry success. */
  const acked = async (peer: Peer, type: 'puback' | 'pubrec' | 'pubcomp'): Promise<void> => {
    const ack = await peer.expect(type).catch((e: Error) => fail(e.message));
    if ((ack.reasonCode ?? 0) !== 0) fail(`${peer.id}: ${type} with 0x${ack.reasonCode!.toString(16)}`);
  };

  const publishWithFault = async (op: Extract<Op, { kind: 'publish' }>, peer: Peer): Promise<void> => {
    const m = op.message;
    const wire = wireOf(m);
    const packetId = peer.packetId();
    peer.sendPublish(wire, packetId, false);
    // A retained QoS 2 message and a retained will on one topic: which is kept after a lost link depends on whether
    // the broker routes QoS 2 at PUBLISH or at PUBREL, both allowed. That case is run as a repeat instead.
    const will = wills.get(op.id);
    const eitherKept = m.qos === 2 && m.retain && will?.retain === true && will.topic === m.topic;
    if (op.fault === 'repeat' || eitherKept) {
      if (m.qos === 1) {
        // The second is a new message to the broker ([MQTT-4.3.2-5]): it may be delivered twice.
        peer.sendPublish(wire, packetId, true);
        await acked(peer, 'puback');
        await acked(peer, 'puback');
        model.publish(m);
        model.publish(m, { duplicate: true });
        return;
      }
      // QoS 2 before PUBREL: PUBREC again, and delivered once.
      await acked(peer, 'pubrec');
      peer.sendPublish(wire, packetId, true);
      await acked(peer, 'pubrec');
      peer.send({ type: 'pubrel', packetId });
      await acked(peer, 'pubcomp');
      model.publish(m);
      return;
    }
    // The link drops: a QoS 1 PUBLISH may or may not have been read; a QoS 2 one was (PUBREC came).
    if (m.qos === 2) await acked(peer, 'pubrec');
    const sharedBefore = model.shared.length;
    const queued = model.queueLengths();
    peer.destroy();
    // What the dropped link got in this step can only be the publisher's own copy (see below).
    peer.take();
    // The first QoS 1 PUBLISH, read or not, counts before the will.
    const first = m.qos === 1 ? () => model.publish(m, { duplicate: true }) : undefined;
    await connectionEnded(op.id, peer, wills.get(op.id), 'link dropped mid-publish', first);
    const limits = model.limitsOf(op.id) ?? { receiveMaximum: 65535, topicAliasMaximum: 0 };
    const again = await openPeer({
      kind: 'connect',
      id: op.id,
      cleanStart: false,
      persistent: true,
      limits,
      will: op.will!,
    });
    if (m.qos === 1) {
      again.sendPublish(wire, packetId, true);
      await acked(again, 'puback');
    } else {
      again.send({ type: 'pubrel', packetId });
      await acked(again, 'pubcomp');
    }
    model.publish(m);
    // Where the broker delivers it against the will and the session's resends is its own choice; once it must be.
    // The publisher's own copy may have reached the dropped link (and come again with DUP): left open.
    for (const o of model.shared.slice(sharedBefore)) if (o.members.has(op.id)) o.required = false;
    model.looseQueuedSince(queued);
    for (const [id, due] of model.expected) {
      const batch = --looseBatch;
      const own = (e: Expected) => id === op.id && e.tag === m.tag;
      model.expected.set(
        id,
        due.map((e) => ({ ...e, batch, ...(own(e) ? { optional: true, anyDup: true } : {}) })),
      );
    }
  };

  const execute = async (op: Op): Promise<void> => {
    const peer = peers.get(op.id);
    const version = versions.get(op.id)!;
    switch (op.kind) {
      case 'connect':
        await openPeer(op);
        return;
      case 'takeover': {
        const old = peer!;
        const oldWill = wills.get(op.id)!;
        // The old connection's will: 5.0 requires it (will delay 0); 3.1.1 leaves it to the broker.
        const willSent = version === 5 || profile.willOnTakeover311;
        peers.delete(op.id);
        const ended = endConnection(op.id, old);
        model.takeover(op.id, willSent ? oldWill : undefined);
        keepCarry(op.id, ended);
        await openPeer(op);
        await until(() => old.closed, `the broker to close ${op.id}'s old connection`);
        if (version === 5 && profile.disconnectOnTakeover && old.disconnectReason !== 0x8e) {
          fail(`taken-over connection got DISCONNECT ${old.disconnectReason}, not 0x8E`);
        }
        // A delayed will goes when the old session ends (Clean Start 1), never when it is resumed.
        if (willSent && model.willsOut.has(oldWill.tag)) {
          await until(willSeen(oldWill), `the will of ${op.id}'s old connection`);
        }
        checkShared(checkDirect(op.id, old.take(), []));
        return;
      }
      case 'restart': {
        // Nothing is acknowledged while the broker goes down: what was in flight must come again after it is back.
        const online = [...peers];
        for (const [id, p] of online) {
          if (holds.has(id)) continue;
          p.ackMode = 'hold';
          holds.set(id, { expected: [], received: [] });
        }
        await options.restart!();
        await until(() => online.every(([, p]) => p.closed), 'every connection to close at the shutdown');
        const ambiguous = model.shutdown(wills);
        // Connections whose sessions ended first: a shared message one of them held may have gone to a survivor.
        online.sort(([a], [b]) => Number(model.hasSession(a)) - Number(model.hasSession(b)));
        for (const [id, p] of online) {
          peers.delete(id);
          // The wills of the shutdown come in the order the broker closed the connections.
          const batch = --looseBatch;
          holds.get(id)!.expected.push(...model.takeExpected(id).map((e) => ({ ...e, batch })));
          keepCarry(id, endConnection(id, p, !model.hasSession(id)));
          if (model.hasSession(id)) reordered.add(id);
        }
        monitor = await openMonitor();
        if (ambiguous.size > 0) {
          // Several retained wills for one topic: the monitor's SUBACK brings the one the broker kept.
          await settle();
          for (const [topic, candidates] of ambiguous) {
            const kept = candidates.find((m) => monitor.received.some((r) => r.retain && r.tag === m.tag));
            if (kept === undefined)
              return fail(`none of the retained wills ${candidates.map((m) => m.tag)} on ${topic} was kept`);
            const expiresAt = model.keepRetained(kept);
            const due = model.expected.get(monitorId) ?? [];
            const at = due.findIndex((e) => e.retain && e.topic === topic);
            if (at >= 0) {
              const e = { ...due[at]!, tag: kept.tag, qos: kept.qos, note: kept.note, expiresAt, shown: undefined };
              due[at] = model.sent(e);
            }
          }
        }
        return;
      }
      case 'advance':
        options.clock!.tick(1000);
        model.tick();
        return;
      case 'hold':
        peer!.ackMode = op.mode;
        holds.set(op.id, { expected: [], received: [] });
        return;
      case 'release': {
        peer!.ackMode = 'prompt';
        releasing.set(op.id, holds.get(op.id)!);
        holds.delete(op.id);
        return;
      }
      case 'disconnect': {
        peer!.send({
          type: 'disconnect',
          reasonCode: op.reason,
          properties: op.sessionExpiry === undefined ? undefined : { sessionExpiryInterval: op.sessionExpiry },
        });
        if (op.sessionExpiry !== undefined) model.setSessionExpiry(op.id, op.sessionExpiry);
        await until(() => peer!.closed, `the broker to close ${op.id} after DISCONNECT`);
        const will = op.reason === 0 ? undefined : wills.get(op.id);
        await connectionEnded(op.id, peer!, will, `DISCONNECT 0x${op.reason.toString(16)}`);
        return;
      }
      case 'drop':
        peer!.destroy();
        await connectionEnded(op.id, peer!, wills.get(op.id), 'dropped');
        return;
      case 'malformed':
        peer!.writeRaw(malformedBytes(op.variant, version));
        await until(() => peer!.closed, `the broker to close ${op.id} after malformed bytes`);
        await connectionEnded(op.id, peer!, wills.get(op.id), 'closed for malformed bytes');
        return;
      case 'subscribe': {
        peer!.send({
          type: 'subscribe',
          packetId: peer!.packetId(),
          subscriptions: op.filters.map(({ filter, ...options }) => ({ topicFilter: filter, ...options })),
          properties: op.subscriptionId !== undefined ? { subscriptionIdentifiers: [op.subscriptionId] } : undefined,
        });
        const suback = await peer!.expect('suback').catch((e: Error) => fail(e.message));
        const granted = op.filters.map((f) => f.qos).join();
        if (suback.reasonCodes.join() !== granted) fail(`SUBACK ${suback.reasonCodes} for QoS ${granted}`);
        // As if each filter came in a SUBSCRIBE of its own, in order ([MQTT-3.8.4-4]).
        for (const { retainHandling, ...f } of op.filters) {
          model.subscribe(op.id, { ...f, subscriptionId: op.subscriptionId }, retainHandling);
        }
        return;
      }
      case 'unsubscribe': {
        peer!.send({ type: 'unsubscribe', packetId: peer!.packetId(), topicFilters: op.filters });
        const unsuback = await peer!.expect('unsuback').catch((e: Error) => fail(e.message));
        const codes = op.filters.map((filter) => (model.unsubscribe(op.id, filter) ? 0 : 0x11)).join();
        if (version === 5 && unsuback.reasonCodes?.join() !== codes)
          fail(`UNSUBACK ${unsuback.reasonCodes}, model ${codes}`);
        return;
      }
      case 'publish': {
        const m = op.message;
        if (op.fault !== undefined) return publishWithFault(op, peer!);
        const reason = await peer!.publish(wireOf(m), op.alias).catch((e: Error) => fail(e.message));
        if (reason !== 0) fail(`publish acknowledged with 0x${reason.toString(16)}`);
        model.publish(m);
        return;
      }
    }
  };

  /** A message too large for the client's Maximum Packet Size is never sent on that connection ([MQTT-3.1.2-25]). */
  const sendable = (id: string, expected: Expected[]): Expected[] => {
    if (peers.get(id)?.limits.maximumPacketSize === undefined) return [...expected];
    return expected.filter((e) => !e.tag.endsWith('-big'));
  };

  /** A copy that no direct expectation took: it must be some shared group's one delivery. */
  interface SharedCopy {
    id: string;
    version: ProtocolVersion;
    r: Received;
  }

  const sameFields = (version: ProtocolVersion, r: Received, e: Expected): boolean =>
    (e.anyDup === true || r.dup === (e.dup === true)) &&
    r.topic === e.topic &&
    r.qos === e.qos &&
    r.retain === e.retain &&
    (version === 4 ||
      (r.subscriptionIds.join() === e.subscriptionIds.join() && r.props === expectedSignature(e.note, e.shown)));

  /**
   * Checks one client's deliveries against its expected list, in order; returns the copies left for shared groups.
   * Of several copies of one message (a direct subscription and a shared group's pick), the one that matches the
   * direct expectation field for field is taken as the direct one.
   */
  const checkDirect = (id: string, received: Received[], expected: Expected[]): SharedCopy[] => {
    const version = id === monitorId ? 5 : versions.get(id)!;
    const pending = sendable(id, expected);
    const left: SharedCopy[] = [];
    received.forEach((r, index) => {
      deliveries++;
      const at = candidate(pending, r, version);
      if (at < 0) {
        left.push({ id, version, r });
        return;
      }
      const e = pending[at]!;
      // Unlike its expectation: another copy (a shared group's, or a later one) may be the one expected.
      const laterFits = () => received.slice(index + 1).some((later) => sameFields(version, later, e));
      const sharedCopy = () => model.shared.some((o) => o.tag === r.tag && o.members.has(id));
      if (!sameFields(version, r, e) && (laterFits() || sharedCopy())) {
        left.push({ id, version, r });
        return;
      }
      // Optional entries before the match (outside its batch) were left out by the broker: allowed. Not after a
      // QoS 0 copy, which may have overtaken them.
      const skipped = r.qos === 0 ? [] : pending.slice(0, at);
      const dropped = skipped.filter((x) => x.optional && (x.batch === undefined || x.batch !== e.batch));
      for (const x of dropped) pending.splice(pending.indexOf(x), 1);
      pending.splice(pending.indexOf(e), 1);
      if (!sameFields(version, r, e)) {
        const show = (x: Received | Expected) =>
          JSON.stringify({
            topic: x.topic,
            qos: x.qos,
            retain: x.retain,
            ids: x.subscriptionIds,
            props: 'props' in x ? x.props : expectedSignature(x.note, (x as Expected).shown),
            dup: x.dup,
          });
        fail(`${id} got ${r.tag} as ${show(r)}, model says ${show(e)}`);
      }
    });
    const missing = pending.filter((e) => !e.optional);
    if (missing.length > 0) {
      const show = (e: Expected) =>
        `${e.tag} (${e.topic} q${e.qos}${e.retain ? ' retain' : ''} [${e.subscriptionIds}]${e.dup ? ' dup' : ''}${e.anyDup ? ' dup?' : ''}${e.batch === undefined ? '' : ` batch ${e.batch}`})`;
      fail(`${id} did not get ${missing.map(show).join(', ')}`);
    }
    return left;
  };

  /** The copy that met each obligation, while another copy checked later may still show it was another's. */
  const metBy = new WeakMap<SharedObligation, SharedCopy>();

  /**
   * Pairs the leftover copies with open shared obligations (a client in two groups the message matches gets two
   * copies, so a greedy pairing can go wrong): a bipartite matching by augmenting paths; a copy without a partner
   * is a delivery the model does not allow. Copies paired in earlier steps take part too while their obligation is
   * kept (a member holding its acknowledgements has its copies checked only when the hold ends, so a copy checked
   * earlier may have been another group's). Returns the pairs of `copies`.
   */
  const checkShared = (copies: SharedCopy[]): Map<SharedObligation, SharedCopy> => {
    const fits = (c: SharedCopy, o: SharedObligation): boolean => {
      // A step is one moment of the model's time: what expired by then cannot have begun its delivery in it (a
      // resend of one begun earlier is the session's own, not the group's).
      if (!model.live(o)) return false;
      // Met already: only by a copy that can go to another obligation (not one a session left unacknowledged).
      if (o.received > 0 && (o.heldBy !== undefined || !metBy.has(o))) return false;
      const m = o.tag === c.r.tag ? o.members.get(c.id) : undefined;
      if (m === undefined) return false;
      return m.qos === c.r.qos && (c.version === 4 || m.subscriptionIds.join() === c.r.subscriptionIds.join());
    };
    const partner = new Map<SharedObligation, SharedCopy>();
    // Obligations that must be met in this step first (a held client's copy may meet another later), then newest
    // first: the tag of an empty (retained-clearing) message repeats, and an older one may still be open.
    const newestFirst = [...model.shared].reverse();
    // Among those, groups with fewer members first: a copy that could be the pick of a group it shares with a client
    // holding its acks may in fact be its own group's, and the held copy the shared group's.
    newestFirst.sort((a, b) => Number(!mustBeMet(a)) - Number(!mustBeMet(b)) || a.members.size - b.members.size);
    const augment = (c: SharedCopy, seen: Set<SharedObligation>): boolean => {
      for (const o of newestFirst) {
        if (seen.has(o) || !fits(c, o)) continue;
        seen.add(o);
        const other = partner.get(o) ?? (o.received > 0 ? metBy.get(o) : undefined);
        if (other === undefined || augment(other, seen)) {
          partner.set(o, c);
          return true;
        }
      }
      return false;
    };
    for (const c of copies) {
      if (augment(c, new Set())) continue;
      const groups = model.shared.filter((o) => o.tag === c.r.tag && o.members.has(c.id));
      const copy = `${c.id} got ${c.r.tag} (${c.r.topic} q${c.r.qos}${c.r.retain ? ' retain' : ''} [${c.r.subscriptionIds}])`;
      if (groups.some((o) => !model.live(o))) fail(`${copy} from a shared group after it expired`);
      fail(groups.length > 0 ? `${copy} from a shared group that already delivered it` : `${copy}, not expected`);
    }
    for (const [o, c] of partner) {
      o.received = 1;
      metBy.set(o, c);
    }
    return new Map([...partner].filter(([, c]) => copies.includes(c)));
  };

  /**
   * Pairs deliveries with expectations in any order (a window held shut lets QoS 0 overtake QoS 1 and 2), then checks
   * that QoS 1 and 2 came in the expected order. Returns what is left on either side.
   */
  const matchUnordered = (id: string, received: Received[], expected: Expected[]) => {
    const version = versions.get(id)!;
    const pending = [...expected];
    const pairs = new Map<Received, Expected>();
    const leftover: SharedCopy[] = [];
    for (const r of received) {
      deliveries++;
      // A copy unlike every expectation with its tag may be a shared group's; if not, checkShared says so.
      const at = pending.findIndex((e) => e.tag === r.tag && sameFields(version, r, e));
      if (at < 0) {
        leftover.push({ id, version, r });
        continue;
      }
      pairs.set(r, pending.splice(at, 1)[0]!);
    }
    let last = -1;
    for (const [r, e] of pairs) {
      // Empty messages that clear a retained topic share one tag (`clear:<topic>`): a copy of an earlier one (a
      // shared group's) may have been paired with a later one's expectation, so their order is not told apart.
      if (r.qos === 0 || e.batch !== undefined || r.tag.startsWith('clear:')) continue;
      const index = expected.indexOf(e);
      if (index < last) fail(`${id} got ${r.tag} out of order`);
      last = index;
    }
    return { pairs, unmatched: pending, leftover };
  };

  /**
   * The end of a connection (before the model hears of it): a client that held its acknowledgements has its
   * deliveries checked, and what the broker owes its session is worked out: the unacknowledged ones again with DUP
   * set, in the order they came, then the ones not sent yet (QoS 0 ones not sent are lost, as QoS 0 may be).
   */
  const endConnection = (id: string, peer: Peer, sessionEnds = false) => {
    const hold = holds.get(id);
    holds.delete(id);
    const state = peer.sessionState();
    if (hold === undefined) return { expect: [], state, shared: new Map<SharedObligation, SharedCopy>() };
    const received = [...hold.received, ...peer.take()];
    const { pairs, unmatched, leftover } = matchUnordered(id, received, [...hold.expected, ...model.takeExpected(id)]);
    // A shared group's copy never acknowledged by a session that ends with this connection does not count: the
    // broker may give the message to another member (when several end at once, in an order of its own).
    const shared = checkShared(sessionEnds ? leftover.filter((c) => !unacknowledged(state, c.r)) : leftover);
    const copyOf = new Map([...shared].map(([o, c]) => [c.r, o]));
    const again: Expected[] = [];
    for (const r of received) {
      if (!unacknowledged(state, r)) continue;
      const e = pairs.get(r);
      const expiresAt = copyOf.get(r)?.expiresAt;
      const base: Expected = e ?? { ...r, tag: r.tag, subscriptionIds: r.subscriptionIds, expiresAt };
      if (e === undefined && !copyOf.has(r)) continue;
      again.push({ ...base, dup: true, batch: undefined, optional: undefined });
    }
    // One too large for this connection may have been tried and dropped as sent ([MQTT-3.1.2-25]), or still wait.
    const mayBeDropped = (e: Expected) => peer.limits.maximumPacketSize !== undefined && e.tag.endsWith('-big');
    const unsent = unmatched
      .filter((e) => e.qos > 0)
      .map((e) => ({ ...e, optional: e.optional || (mayBeDropped(e) ? true : undefined) }));
    return { expect: [...again, ...unsent], state, shared };
  };

  /**
   * A connection ended (the client's DISCONNECT or lost link, or the broker closed it): its deliveries are checked,
   * then (after `before`) the model hears of it; with a will, the run waits until the monitor has it, which says
   * the broker noticed the end.
   */
  const connectionEnded = async (
    id: string,
    peer: Peer,
    will: ModelMessage | undefined,
    how: string,
    before?: () => void,
  ): Promise<void> => {
    peers.delete(id);
    const ending = endConnection(id, peer);
    before?.();
    model.disconnect(id, will);
    keepCarry(id, ending);
    if (will === undefined) return;
    if (model.willsOut.has(will.tag)) {
      await until(willSeen(will), `the will of ${id} (${how})`);
      return;
    }
    // A will held back for its delay: the broker's list of connections tells when it noticed the end.
    const clock = options.clock ?? fail(`the will of ${id} was held back on a broker without a clock`);
    await until(() => !clock.connected(id), `the broker to notice the end of ${id}'s connection (${how})`);
  };

  /** Keeps what the session is owed while it lives on; a shared delivery it leaves unacknowledged may go elsewhere. */
  const keepCarry = (id: string, ended: ReturnType<typeof endConnection>): void => {
    if (model.hasSession(id)) {
      if (ended.expect.length > 0 || ended.state.unacknowledged.size > 0 || ended.state.released.size > 0) {
        carried.set(id, { expect: ended.expect, state: ended.state });
      }
      for (const [o, c] of ended.shared) if (unacknowledged(ended.state, c.r)) o.heldBy = id;
      return;
    }
    carried.delete(id);
    for (const [o, c] of ended.shared) {
      if (unacknowledged(ended.state, c.r)) {
        o.received--;
        o.required = false;
        metBy.delete(o);
        // The model heard of the session's end before this copy was counted: the group may pass it on now.
        model.openToGroup(o);
      }
    }
  };

  /**
   * Where `tag` may match in the expected list: optional entries up to the first required one, which must come in
   * order, except the entries of one batch (retained messages for one SUBSCRIBE), which may come in any order.
   */
  const candidate = (pending: Expected[], r: Received, version: ProtocolVersion): number => {
    // QoS 0 may overtake QoS 1 and 2 held behind a full window: the order kept is per QoS ([MQTT-4.6.0-6]).
    if (r.qos === 0) {
      const at = pending.findIndex((e) => e.tag === r.tag && sameFields(version, r, e));
      if (at >= 0) return at;
    }
    let batch: number | undefined;
    let byTag = -1;
    for (let i = 0; i < pending.length; i++) {
      const e = pending[i]!;
      if (batch !== undefined && e.batch !== batch) break;
      if (e.tag === r.tag) {
        // Several copies of one message in a batch (one per subscription): the one with the same fields.
        if (sameFields(version, r, e)) return i;
        if (byTag < 0) byTag = i;
        if (e.batch === undefined) break;
        batch = e.batch;
        continue;
      }
      if (!e.optional) {
        if (e.batch === undefined) break;
        batch = e.batch;
      }
    }
    return byTag;
  };

  /** A shared message some member was online for must reach one within the step, unless a member holds its acks. */
  const mustBeMet = (o: SharedObligation): boolean =>
    o.required && ![...o.members.keys()].some((m) => holds.has(m) || releasing.has(m));

  const checkObligations = (fresh: SharedObligation[]): void => {
    for (const o of fresh) {
      if (mustBeMet(o) && o.received !== 1) {
        fail(`shared ${o.tag} for ${o.group} not delivered to any of ${[...o.members.keys()].join(', ')}`);
      }
    }
  };

  try {
    for (step = 1; step <= steps; step++) {
      const op = generator.next(model, (id) => holds.has(id));
      trace.push(`${step}: ${describeOp(op)}`);
      const sharedBefore = model.shared.length;
      stepReceived = '';
      await execute(op);
      await settle();
      const got = [...peers].map(([id, peer]) => [id, peer.take()] as const);
      stepReceived = got
        .filter(([, r]) => r.length > 0)
        .map(
          ([id, r]) =>
            `${id}: ${r.map((x) => `${x.tag}/q${x.qos}${x.retain ? 'r' : ''}${x.dup ? 'd' : ''}[${x.subscriptionIds}]`).join(' ')}`,
        )
        .join('\n  ');
      const copies: SharedCopy[] = [];
      for (const [id, received] of got) {
        const hold = holds.get(id);
        const released = releasing.get(id);
        if (hold !== undefined) {
          hold.received.push(...received);
          hold.expected.push(...model.takeExpected(id));
        } else if (released !== undefined) {
          const all = [...released.received, ...received];
          const due = sendable(id, [...released.expected, ...model.takeExpected(id)]);
          const { unmatched, leftover } = matchUnordered(id, all, due);
          const missing = unmatched.filter((e) => !e.optional);
          if (missing.length > 0)
            fail(`${id} did not get ${missing.map((e) => e.tag).join(', ')} once it acknowledged`);
          copies.push(...leftover);
        } else {
          copies.push(...checkDirect(id, received, model.takeExpected(id)));
        }
      }
      releasing.clear();
      checkShared(copies);
      for (const peer of peers.values()) {
        const owed = holds.has(peer.id) ? [] : peer.stillOwed();
        if (owed.length > 0) fail(`${peer.id}: the broker did not send again ${owed.join(', ')}`);
      }
      for (const [id] of model.expected) {
        if (model.takeExpected(id).some((e) => !e.optional)) fail(`model expects deliveries to offline ${id}`);
      }
      for (const peer of peers.values()) if (peer.violations.length > 0) fail(peer.violations.join('; '));
      checkObligations(model.shared.slice(sharedBefore));
      // Obligations met or no longer able to be met stay only while a member may still get them; met ones also
      // while a member holds its acknowledgements (its copies, checked later, may show who met which).
      for (let i = model.shared.length - 1; i >= 0; i--) {
        const o = model.shared[i]!;
        const met = o.received > 0 && o.heldBy === undefined && ![...o.members.keys()].some((m) => holds.has(m));
        if (met || ![...o.members.keys()].some((m) => model.hasSession(m))) model.shared.splice(i, 1);
      }
      for (const peer of peers.values()) if (peer.closed) fail(`the broker closed ${peer.id} unasked`);
    }
  } finally {
    for (const peer of peers.values()) peer.destroy();
  }
  return { steps, deliveries };
}
