// PUBLISH from a client: rate limit, topic alias, QoS 2 duplicate check, authorize, route, acknowledge. With a
// durable store the acknowledgement waits for the commit holding what the publish wrote (queue entries for offline
// persistent sessions, in-flight state, the retained message, the inbound QoS 2 id); while the store refuses new
// messages (disk full) a QoS 1/2 or retained publish is not taken: 5.0 clients get 0x97, 3.1.1 clients no ack.
// A QoS 2 message under a durable store is delivered only once that commit resolved (holdQos2): if it fails the
// publisher is told so and nobody has it, so its resend is delivered exactly once.
import type { PublishPacket, PublishProperties } from '@otalink/mqtt/codec';
import { topicNameProblem } from '@otalink/mqtt/topic';
import { type Connection, violation } from '../connection.js';
import { BrokerError } from '../errors.js';
import type { Message } from '../message.js';
import { forwardableFrame } from '../publish-encoding.js';
import type { Session } from '../session.js';

const NO_MATCHING_SUBSCRIBERS = 0x10;
const NOT_AUTHORIZED = 0x87;
const QUOTA_EXCEEDED = 0x97;

/** The store could not keep the message: no success ack (5.0: Quota exceeded; 3.1.1: none, the client resends). */
function notStored(connection: Connection, session: Session, qos: 1 | 2, packetId: number, error: unknown): void {
  const core = connection.core;
  core.stats.storeRefused++;
  if (core.logger.isLevelEnabled('debug')) {
    core.logger.debug(
      { code: 'BROKER_ERR_STORE_FULL', clientId: connection.identity.clientId, packetId, err: error },
      'publish not acknowledged: the store did not take it',
    );
  }
  if (qos === 2 && error instanceof BrokerError && error.code === 'BROKER_ERR_STORE_SYNC') {
    // Written, but its sync failed: the restart finds the message (queued, with this id) or not. No answer until
    // then: the client resends after reconnecting, and that resend is answered as a duplicate or taken as new, once
    // either way. 0x97 would be wrong if it is found (and a publish under a new id would be delivered twice).
    session.unsureQos2(packetId);
    return;
  }
  // A resend must be taken as new, not answered as a duplicate of something never stored.
  if (qos === 2) session.releaseQos2(packetId);
  if (connection.protocolVersion !== 5) return;
  connection.send({ type: qos === 1 ? 'puback' : 'pubrec', packetId, reasonCode: QUOTA_EXCEEDED });
}

export function handlePublish(connection: Connection, packet: PublishPacket): void {
  const core = connection.core;
  const session = connection.session!;
  const now = Date.now();
  const v5 = connection.protocolVersion === 5;
  core.stats.messagesIn[packet.qos]++;
  if (!connection.countPublish(now)) {
    // A quota, not a protocol error: counted and logged as what it is.
    core.stats.rateLimited++;
    core.logger.info({ code: 'BROKER_ERR_RATE_LIMIT', clientId: connection.identity.clientId }, 'publish rate');
    if (v5) connection.close(0x96, 'message rate too high');
    else connection.close();
    return;
  }
  const topic = resolveTopic(connection, packet);
  const responseTopic = packet.properties?.responseTopic;
  if (responseTopic !== undefined) checkResponseTopic(responseTopic);
  const packetId = packet.packetId ?? 0;
  const store = core.store;
  if (packet.qos === 2 && session.hasInboundQos2(packetId)) {
    // A resend before PUBREL: acknowledge again (once the first is durable), deliver nothing (it went out already).
    // One whose first sync failed gets no answer before a restart (notStored).
    if (session.isUnsureQos2(packetId)) return;
    acknowledge(connection, session, 2, packetId, 0, store.durable ? store.commit() : undefined, false);
    return;
  }
  if (store.durable && !store.writable && (packet.qos > 0 || packet.retain)) {
    if (packet.qos > 0) notStored(connection, session, packet.qos as 1 | 2, packetId, store.refusal);
    else core.stats.storeRefused++;
    return;
  }
  // 3.1.1 has no Receive Maximum to tell the client: its unreleased QoS 2 ids are bounded by the id space alone.
  if (v5 && packet.qos === 2 && session.inboundQos2Count >= core.limits.receiveMaximum) {
    throw violation(0x93, 'more QoS 2 messages unacknowledged than the Receive Maximum allows');
  }
  if (!core.mayPublish(connection.identity, topic)) {
    core.stats.droppedNotAuthorized++;
    core.logger.debug({ code: 'BROKER_ERR_NOT_AUTHORIZED', clientId: connection.identity.clientId, topic }, 'publish');
    // 3.1.1 has no way to refuse: acknowledge so the client does not resend forever, deliver nothing.
    if (packet.qos === 1) connection.send({ type: 'puback', packetId, reasonCode: v5 ? NOT_AUTHORIZED : 0 });
    else if (packet.qos === 2) {
      const before = store.operations;
      if (!v5) session.receivedQos2(packetId);
      const commit = store.durable && store.operations !== before ? store.commit() : undefined;
      acknowledge(connection, session, 2, packetId, v5 ? NOT_AUTHORIZED : 0, commit, true);
    }
    return;
  }
  let properties: PublishProperties | undefined;
  let expiresAt = 0;
  if (packet.properties !== undefined) {
    const { topicAlias: _alias, messageExpiryInterval, ...rest } = packet.properties;
    if (messageExpiryInterval !== undefined) expiresAt = now + messageExpiryInterval * 1000;
    for (const _key in rest) {
      properties = rest;
      break;
    }
  }
  const message: Message = {
    topic,
    payload: keptPayload(connection, packet),
    qos: packet.qos,
    retain: packet.retain,
    properties,
    expiresAt,
    origin: connection.identity.clientId,
  };
  if (packet.qos === 2 && store.durable) {
    holdQos2(connection, session, message, packetId, v5);
    return;
  }
  const before = store.operations;
  const frame = connection.lastFrame();
  const version = connection.protocolVersion;
  const recipients = forwardableFrame(frame, version, packet.properties !== undefined)
    ? core.publish(message, frame, version, connection)
    : core.publish(message, undefined, undefined, connection);
  if (packet.retain) core.stats.retainedCurrent = core.router.retained.size;
  const reasonCode = v5 && recipients === 0 ? NO_MATCHING_SUBSCRIBERS : 0;
  if (packet.qos === 0) return;
  if (packet.qos === 2) session.receivedQos2(packetId);
  const commit = store.durable && store.operations !== before ? store.commit() : undefined;
  acknowledge(connection, session, packet.qos, packetId, reasonCode, commit, true);
}

/**
 * Sends the PUBACK (QoS 1) or PUBREC (QoS 2) of a publish once `commit` (if any) has made it durable; `reportFailure`
 * false sends nothing if the commit failed. Without a commit to wait for, and none queued before it, the answer is
 * queued at once, with no closures built (handlePublish builds none either: they would cost every publish a context
 * object too). The closures live here, for the publishes that wait.
 */
function acknowledge(
  connection: Connection,
  session: Session,
  qos: 1 | 2,
  packetId: number,
  reasonCode: number,
  commit: Promise<void> | undefined,
  reportFailure: boolean,
): void {
  const typeByte = qos === 1 ? 0x40 : 0x50;
  if (reasonCode === 0 && connection.ackAtOnce(commit, typeByte, packetId)) return;
  connection.ackAfter(
    commit,
    () => {
      if (reasonCode === 0) connection.sendAck(typeByte, packetId);
      else connection.send({ type: qos === 1 ? 'puback' : 'pubrec', packetId, reasonCode });
    },
    reportFailure ? (error) => notStored(connection, session, qos, packetId, error) : () => {},
  );
}

/**
 * The payload as the message keeps it: a view into the socket read it came in, which stays alive as long as the
 * message does. Messages in flight or queued are bounded by the session limits, and a read under load carries many
 * of them; a retained message can live for months, so one that shares its read with other packets is copied into
 * memory of its own, not to keep a whole read (up to 64 KiB) for a few bytes. (Until this was written, every QoS 1/2
 * or retained payload went through `payload.slice()`, meant as that copy: on a Node Buffer it is a view as well.)
 */
function keptPayload(connection: Connection, packet: PublishPacket): Uint8Array {
  const payload = packet.payload;
  if (!packet.retain || payload.length === 0 || connection.frameOwnsMemory()) return payload;
  const copy = Buffer.allocUnsafeSlow(payload.length);
  copy.set(payload);
  return copy;
}

/**
 * A QoS 2 message under a durable store: its packet id and the writes its delivery needs go into the store first,
 * and it reaches subscribers (online ones and the queues of offline ones) only once that commit resolved. Routed at
 * once and then failed, it would be delivered although the publisher hears 0x97 (5.0) or nothing (3.1.1), and the
 * resend that failure invites would be delivered a second time. Each waits for this client's previous held one too,
 * so its QoS 2 messages keep their order; QoS 0/1 messages are not held and may overtake (MQTT orders messages of
 * the same topic and QoS only, 4.6).
 */
function holdQos2(connection: Connection, session: Session, message: Message, packetId: number, v5: boolean): void {
  const core = connection.core;
  const store = core.store;
  const before = store.operations;
  session.receivedQos2(packetId);
  const held = core.planPublish(message);
  const reasonCode = v5 && held.deliveries.length === 0 ? NO_MATCHING_SUBSCRIBERS : 0;
  const sendPubrec = pubrecSender(connection, packetId, reasonCode);
  const commit = store.operations !== before ? store.commit() : undefined;
  const previous = connection.heldRouting;
  if (commit === undefined && previous === undefined) {
    // Nothing written (a clean publisher, no persistent recipient): nothing a failed commit could take back.
    core.deliverHeld(held);
    connection.ackAfter(undefined, sendPubrec, () => {});
    return;
  }
  const ready = previous === undefined ? commit! : previous.then(() => commit);
  const routed = ready.then(
    () => core.deliverHeld(held),
    () => core.dropHeld(held),
  );
  const settled = routed.catch((error: unknown) => {
    core.logger.error({ err: error, clientId: connection.identity.clientId, packetId }, 'held QoS 2 routing failed');
  });
  connection.heldRouting = settled;
  void settled.then(() => {
    if (connection.heldRouting === settled) connection.heldRouting = undefined;
  });
  connection.ackAfter(ready, sendPubrec, (error) => notStored(connection, session, 2, packetId, error));
}

/**
 * Made by a function rather than written as `const send = () => ...` in holdQos2: under tsx (esbuild's keepNames)
 * a closure bound to a name gets its `name` redefined each time it is made, ~0.4 µs and a property table per message.
 */
function pubrecSender(connection: Connection, packetId: number, reasonCode: number): () => void {
  return () => {
    if (reasonCode === 0) connection.sendAck(0x50, packetId);
    else connection.send({ type: 'pubrec', packetId, reasonCode });
  };
}

/**
 * [MQTT-3.3.2-14]: a Response Topic is a topic name, without wildcards. Forwarded as it came, it would make every
 * subscriber's PUBLISH break the rule too: refused as Mosquitto refuses it, a Protocol Error.
 */
export function checkResponseTopic(responseTopic: string): void {
  const problem = topicNameProblem(responseTopic);
  if (problem !== undefined) throw violation(0x82, `response topic: ${problem}`);
}

function resolveTopic(connection: Connection, packet: PublishPacket): string {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) return packet.topic;
  if (alias === 0 || alias > connection.core.limits.topicAliasMaximum) {
    throw violation(0x94, `topic alias ${alias} is outside 1..${connection.core.limits.topicAliasMaximum}`);
  }
  if (packet.topic.length > 0) {
    connection.setInboundAlias(alias, packet.topic);
    return packet.topic;
  }
  const topic = connection.inboundAlias(alias);
  if (topic === undefined) throw violation(0x82, `topic alias ${alias} was never set`);
  return topic;
}
