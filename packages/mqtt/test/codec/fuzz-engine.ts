// The codec fuzz engine shared by the normal suite (fuzz.test.ts, a few seconds) and the long run
// (test/fuzz-long.ts, `npm run fuzz`). Inputs are random bytes and mutations of the hand-written fixtures; each
// is decoded whole and in random splits by decoders of both versions and both roles. A finding is anything
// other than an MqttError escaping, or a broken invariant:
// - whole and split feeding give the same packets and the same error code;
// - bytes pushed = bytes of the packets returned + decoder.buffered (nothing lost, nothing held beyond input);
// - no packet returned is larger than maximumPacketSize;
// - every packet that decodes encodes, and its encoding decodes to an equal packet and re-encodes identically.
// Every input derives from one 32-bit seed, so a finding replays from the seed alone.
import {
  Decoder,
  type DecoderOptions,
  encode,
  MqttError,
  type Packet,
  type ProtocolVersion,
} from '../../src/codec/index.js';
import { concatBytes, plain, prng, randomSplit, toHex } from './bytes.js';
import { fixtures } from './fixtures.js';

export interface FuzzCase {
  seed: number;
  input: Uint8Array;
  options: DecoderOptions;
  /** How the input was made, for the report. */
  recipe: string;
}

export class FuzzFinding extends Error {
  override readonly name = 'FuzzFinding';
  constructor(
    readonly fuzzCase: FuzzCase,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${problem}\n  seed: ${fuzzCase.seed}\n  recipe: ${fuzzCase.recipe}\n  options: ${JSON.stringify(fuzzCase.options)}\n  input: ${toHex(fuzzCase.input)}`,
      options,
    );
  }
}

// Small fixtures make fast, dense mutations; the 16 KiB one would only slow the loop.
const corpus = fixtures.filter((f) => f.bytes.length <= 256);
const connects = {
  4: corpus.filter((f) => f.version === 4 && f.packet.type === 'connect'),
  5: corpus.filter((f) => f.version === 5 && f.packet.type === 'connect'),
};
const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0xff, 0xfe, 0x23, 0x2b, 0x2f, 0xc0, 0xed];

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)] as T;
}

function int(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

function mutate(random: () => number, bytes: Uint8Array): { bytes: Uint8Array; steps: string[] } {
  let b: Uint8Array = Uint8Array.from(bytes);
  const steps: string[] = [];
  const rounds = 1 + int(random, 4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : int(random, b.length);
    switch (int(random, 8)) {
      case 0:
        if (b.length > 0) b[at] = (b[at] as number) ^ (1 << int(random, 8));
        steps.push(`flip@${at}`);
        break;
      case 1: {
        const v = random() < 0.5 ? pick(random, INTERESTING) : int(random, 256);
        b = concatBytes(b.subarray(0, at), Uint8Array.of(v), b.subarray(at));
        steps.push(`insert@${at}=${v}`);
        break;
      }
      case 2:
        b = concatBytes(b.subarray(0, at), b.subarray(at + 1));
        steps.push(`delete@${at}`);
        break;
      case 3:
        b = b.subarray(0, at);
        steps.push(`truncate@${at}`);
        break;
      case 4: {
        // The remaining length (byte 1) or a length prefix elsewhere: the bugs hide in length arithmetic.
        const where = random() < 0.5 ? 1 : at;
        if (where < b.length) {
          const delta = pick(random, [-2, -1, 1, 2, 64, 128]);
          b[where] = ((b[where] as number) + delta) & 0xff;
        }
        steps.push(`length@${where}`);
        break;
      }
      case 5:
        if (b.length > 0) b[at] = pick(random, INTERESTING);
        steps.push(`set@${at}`);
        break;
      case 6: {
        const other = pick(random, corpus).bytes;
        b = concatBytes(b, other.subarray(0, int(random, other.length + 1)));
        steps.push('append');
        break;
      }
      default: {
        const n = 1 + int(random, 4);
        const junk = Uint8Array.from({ length: n }, () => int(random, 256));
        b = concatBytes(b.subarray(0, at), junk, b.subarray(at + n));
        steps.push(`overwrite@${at}x${n}`);
        break;
      }
    }
  }
  return { bytes: b, steps };
}

/** Builds the input and decoder options for one seed. */
export function makeCase(seed: number): FuzzCase {
  const random = prng(seed);
  const version: ProtocolVersion = random() < 0.5 ? 4 : 5;
  const options: DecoderOptions = {};
  const roleDraw = int(random, 4);
  const learn = roleDraw === 3; // role server without a version: the decoder must learn it from CONNECT
  if (roleDraw === 1 || learn) options.role = 'server';
  if (roleDraw === 2) options.role = 'client';
  if (!learn) options.protocolVersion = version;
  if (random() < 0.25) options.maximumPacketSize = 2 + int(random, 200);

  let input: Uint8Array;
  let recipe: string;
  const kind = int(random, 10);
  if (kind === 0) {
    input = Uint8Array.from({ length: int(random, 64) }, () => int(random, 256));
    recipe = 'random bytes';
  } else if (kind === 1) {
    // Random bytes behind a plausible fixed header reach the packet parsers instead of dying on byte 0.
    const body = Uint8Array.from({ length: int(random, 40) }, () => int(random, 256));
    const type = 1 + int(random, 15);
    const flags = type === 6 || type === 8 || type === 10 ? 2 : type === 3 ? int(random, 16) : 0;
    input = concatBytes(Uint8Array.of((type << 4) | flags, body.length), body);
    recipe = `random body for type ${type}`;
  } else {
    const sameVersion = corpus.filter((f) => f.version === version);
    const base = pick(random, sameVersion);
    const { bytes, steps } = mutate(random, base.bytes);
    input = bytes;
    recipe = `${base.name} (${version}): ${steps.join(', ')}`;
    if (random() < 0.3) {
      const next = pick(random, sameVersion);
      input = concatBytes(input, next.bytes);
      recipe += ` + ${next.name}`;
    }
  }
  if (learn && random() < 0.8) {
    const connect = pick(random, connects[version]);
    input = concatBytes(connect.bytes, input);
    recipe = `${connect.name} + ${recipe}`;
  }
  return { seed, input, options, recipe };
}

interface FeedResult {
  packets: Packet[];
  /** Wire size of each packet, from the change in `buffered`. */
  sizes: number[];
  /** The version each packet was decoded under. */
  versions: ProtocolVersion[];
  errorCode: string | undefined;
}

/** A Buffer view of the same bytes: sockets deliver Buffers, and the decoder has a fast path for them. */
export function asBuffer(bytes: Uint8Array): Uint8Array {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function feed(c: FuzzCase, chunks: Uint8Array[]): FeedResult {
  const decoder = new Decoder({ ...c.options });
  const limit = c.options.maximumPacketSize ?? Number.POSITIVE_INFINITY;
  const out: FeedResult = { packets: [], sizes: [], versions: [], errorCode: undefined };
  let pushed = 0;
  let consumed = 0;
  try {
    for (const chunk of chunks) {
      decoder.push(chunk);
      pushed += chunk.length;
      // Every packet takes at least 2 bytes, so more calls than that means next() keeps returning something.
      for (let calls = 0; ; calls++) {
        if (calls > pushed) throw new FuzzFinding(c, 'next() returned more packets than the bytes allow');
        const before = decoder.buffered;
        const packet = decoder.next();
        if (decoder.buffered > pushed - consumed) {
          throw new FuzzFinding(c, `buffered ${decoder.buffered} exceeds the ${pushed - consumed} bytes not consumed`);
        }
        if (packet === undefined) break;
        const size = before - decoder.buffered;
        consumed += size;
        if (size < 2) throw new FuzzFinding(c, `a ${packet.type} packet consumed ${size} bytes`);
        if (size > limit) throw new FuzzFinding(c, `a ${packet.type} of ${size} bytes passed a ${limit}-byte limit`);
        out.packets.push(packet);
        out.sizes.push(size);
        const version = packet.type === 'connect' ? packet.protocolVersion : decoder.protocolVersion;
        if (version === undefined) throw new FuzzFinding(c, `a ${packet.type} decoded with no protocol version`);
        out.versions.push(version);
      }
      if (consumed + decoder.buffered !== pushed) {
        throw new FuzzFinding(c, `pushed ${pushed} bytes, but packets took ${consumed} and ${decoder.buffered} wait`);
      }
    }
  } catch (error) {
    if (error instanceof FuzzFinding) throw error;
    if (!(error instanceof MqttError))
      throw new FuzzFinding(c, `a non-MqttError escaped: ${String(error)}`, { cause: error });
    out.errorCode = error.code;
  }
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(plain(a), bytesAsHex) === JSON.stringify(plain(b), bytesAsHex);
}

function bytesAsHex(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? `bytes:${toHex(value)}` : value;
}

function roundTrip(c: FuzzCase, packet: Packet, version: ProtocolVersion): void {
  let bytes: Uint8Array;
  try {
    bytes = encode(packet, version);
  } catch (error) {
    throw new FuzzFinding(c, `a decoded ${packet.type} does not encode: ${String(error)}`, { cause: error });
  }
  const decoder = new Decoder({ protocolVersion: version });
  decoder.push(asBuffer(bytes));
  let again: Packet | undefined;
  try {
    again = decoder.next();
  } catch (error) {
    throw new FuzzFinding(c, `the encoding of a decoded ${packet.type} does not decode: ${String(error)}`, {
      cause: error,
    });
  }
  if (again === undefined || decoder.buffered !== 0) {
    throw new FuzzFinding(c, `the encoding of a decoded ${packet.type} is not exactly one packet: ${toHex(bytes)}`);
  }
  if (!sameJson(again, packet)) {
    throw new FuzzFinding(
      c,
      `round trip changed a ${packet.type}: ${JSON.stringify(plain(packet), bytesAsHex)} -> ${JSON.stringify(plain(again), bytesAsHex)}`,
    );
  }
  const twice = encode(again, version);
  if (toHex(twice) !== toHex(bytes)) throw new FuzzFinding(c, `re-encoding a ${packet.type} is not stable`);
}

/** Runs one seed; throws FuzzFinding on a finding. Returns what the whole feeding gave (for statistics). */
export function runCase(c: FuzzCase, splits = 2): { packets: number; error: string | undefined } {
  // Whole as a Buffer (the socket case), splits as plain Uint8Arrays and as Buffers: both decode paths must agree.
  const whole = feed(c, [asBuffer(c.input)]);
  const random = prng(c.seed ^ 0x5eed);
  for (let s = 0; s < splits; s++) {
    const pieces = randomSplit(c.input, random, Math.max(1, Math.min(c.input.length, 16)));
    const chunks = s % 2 === 0 ? pieces : pieces.map(asBuffer);
    const split = feed(c, chunks);
    if (split.errorCode !== whole.errorCode || !sameJson(split.packets, whole.packets)) {
      throw new FuzzFinding(
        c,
        `split feeding (${chunks.map((x) => x.length).join('+')}) differs from whole: ` +
          `${split.packets.length} packets/${split.errorCode} vs ${whole.packets.length}/${whole.errorCode}`,
      );
    }
  }
  for (let i = 0; i < whole.packets.length; i++) {
    roundTrip(c, whole.packets[i] as Packet, whole.versions[i] as ProtocolVersion);
  }
  return { packets: whole.packets.length, error: whole.errorCode };
}

export interface FuzzStats {
  iterations: number;
  /** Packets decoded (and round-tripped). */
  packets: number;
  /** Inputs that ended in an MqttError, by code: the spread shows which checks the inputs reach. */
  errors: Map<string, number>;
}

/** Runs seeds `first`, `first + 1`, ... while `keepGoing()` says so; throws the first FuzzFinding. */
export function fuzz(first: number, keepGoing: (stats: FuzzStats) => boolean): FuzzStats {
  const stats: FuzzStats = { iterations: 0, packets: 0, errors: new Map() };
  while (keepGoing(stats)) {
    const result = runCase(makeCase((first + stats.iterations) >>> 0));
    stats.packets += result.packets;
    if (result.error !== undefined) stats.errors.set(result.error, (stats.errors.get(result.error) ?? 0) + 1);
    stats.iterations++;
  }
  return stats;
}

// ---- Structured fuzz: random packet objects through the encoder ----
// Whatever the encoder accepts, the decoder must accept, and decoding then re-encoding must give the same bytes:
// an encoder that writes what peers must reject would get our own connections closed.

const TOPICS = [
  'a',
  'a/b',
  '',
  'ü/温',
  'x'.repeat(300),
  '+',
  '#',
  'a/+',
  'a/#',
  'a/+/b',
  '$share/g/a',
  '$share/g',
  '$SYS/x',
  'a\u0000',
];
const REASONS = [
  0, 1, 2, 3, 4, 5, 6, 0x10, 0x11, 0x18, 0x19, 0x80, 0x81, 0x82, 0x87, 0x8b, 0x8f, 0x92, 0x97, 0x9e, 0xa2, 0xa3, 0xff,
];
const NUMBERS = [0, 1, 2, 255, 65535, 65536, 268435455, 268435456, 2 ** 32 - 1, 2 ** 32, -1, 1.5];

function randomProperties(random: () => number): Record<string, unknown> | undefined {
  if (random() < 0.4) return undefined;
  const props: Record<string, unknown> = {};
  const n = int(random, 4);
  for (let i = 0; i < n; i++) {
    const name = pick(random, [
      'payloadFormatIndicator',
      'messageExpiryInterval',
      'contentType',
      'responseTopic',
      'correlationData',
      'subscriptionIdentifiers',
      'sessionExpiryInterval',
      'assignedClientIdentifier',
      'serverKeepAlive',
      'authenticationMethod',
      'authenticationData',
      'requestProblemInformation',
      'willDelayInterval',
      'requestResponseInformation',
      'responseInformation',
      'serverReference',
      'reasonString',
      'receiveMaximum',
      'topicAliasMaximum',
      'topicAlias',
      'maximumQoS',
      'retainAvailable',
      'userProperties',
      'maximumPacketSize',
      'wildcardSubscriptionAvailable',
      'subscriptionIdentifierAvailable',
      'sharedSubscriptionAvailable',
    ]);
    if (name === 'userProperties')
      props[name] = [
        ['k', pick(random, ['v', 'ü', '', 'v\u0000'])],
        ['k', 'w'],
      ];
    else if (name === 'subscriptionIdentifiers') props[name] = [pick(random, NUMBERS), ...(random() < 0.3 ? [7] : [])];
    else if (name === 'correlationData' || name === 'authenticationData') props[name] = Uint8Array.of(1, 2);
    else if (
      /Topic|Type|Method|Identifier$|Information$|Reference|String/.test(name) &&
      name !== 'requestProblemInformation' &&
      name !== 'requestResponseInformation'
    ) {
      props[name] = pick(random, ['r', '', 'ü/x', 'r\u0000']);
    } else props[name] = random() < 0.6 ? pick(random, [0, 1]) : pick(random, NUMBERS);
  }
  return props;
}

export function makePacket(seed: number): { packet: Record<string, unknown>; version: ProtocolVersion } {
  const random = prng(seed);
  const version: ProtocolVersion = random() < 0.5 ? 4 : 5;
  const type = pick(random, [
    'connect',
    'connack',
    'publish',
    'puback',
    'pubrec',
    'pubrel',
    'pubcomp',
    'subscribe',
    'suback',
    'unsubscribe',
    'unsuback',
    'pingreq',
    'pingresp',
    'disconnect',
    'auth',
  ]);
  const packetId = pick(random, [1, 2, 65535, 0, 65536, undefined]);
  const properties = randomProperties(random);
  const reasonCode = random() < 0.3 ? undefined : pick(random, REASONS);
  const qos = pick(random, [0, 1, 2, 0, 1, 2, 3]);
  const p: Record<string, unknown> = { type };
  switch (type) {
    case 'connect':
      Object.assign(p, {
        protocolVersion: version,
        clientId: pick(random, ['', 'c', 'ü', 'c\u0000']),
        clean: random() < 0.5,
        keepalive: pick(random, [0, 60, 65535, 65536]),
      });
      if (random() < 0.5)
        p.will = {
          topic: pick(random, TOPICS),
          payload: Uint8Array.of(1),
          qos: pick(random, [0, 1, 2, 3]),
          retain: random() < 0.5,
          properties: randomProperties(random),
        };
      if (random() < 0.5) p.username = 'u';
      if (random() < 0.5) p.password = Uint8Array.of(9);
      break;
    case 'connack':
      Object.assign(p, { sessionPresent: random() < 0.3, reasonCode: reasonCode ?? 0 });
      break;
    case 'publish':
      Object.assign(p, {
        topic: pick(random, TOPICS),
        payload: Uint8Array.of(1, 2, 3),
        qos,
        retain: random() < 0.5,
        dup: random() < 0.3,
        packetId,
      });
      break;
    case 'subscribe':
      p.packetId = packetId;
      p.subscriptions = Array.from({ length: int(random, 3) }, () => ({
        topicFilter: pick(random, TOPICS),
        qos,
        noLocal: random() < 0.3,
        retainAsPublished: random() < 0.3,
        retainHandling: pick(random, [0, 1, 2, 3]),
      }));
      break;
    case 'unsubscribe':
      p.packetId = packetId;
      p.topicFilters = Array.from({ length: int(random, 3) }, () => pick(random, TOPICS));
      break;
    case 'suback':
    case 'unsuback':
      p.packetId = packetId;
      p.reasonCodes = Array.from({ length: int(random, 3) }, () => pick(random, REASONS));
      break;
    case 'pingreq':
    case 'pingresp':
      return { packet: p, version };
    default:
      if (type !== 'disconnect' && type !== 'auth') p.packetId = packetId;
      if (reasonCode !== undefined) p.reasonCode = reasonCode;
  }
  if (properties !== undefined) p.properties = properties;
  return { packet: p, version };
}

/** Encodes one random packet object; throws FuzzFinding if the encoder accepts what the decoder refuses. */
export function runPacketCase(seed: number): 'encoded' | 'refused' {
  const { packet, version } = makePacket(seed);
  const c: FuzzCase = { seed, input: new Uint8Array(0), options: { protocolVersion: version }, recipe: 'structured' };
  const describe = () => JSON.stringify(packet, bytesAsHex);
  let bytes: Uint8Array;
  try {
    bytes = encode(packet as unknown as Packet, version);
  } catch (error) {
    if (error instanceof MqttError) return 'refused';
    throw new FuzzFinding(c, `encode threw a non-MqttError for ${describe()}: ${String(error)}`, { cause: error });
  }
  const decoder = new Decoder({ protocolVersion: version });
  decoder.push(bytes);
  let decoded: Packet | undefined;
  try {
    decoded = decoder.next();
  } catch (error) {
    throw new FuzzFinding(
      { ...c, input: bytes },
      `the encoder wrote what the decoder refuses (${error instanceof MqttError ? error.code : String(error)}) for ${describe()}`,
      { cause: error },
    );
  }
  if (decoded === undefined || decoder.buffered !== 0) {
    throw new FuzzFinding({ ...c, input: bytes }, `encoding is not exactly one packet for ${describe()}`);
  }
  if (toHex(encode(decoded, version)) !== toHex(bytes)) {
    throw new FuzzFinding({ ...c, input: bytes }, `decode then encode changed the bytes for ${describe()}`);
  }
  return 'encoded';
}
