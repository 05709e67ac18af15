// PUBLISH codec benchmark: our Decoder/encoder side by side with mqtt-packet, in one run.
//
//   npm run bench:codec                         table on stdout
//   npm run bench:codec -- --json               JSON on stdout instead of the table
//   npm run bench:codec -- --json=out.json      table on stdout, JSON written to out.json
//   npm run bench:codec -- --filter=parse --quick
//
// Every (case, library) pair runs in its own child process, so each library's hot call sites see exactly one
// packet shape and one call target. Topics are `ota/<VIN>/status` over 1000 distinct 17-character VINs, cycled,
// so nothing that remembers recent topics can flatter either side; one row repeats a single topic for contrast.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Decoder, encode, encodeInto, type ProtocolVersion, type QoS } from '@otalink/mqtt/codec';
import mqttPacket from 'mqtt-packet';
import { runChild } from './lib/child.js';
import { payloadOf, publishPackets, statusTopics } from './lib/codec-fixtures.js';
import { machineInfo } from './lib/machine.js';
import { DEFAULT_MEASURE, type Measurement, type MeasureOptions, measure } from './lib/measure.js';
import { formatTable } from './lib/table.js';

type Impl = 'ours' | 'theirs';
type Op = 'parse' | 'encodeInto' | 'encode';
type Chunking = 'whole' | '16KiB' | '64KiB';
type TopicSet = 'distinct' | 'single';

interface Spec {
  op: Op;
  version: ProtocolVersion;
  qos: QoS;
  payloadBytes: number;
  chunking: Chunking;
  topics: TopicSet;
}

const OP_NAMES: Record<Op, [ours: string, theirs: string]> = {
  parse: ['Decoder', 'parser'],
  encodeInto: ['encodeInto', 'writeToStream'],
  encode: ['encode', 'generate'],
};

function specs(): Spec[] {
  const list: Spec[] = [];
  const grid = (add: (version: ProtocolVersion, qos: QoS, payloadBytes: number) => void) => {
    for (const payloadBytes of [16, 1024])
      for (const version of [4, 5] as const) for (const qos of [0, 1] as const) add(version, qos, payloadBytes);
  };
  for (const chunking of ['whole', '16KiB', '64KiB'] as const) {
    grid((version, qos, payloadBytes) =>
      list.push({ op: 'parse', version, qos, payloadBytes, chunking, topics: 'distinct' }),
    );
  }
  list.push({ op: 'parse', version: 4, qos: 0, payloadBytes: 16, chunking: 'whole', topics: 'single' });
  for (const op of ['encodeInto', 'encode'] as const) {
    grid((version, qos, payloadBytes) =>
      list.push({ op, version, qos, payloadBytes, chunking: 'whole', topics: 'distinct' }),
    );
  }
  list.push({ op: 'encodeInto', version: 4, qos: 0, payloadBytes: 16, chunking: 'whole', topics: 'single' });
  return list;
}

function caseName(s: Spec): string {
  const [ours, theirs] = OP_NAMES[s.op];
  const chunks = s.op === 'parse' ? ` ${s.chunking === 'whole' ? 'one chunk' : `${s.chunking} chunks`}` : '';
  const payload = s.payloadBytes >= 1024 ? `${s.payloadBytes / 1024} KiB` : `${s.payloadBytes} B`;
  return `${s.op} ${s.version === 5 ? '5.0' : '3.1.1'} QoS${s.qos} ${payload}${chunks} (${ours} / ${theirs})`;
}

// ---- fixtures ----

function theirPackets(s: Spec, count: number): mqttPacket.IPublishPacket[] {
  const topics = statusTopics(s.topics);
  const payload = payloadOf(s.payloadBytes);
  const packets: mqttPacket.IPublishPacket[] = [];
  for (let i = 0; i < count; i++) {
    const packet: mqttPacket.IPublishPacket = {
      cmd: 'publish',
      topic: topics[i % topics.length]!,
      payload,
      qos: s.qos,
      retain: false,
      dup: false,
    };
    if (s.qos > 0) packet.messageId = (i % 65535) + 1;
    packets.push(packet);
  }
  return packets;
}

/** The byte stream a socket would deliver, cut as `chunking` says (chunks split packets wherever they fall). */
function streamChunks(s: Spec): { chunks: Buffer[]; packets: number } {
  const count = s.payloadBytes >= 1024 ? 2000 : 8000;
  const frames = publishPackets(s, count).map((p) => encode(p, s.version));
  const stream = Buffer.concat(frames);
  if (s.chunking === 'whole') return { chunks: [stream], packets: count };
  const size = s.chunking === '16KiB' ? 16 * 1024 : 64 * 1024;
  const chunks: Buffer[] = [];
  // Copies, as each socket read is its own buffer.
  for (let o = 0; o < stream.length; o += size) chunks.push(Buffer.from(stream.subarray(o, o + size)));
  return { chunks, packets: count };
}

// ---- one case in one process ----

function check(handled: number, expected: number, what: string): void {
  if (handled !== expected) throw new Error(`${what}: handled ${handled} packets, expected ${expected}`);
}

function benchParseOurs(s: Spec, options: MeasureOptions): Measurement {
  const { chunks, packets } = streamChunks(s);
  const decoder = new Decoder({ protocolVersion: s.version, role: 'server' });
  const op = () => {
    let n = 0;
    for (let c = 0; c < chunks.length; c++) {
      decoder.push(chunks[c]!);
      while (decoder.next() !== undefined) n++;
    }
    return n;
  };
  check(op(), packets, 'Decoder');
  return measure(op, options);
}

function benchParseTheirs(s: Spec, options: MeasureOptions): Measurement {
  const { chunks, packets } = streamChunks(s);
  const parser = mqttPacket.parser({ protocolVersion: s.version });
  let n = 0;
  parser.on('packet', () => {
    n++;
  });
  parser.on('error', (error: Error) => {
    throw error;
  });
  const op = () => {
    n = 0;
    for (let c = 0; c < chunks.length; c++) parser.parse(chunks[c]!);
    return n;
  };
  check(op(), packets, 'mqtt-packet parser');
  return measure(op, options);
}

// A coalescing write buffer, as a connection would keep: packets are appended and it wraps when nearly full.
const WRITE_BUFFER_BYTES = 64 * 1024;

function benchEncodeIntoOurs(s: Spec, options: MeasureOptions): Measurement {
  const packets = publishPackets(s, 1000);
  const version = s.version;
  // A Node Buffer, as a socket's write buffer is on Node (the codec writes ASCII topics natively into Buffers).
  const buf = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  const limit = WRITE_BUFFER_BYTES - (s.payloadBytes + 256);
  let offset = 0;
  return measure(() => {
    for (let i = 0; i < packets.length; i++) {
      if (offset > limit) offset = 0;
      offset = encodeInto(packets[i]!, version, buf, offset);
    }
    return packets.length;
  }, options);
}

function benchWriteToStreamTheirs(s: Spec, options: MeasureOptions): Measurement {
  const packets = theirPackets(s, 1000);
  const opts = { protocolVersion: s.version };
  // A sink that copies each piece into a reused buffer, as encodeInto's coalescing buffer: the same work of
  // putting the bytes in one place (mqtt-packet hands the topic over as a string; a socket must encode it too).
  // No cork/uncork, so mqtt-packet schedules no nextTick per packet.
  const target = Buffer.alloc(WRITE_BUFFER_BYTES);
  const limit = WRITE_BUFFER_BYTES - (s.payloadBytes + 256);
  let offset = 0;
  let written = 0;
  const sink = {
    write(chunk: Buffer | string): boolean {
      if (offset > limit) offset = 0;
      const n = typeof chunk === 'string' ? target.write(chunk, offset) : chunk.copy(target, offset);
      offset += n;
      written += n;
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const m = measure(() => {
    for (let i = 0; i < packets.length; i++) mqttPacket.writeToStream(packets[i]!, sink, opts);
    return packets.length;
  }, options);
  if (written === 0) throw new Error('writeToStream wrote nothing');
  return m;
}

function benchEncodeOurs(s: Spec, options: MeasureOptions): Measurement {
  const packets = publishPackets(s, 1000);
  const version = s.version;
  let bytes = 0;
  const m = measure(() => {
    for (let i = 0; i < packets.length; i++) bytes += encode(packets[i]!, version).length;
    return packets.length;
  }, options);
  if (bytes === 0) throw new Error('encode produced nothing');
  return m;
}

function benchGenerateTheirs(s: Spec, options: MeasureOptions): Measurement {
  const packets = theirPackets(s, 1000);
  const opts = { protocolVersion: s.version };
  let bytes = 0;
  const m = measure(() => {
    for (let i = 0; i < packets.length; i++) bytes += mqttPacket.generate(packets[i]!, opts).length;
    return packets.length;
  }, options);
  if (bytes === 0) throw new Error('generate produced nothing');
  return m;
}

function runCase(s: Spec, impl: Impl, options: MeasureOptions): Measurement {
  switch (s.op) {
    case 'parse':
      return impl === 'ours' ? benchParseOurs(s, options) : benchParseTheirs(s, options);
    case 'encodeInto':
      return impl === 'ours' ? benchEncodeIntoOurs(s, options) : benchWriteToStreamTheirs(s, options);
    case 'encode':
      return impl === 'ours' ? benchEncodeOurs(s, options) : benchGenerateTheirs(s, options);
  }
}

// ---- driver ----

interface Row {
  case: string;
  topics: string;
  /** Millions of packets per CPU second (median). */
  oursMps: number;
  theirsMps: number;
  ratio: number;
  /** Millions of packets per wall-clock second (median). */
  oursWallMps: number;
  theirsWallMps: number;
  oursRounds: number[];
  theirsRounds: number[];
}

function arg(name: string): string | undefined {
  const hit = process.argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hit === undefined) return undefined;
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : '';
}

function main(): void {
  const quick = arg('quick') !== undefined;
  const options: MeasureOptions = quick ? { warmupMs: 300, rounds: 3, roundMs: 150 } : DEFAULT_MEASURE;
  const all = specs();

  const child = arg('child');
  if (child !== undefined) {
    const [index, impl] = child.split(':');
    const spec = all[Number(index)];
    if (spec === undefined || (impl !== 'ours' && impl !== 'theirs')) throw new Error(`bad --child ${child}`);
    process.stdout.write(`${JSON.stringify(runCase(spec, impl, options))}\n`);
    return;
  }

  const filter = arg('filter');
  const json = arg('json');
  const script = fileURLToPath(import.meta.url);
  const machine = machineInfo();
  const rows: Row[] = [];
  all.forEach((spec, index) => {
    const name = caseName(spec);
    if (filter !== undefined && filter !== '' && !name.includes(filter)) return;
    const extra = quick ? ['--quick'] : [];
    const ours = runChild(script, [`--child=${index}:ours`, ...extra]) as Measurement;
    const theirs = runChild(script, [`--child=${index}:theirs`, ...extra]) as Measurement;
    const row: Row = {
      case: name,
      topics: spec.topics === 'distinct' ? '1000 VINs' : '1 topic',
      oursMps: ours.median / 1e6,
      theirsMps: theirs.median / 1e6,
      ratio: ours.median / theirs.median,
      oursWallMps: ours.wallMedian / 1e6,
      theirsWallMps: theirs.wallMedian / 1e6,
      oursRounds: ours.rounds,
      theirsRounds: theirs.rounds,
    };
    rows.push(row);
    if (json !== '') process.stderr.write(`${name}: ${row.oursMps.toFixed(2)} vs ${row.theirsMps.toFixed(2)} M/s\n`);
  });

  const report = {
    machine,
    mqttPacket: mqttPacketVersion(),
    measure: options,
    topics: 'ota/<VIN>/status, 1000 distinct 17-character VINs cycled (or 1 topic where marked)',
    rows,
  };
  if (json === '') {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const header = [
    `PUBLISH codec: @otalink/mqtt vs mqtt-packet ${report.mqttPacket}, each case in a fresh process, median of ${options.rounds} rounds`,
    'M/s = million packets per second of the process CPU time (wall-clock rates, lower when the machine is shared, in --json)',
    `Node ${machine.node} (V8 ${machine.v8}), ${machine.cpu}, ${machine.cores} cores, ${machine.date}`,
    `Topics: ${report.topics}`,
    '',
  ].join('\n');
  const table = formatTable(
    ['case', 'topics', 'ours M/s', 'mqtt-packet M/s', 'ratio'],
    rows.map((r) => [r.case, r.topics, r.oursMps, r.theirsMps, r.ratio]),
  );
  process.stdout.write(`${header}${table}\n`);
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
}

function mqttPacketVersion(): string {
  try {
    const pkg = new URL('../node_modules/mqtt-packet/package.json', import.meta.url);
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

main();
