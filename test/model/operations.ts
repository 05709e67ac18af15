// The operations of a model run: what the generator may try (drawn from a seeded PRNG, so a seed replays exactly,
// and from the model's state, so each operation makes sense for its client), and how they look on the wire.
import type { ProtocolVersion, QoS, Will, WillProperties } from '../../packages/mqtt/src/codec/packets.js';
import { prng } from '../../packages/mqtt/test/support/prng.js';
import type { WireMessage } from './peer.js';
import { propertiesOf } from './properties.js';
import {
  type ConnectionLimits,
  type ModelMessage,
  type Profile,
  parseShared,
  type ReferenceModel,
  topicMatches,
} from './reference.js';

const TOPICS = ['a', 'a/b', 'a/b/c', 'b', 'b/a', 'b/c/a', 'c', '/a', 'a//c', 'c/b/a/b'];
const BIG_PAYLOAD = 'x'.repeat(400);
const SMALL_MAXIMUM_PACKET_SIZE = 300;

export type Op =
  | {
      kind: 'connect' | 'takeover';
      id: string;
      cleanStart: boolean;
      persistent: boolean;
      /** Session Expiry Interval of a persistent 5.0 session (3600 unless on virtual time). */
      sessionExpiry?: number;
      limits: ConnectionLimits;
      will: ModelMessage;
    }
  /** DISCONNECT 0x00 discards the will; 0x04 (disconnect with will) and an error reason (0x80) keep it. */
  | { kind: 'disconnect'; id: string; reason: 0x00 | 0x04 | 0x80; sessionExpiry?: number }
  | { kind: 'drop'; id: string }
  | { kind: 'malformed'; id: string; variant: number }
  | { kind: 'subscribe'; id: string; filters: SubscribeFilter[]; subscriptionId?: number }
  | { kind: 'unsubscribe'; id: string; filters: string[] }
  | {
      kind: 'publish';
      id: string;
      message: ModelMessage;
      alias: boolean;
      /**
       * 'repeat': the PUBLISH goes twice under one packet id before its acknowledgement (a resend). 'lost-link': the
       * link drops before the acknowledgement; the client comes back to its session and resends (PUBLISH with DUP
       * for QoS 1, PUBREL for QoS 2), with `will` on its new connection.
       */
      fault?: 'repeat' | 'lost-link';
      will?: ModelMessage;
    }
  | { kind: 'hold'; id: string; mode: 'hold' | 'hold-pubcomp' }
  | { kind: 'release'; id: string }
  | { kind: 'restart'; id: string }
  /** A second of virtual time passes (a run on virtual time only). */
  | { kind: 'advance'; id: string };

/** One filter of a SUBSCRIBE, with its options. */
interface SubscribeFilter {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
}

/** Generates operations from the model's state; all randomness is drawn here so a seed replays exactly. */
export class Generator {
  readonly #random: () => number;
  #tags = 0;
  constructor(
    seed: number,
    readonly ids: string[],
    readonly versions: Map<string, ProtocolVersion>,
    readonly profile: Profile,
    readonly canRestart: boolean,
    /** On virtual time: session expiry, will delay and message expiry short enough to pass within the run. */
    readonly timed = false,
  ) {
    this.#random = prng(seed);
  }

  /** Seconds still to pass of an 'advance' drawn earlier: each is an operation (a step) of its own. */
  #advancing = 0;

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!;
  }
  #chance(p: number): boolean {
    return this.#random() < p;
  }
  #qos(): QoS {
    return this.#pick([0, 1, 2] as const);
  }

  #filter(): string {
    if (this.#chance(0.08)) return this.#pick(['#', '+', '+/+', '+/#', '/#']);
    const levels = this.#pick(TOPICS).split('/');
    const out: string[] = [];
    for (const level of levels) {
      if (this.#chance(0.12)) {
        out.push('#');
        break;
      }
      out.push(this.#chance(0.25) ? '+' : level);
    }
    return out.join('/');
  }

  message(origin: string, version: ProtocolVersion, willOf = false): ModelMessage {
    const n = ++this.#tags;
    const big = !willOf && this.#chance(0.08);
    const retain = this.#chance(willOf ? 0.1 : 0.2);
    const topic = this.#pick(TOPICS);
    const clear = retain && !willOf && this.#chance(0.25);
    const tag = clear ? `clear:${topic}` : `${willOf ? 'w' : 'm'}${n}${big ? '-big' : ''}`;
    const note = version === 5 && !clear && this.#chance(0.5) ? `n${n}` : undefined;
    const message: ModelMessage = { tag, topic, qos: this.#qos(), retain, origin, note, big };
    if (this.timed) {
      // Every expiring message (the note's bit 8) gets an interval the model counts down to the second.
      if (note !== undefined && n & 8) message.expiry = this.#pick([1, 2, 3, 5, 3600]);
      if (willOf && version === 5) message.willDelay = this.#pick([0, 0, 1, 3]);
    }
    return message;
  }

  #limits(version: ProtocolVersion): ConnectionLimits {
    if (version === 4) return { receiveMaximum: 65535, topicAliasMaximum: 0 };
    return {
      receiveMaximum: this.#pick([1, 2, 5, 65535]),
      topicAliasMaximum: this.#pick([0, 0, 3]),
      maximumPacketSize: this.#chance(0.2) && this.profile.maximumPacketSizes ? SMALL_MAXIMUM_PACKET_SIZE : undefined,
    };
  }

  #subscription(
    model: ReferenceModel,
    id: string,
    version: ProtocolVersion,
    earlier: SubscribeFilter[],
  ): SubscribeFilter {
    const v5 = version === 5;
    // On virtual time more: a shared message that expires in one member's queue must not go on to another.
    const shared = this.#chance(this.timed ? 0.35 : 0.15);
    let filter = shared ? `$share/g${this.#pick([0, 1])}/${this.#filter()}` : this.#filter();
    const mine = [...model.subscriptionsOf(id), ...earlier];
    if (!shared && this.profile.overlapping === 'avoid') {
      // Instead of a filter overlapping one the client has, subscribe to that one again (new options).
      const clash = mine.find(
        (s) =>
          parseShared(s.filter) === undefined &&
          s.filter !== filter &&
          TOPICS.some((t) => topicMatches(s.filter, t) && topicMatches(filter, t)),
      );
      if (clash !== undefined) filter = clash.filter;
    }
    const again = mine.findLast((s) => s.filter === filter);
    const keep = again !== undefined && !this.profile.resubscribeMayChangeOptions;
    return {
      filter,
      qos: this.#qos(),
      noLocal: keep ? again.noLocal : v5 && !shared && this.#chance(0.25),
      retainAsPublished: keep ? again.retainAsPublished : v5 && this.#chance(0.4),
      retainHandling: v5 ? this.#pick([0, 0, 1, 2] as const) : 0,
    };
  }

  next(model: ReferenceModel, holding: (id: string) => boolean): Op {
    const id = this.#pick(this.ids);
    const version = this.versions.get(id)!;
    const connectOp = (kind: 'connect' | 'takeover'): Op => {
      const persistent = this.#chance(0.6);
      const sessionExpiry = this.timed && persistent && version === 5 ? this.#pick([3600, 2, 5]) : undefined;
      // 3.1.1 has one flag for both: clean session 1 starts afresh and ends with the connection.
      let cleanStart = version === 4 ? !persistent : this.#chance(0.3);
      if (kind === 'takeover' && !cleanStart && !this.profile.takeoverMayResume) {
        if (version === 4) return { kind: 'drop', id };
        cleanStart = true;
      }
      const limits = this.#limits(version);
      return { kind, id, cleanStart, persistent, sessionExpiry, limits, will: this.message(id, version, true) };
    };
    if (this.canRestart && this.#chance(0.015)) return { kind: 'restart', id };
    // Only while no client holds its acknowledgements: what waits behind a full window would expire unseen. One
    // second per step, so that every delivery is checked against the time it was made at.
    if (this.timed && this.#advancing > 0 && !this.ids.some(holding)) {
      this.#advancing--;
      return { kind: 'advance', id };
    }
    if (this.timed && !this.ids.some(holding) && this.#chance(0.06)) {
      this.#advancing = this.#pick([1, 2, 3, 6]) - 1;
      return { kind: 'advance', id };
    }
    if (!model.isOnline(id)) return connectOp('connect');
    if (holding(id) && this.#chance(0.3)) return { kind: 'release', id };
    const r = this.#random();
    // Mosquitto 2.0 duplicates deliveries and overruns the window after a resubscribe while acks are held back.
    if (r < 0.3 && holding(id) && !this.profile.resubscribeMayChangeOptions) return { kind: 'release', id };
    if (r < 0.3) {
      // One filter mostly; sometimes two or three in one SUBSCRIBE (handled as if sent one after another).
      const count = this.#chance(0.7) ? 1 : this.#chance(0.66) ? 2 : 3;
      const filters: SubscribeFilter[] = [];
      for (let i = 0; i < count; i++) {
        const next = this.#subscription(model, id, version, filters);
        // Mosquitto 2.0 takes a filter repeated in one SUBSCRIBE as two subscriptions (see profiles.ts).
        if (this.profile.overlapping === 'avoid' && filters.some((f) => f.filter === next.filter)) continue;
        filters.push(next);
      }
      const subscriptionId = version === 5 && this.#chance(0.5) ? 1 + Math.floor(this.#random() * 50) : undefined;
      return { kind: 'subscribe', id, filters, subscriptionId };
    }
    if (r < 0.37) {
      const mine = model.subscriptionsOf(id);
      const count = this.#chance(0.75) ? 1 : 2;
      const filters = Array.from({ length: count }, () =>
        mine.length > 0 && this.#chance(0.8) ? this.#pick(mine).filter : this.#filter(),
      );
      return { kind: 'unsubscribe', id, filters };
    }
    if (r < 0.77) {
      const message = this.message(id, version);
      if (message.qos === 0 || !this.#chance(0.15)) return { kind: 'publish', id, message, alias: this.#chance(0.5) };
      if (!model.isPersistent(id) || this.#chance(0.5))
        return { kind: 'publish', id, message, alias: false, fault: 'repeat' };
      return { kind: 'publish', id, message, alias: false, fault: 'lost-link', will: this.message(id, version, true) };
    }
    if (r < 0.84) {
      // On virtual time a persistent 5.0 session may leave with a new Session Expiry Interval (0: it ends now).
      const sessionExpiry =
        this.timed && version === 5 && model.isPersistent(id) && this.#chance(0.3) ? this.#pick([0, 1, 4]) : undefined;
      if (version === 4 || !this.#chance(0.3)) return { kind: 'disconnect', id, reason: 0x00, sessionExpiry };
      // Which of the two by the tag count, not another draw: the seeds of earlier runs replay as they did.
      const errorReason = this.profile.willOnErrorDisconnect && this.#tags % 2 === 1;
      return { kind: 'disconnect', id, reason: errorReason ? 0x80 : 0x04, sessionExpiry };
    }
    if (r < 0.9) return { kind: 'drop', id };
    if (r < 0.93) return connectOp('takeover');
    if (r < 0.965 && !holding(id)) return { kind: 'hold', id, mode: this.#pick(['hold', 'hold-pubcomp'] as const) };
    return { kind: 'malformed', id, variant: this.#pick(this.profile.malformedVariants) };
  }
}

/** Bytes the broker must refuse by closing the connection (and publishing the will). */
export function malformedBytes(variant: number, version: ProtocolVersion): number[] {
  const props = version === 5 ? [0x00] : [];
  switch (variant) {
    case 0: // PUBLISH with QoS 3
      return [0x36, 5 + props.length, 0x00, 0x01, 0x61, 0x00, 0x01, ...props];
    case 1: // SUBSCRIBE with reserved flags 0000 instead of 0010
      return [0x80, 6 + props.length, 0x00, 0x01, ...props, 0x00, 0x01, 0x61, 0x00];
    case 2: // a wildcard in a PUBLISH topic name
      return [0x30, 5 + props.length, 0x00, 0x03, 0x61, 0x2f, 0x2b, ...props];
    default: // a second CONNECT
      return [0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00];
  }
}

export function describeOp(op: Op): string {
  const { kind, id } = op;
  switch (op.kind) {
    case 'connect':
    case 'takeover': {
      const w = op.will;
      const expiry = op.sessionExpiry === undefined ? '' : ` expiry=${op.sessionExpiry}`;
      const delay = w.willDelay ? ` delay ${w.willDelay}` : '';
      return `${kind} ${id} cleanStart=${op.cleanStart} persistent=${op.persistent}${expiry} limits=${JSON.stringify(op.limits)} will=${w.tag}@${w.topic}/q${w.qos}${w.retain ? '/r' : ''}${delay}${expiresIn(w)}`;
    }
    case 'advance':
      return 'a second passes';
    case 'subscribe': {
      const filters = op.filters.map(
        (f) =>
          `${f.filter} q${f.qos}${f.noLocal ? ' nl' : ''}${f.retainAsPublished ? ' rap' : ''} rh${f.retainHandling}`,
      );
      return `subscribe ${id} ${filters.join(', ')}${op.subscriptionId !== undefined ? ` id${op.subscriptionId}` : ''}`;
    }
    case 'unsubscribe':
      return `unsubscribe ${id} ${op.filters.join(', ')}`;
    case 'publish': {
      const m = op.message;
      const fault =
        op.fault === undefined ? '' : ` ${op.fault}${op.will ? ` (will ${op.will.tag}@${op.will.topic})` : ''}`;
      return `publish ${id} ${m.tag} ${m.topic} q${m.qos}${m.retain ? ' retain' : ''}${op.alias ? ' alias' : ''}${expiresIn(m)}${fault}`;
    }
    case 'disconnect': {
      const expiry = op.sessionExpiry === undefined ? '' : ` session expiry now ${op.sessionExpiry}`;
      return `disconnect ${id}${op.reason === 0 ? '' : ` 0x${op.reason.toString(16)}, keeping the will`}${expiry}`;
    }
    case 'hold':
      return `${id} holds its acknowledgements (${op.mode})`;
    case 'restart':
      return 'the broker shuts down and starts again on its store';
    default:
      return `${kind} ${id}${op.kind === 'malformed' ? ` variant ${op.variant}` : ''}`;
  }
}

const expiresIn = (m: ModelMessage): string => (m.expiry === undefined ? '' : ` expiry ${m.expiry}`);

const encoder = new TextEncoder();
export const payloadOf = (m: ModelMessage): Uint8Array =>
  m.tag.startsWith('clear:') ? new Uint8Array(0) : encoder.encode(m.big ? `${m.tag}|${BIG_PAYLOAD}` : m.tag);

export const wireOf = (m: ModelMessage): WireMessage => ({
  topic: m.topic,
  payload: payloadOf(m),
  qos: m.qos,
  retain: m.retain,
  note: m.note,
  expiry: m.expiry,
});

export function willOf(m: ModelMessage, version: ProtocolVersion): Will {
  return {
    topic: m.topic,
    payload: payloadOf(m),
    qos: m.qos,
    retain: m.retain,
    properties: version === 5 ? willProperties(m) : undefined,
  };
}

function willProperties(m: ModelMessage): WillProperties | undefined {
  const properties: WillProperties = m.note === undefined ? {} : propertiesOf(m.note, m.expiry);
  if (m.willDelay) properties.willDelayInterval = m.willDelay;
  return Object.keys(properties).length === 0 ? undefined : properties;
}
