// A load generator process: raw TCP sockets speaking pre-encoded MQTT 3.1.1, driven by the runner over IPC.
// Writes are batched per socket per tick; the measured phase is read with the framing-only `Framer`, while
// CONNACK and SUBACK are decoded with our `decodePacket` and checked.
import { connect, type Socket } from 'node:net';
import { decodePacket } from '@otalink/mqtt/codec';
import { Framer } from './framer.js';
import {
  checkPubackLayout,
  connectFrame,
  DISCONNECT,
  type PublishTemplate,
  publishTemplate,
  subscribeFrame,
  writePuback,
} from './frames.js';
import type {
  ConnectLoopCommand,
  ConnectLoopResult,
  Counters,
  OpenCommand,
  PublishCommand,
  Request,
  Response,
  RttCommand,
  RttResult,
  StatsResult,
} from './protocol.js';
import { emptyCounters } from './protocol.js';
import { percentile, summarize } from './stats.js';

/** Above this many unflushed bytes on a socket the broker is not keeping up: the generator holds back. */
const HIGH_WATER_BYTES = 256 * 1024;
const TICK_MS = 1;
/** The token bucket never holds more than this much time's worth, so a stalled tick does not become a burst. */
const MAX_BURST_S = 0.02;
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

interface Client {
  index: number;
  socket: Socket;
  framer: Framer;
  inflight: number;
  nextPacketId: number;
  pendingAcks: number[];
  /** Reused batch of PUBLISH frames, valid for `batchTemplate`. */
  batch: Buffer | undefined;
  batchTemplate: Buffer | undefined;
  open: boolean;
}

interface Publishing {
  command: PublishCommand;
  frame: Buffer;
  packetIdOffset: number;
  /** Per client: its own topic (with %i) means its own frame, with its own packet id offset. */
  templates: PublishTemplate[] | undefined;
  tokens: number;
  last: number;
  cursor: number;
  timer: NodeJS.Timeout | undefined;
}

interface Group {
  clients: Client[];
  counters: Counters;
  publishing: Publishing | undefined;
}

const groups = new Map<string, Group>();

checkPubackLayout();

function send(response: Response): void {
  process.send?.(response);
}

process.on('message', (message: Request) => {
  handle(message).then(
    (result) => send({ id: message.id, ok: true, result }),
    (error: unknown) =>
      send({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});
// The runner going away (even by SIGKILL) closes the IPC channel: never outlive it.
process.on('disconnect', () => process.exit(0));

async function handle(request: Request): Promise<unknown> {
  switch (request.cmd) {
    case 'open':
      return open(request);
    case 'publish':
      return startPublishing(request);
    case 'stats':
      return stats();
    case 'close':
      return close(request.group, request.timeoutMs);
    case 'rtt':
      return roundTrip(request);
    case 'connectLoop':
      return connectLoop(request);
  }
}

function stats(): StatsResult {
  const out: Record<string, Counters> = {};
  for (const [name, group] of groups)
    out[name] = { ...group.counters, clients: group.clients.filter((c) => c.open).length };
  const cpu = process.cpuUsage();
  return { groups: out, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function substitute(template: string, index: number): string {
  return template.replaceAll('%i', String(index));
}

async function open(command: OpenCommand): Promise<{ ms: number }> {
  if (groups.has(command.group)) throw new Error(`group ${command.group} is already open`);
  const group: Group = { clients: [], counters: emptyCounters(), publishing: undefined };
  groups.set(command.group, group);
  const started = performance.now();
  let nextIndex = 0;
  const deadline = Date.now() + command.timeoutMs;
  const worker = async () => {
    while (nextIndex < command.count) {
      const offset = nextIndex++;
      if (Date.now() > deadline) throw new Error(`open ${command.group}: timed out after ${offset} clients`);
      const index = command.first + offset;
      const localAddress = command.localAddresses[Math.floor(offset / 20_000) % command.localAddresses.length];
      group.clients.push(await openClient(command, group, index, localAddress));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, command.concurrency) }, worker));
  return { ms: performance.now() - started };
}

function openClient(
  command: OpenCommand,
  group: Group,
  index: number,
  localAddress: string | undefined,
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const onChunk = (chunk: Buffer): void => {
      try {
        client.framer.push(chunk);
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      flushAcks(client);
    };
    const socket = connect({
      host: '127.0.0.1',
      port: command.port,
      localAddress,
      noDelay: true,
      // Reads land in one shared buffer and skip the stream machinery: per-read cost matters when a broker sends
      // each delivery in its own segment. The framer copies any partial frame before the next read reuses it.
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes: number, buffer: Uint8Array) => {
          onChunk(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
          return true;
        },
      },
    });
    socket.setNoDelay(true);
    let phase: 'connack' | 'suback' | 'ready' = 'connack';
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    const client: Client = {
      index,
      socket,
      framer: new Framer({
        publish(qos, packetId) {
          group.counters.received++;
          if (qos === 1) client.pendingAcks.push(packetId);
        },
        puback() {
          group.counters.acked++;
          if (client.inflight > 0) client.inflight--;
        },
        control(frame) {
          const packet = decodePacket(frame, { protocolVersion: 4 });
          if (phase === 'connack' && packet.type === 'connack') {
            if (packet.reasonCode !== 0) return fail(new Error(`CONNACK refused: ${packet.reasonCode}`));
            if (command.subscribe === undefined) {
              phase = 'ready';
              resolve(client);
            } else {
              phase = 'suback';
              socket.write(subscribeFrame(substitute(command.subscribe.filter, index), command.subscribe.qos));
            }
          } else if (phase === 'suback' && packet.type === 'suback') {
            const code = packet.reasonCodes[0] ?? 0x80;
            if (code >= 0x80) return fail(new Error(`SUBACK refused: ${code}`));
            phase = 'ready';
            resolve(client);
          }
        },
      }),
      inflight: 0,
      nextPacketId: 1,
      pendingAcks: [],
      batch: undefined,
      batchTemplate: undefined,
      open: true,
    };
    socket.on('connect', () => socket.write(connectFrame(substitute(command.clientPrefix, index))));
    socket.on('error', (error) => {
      if (phase !== 'ready') reject(error);
    });
    socket.on('close', () => {
      if (client.open && phase === 'ready') group.counters.lost++;
      client.open = false;
      if (phase !== 'ready') reject(new Error(`closed by the broker before ${phase}`));
    });
  });
}

function flushAcks(client: Client): void {
  const count = client.pendingAcks.length;
  if (count === 0) return;
  const out = Buffer.allocUnsafe(count * 4);
  for (let i = 0; i < count; i++) writePuback(out, i * 4, client.pendingAcks[i] as number);
  client.pendingAcks.length = 0;
  if (client.open) client.socket.write(out);
}

function startPublishing(command: PublishCommand): { clients: number } {
  const group = groups.get(command.group);
  if (group === undefined) throw new Error(`no group ${command.group}`);
  if (group.publishing?.timer !== undefined) clearTimeout(group.publishing.timer);
  group.publishing = undefined;
  if (command.rate <= 0) return { clients: group.clients.length };
  const perClient = command.topic.includes('%i');
  const template = publishTemplate(substitute(command.topic, 0), command.qos, command.payloadBytes);
  const publishing: Publishing = {
    command,
    frame: template.frame,
    packetIdOffset: template.packetIdOffset,
    templates: perClient
      ? group.clients.map((c) => publishTemplate(substitute(command.topic, c.index), command.qos, command.payloadBytes))
      : undefined,
    tokens: 0,
    last: performance.now(),
    cursor: 0,
    timer: undefined,
  };
  for (const client of group.clients) {
    client.batch = undefined;
    client.batchTemplate = undefined;
  }
  group.publishing = publishing;
  const tick = () => {
    const now = performance.now();
    const rate = command.rate;
    publishing.tokens = Math.min(publishing.tokens + ((now - publishing.last) / 1000) * rate, rate * MAX_BURST_S + 1);
    publishing.last = now;
    const due = Math.floor(publishing.tokens);
    if (due > 0) {
      publishing.tokens -= due;
      group.counters.offered += due;
      emit(group, publishing, due);
    }
    publishing.timer = setTimeout(tick, TICK_MS);
  };
  publishing.timer = setTimeout(tick, TICK_MS);
  return { clients: group.clients.length };
}

/** Spreads `due` messages round-robin over the group's clients, one batched write per client. */
function emit(group: Group, publishing: Publishing, due: number): void {
  const clients = group.clients;
  const count = clients.length;
  if (count === 0) {
    group.counters.held += due;
    return;
  }
  const base = Math.floor(due / count);
  let extra = due - base * count;
  const touched = base > 0 ? count : extra;
  for (let t = 0; t < touched; t++) {
    const slot = (publishing.cursor + t) % count;
    const client = clients[slot] as Client;
    let k = base;
    if (extra > 0) {
      k++;
      extra--;
    }
    if (k === 0) continue;
    if (!client.open || client.socket.writableLength > HIGH_WATER_BYTES) {
      group.counters.held += k;
      continue;
    }
    if (publishing.command.qos > 0) {
      const room = Math.max(0, publishing.command.maxInflight - client.inflight);
      if (k > room) {
        group.counters.held += k - room;
        k = room;
        if (k === 0) continue;
      }
    }
    const own = publishing.templates?.[slot];
    if (own === undefined) writeBatch(client, publishing.frame, publishing.packetIdOffset, k);
    else writeBatch(client, own.frame, own.packetIdOffset, k);
    group.counters.sent += k;
  }
  publishing.cursor = (publishing.cursor + touched) % count;
}

function writeBatch(client: Client, frame: Buffer, packetIdOffset: number, k: number): void {
  const size = frame.length;
  let batch = client.batch;
  // QoS 1 patches ids in place, so the reused batch must not still be queued in the socket.
  const reusable =
    batch !== undefined &&
    client.batchTemplate === frame &&
    batch.length >= k * size &&
    (packetIdOffset < 0 || client.socket.writableLength === 0);
  if (!reusable || batch === undefined) {
    batch = Buffer.allocUnsafe(Math.max(k, 16) * size);
    for (let i = 0; i + size <= batch.length; i += size) frame.copy(batch, i);
    client.batch = batch;
    client.batchTemplate = frame;
  }
  if (packetIdOffset >= 0) {
    for (let i = 0; i < k; i++) {
      const id = client.nextPacketId;
      client.nextPacketId = id === 0xffff ? 1 : id + 1;
      const at = i * size + packetIdOffset;
      batch[at] = id >> 8;
      batch[at + 1] = id & 0xff;
    }
    client.inflight += k;
  }
  client.socket.write(k * size === batch.length ? batch : batch.subarray(0, k * size));
}

async function close(name: string | undefined, timeoutMs: number): Promise<{ closed: number }> {
  const names = name === undefined ? [...groups.keys()] : [name];
  const waits: Promise<void>[] = [];
  for (const groupName of names) {
    const group = groups.get(groupName);
    if (group === undefined) continue;
    if (group.publishing?.timer !== undefined) clearTimeout(group.publishing.timer);
    groups.delete(groupName);
    for (const client of group.clients) {
      client.open = false;
      if (client.socket.destroyed) continue;
      waits.push(
        new Promise((resolve) => {
          client.socket.once('close', () => resolve());
          // A saturated socket would take long to flush: just cut it.
          if (client.socket.writableLength > 0) client.socket.destroy();
          else client.socket.end(DISCONNECT);
        }),
      );
    }
  }
  const timer = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
  await Promise.race([Promise.all(waits), timer]);
  return { closed: waits.length };
}

/** QoS 1 publish to a topic the same client subscribes to: publish→PUBACK and publish→delivery times. */
async function roundTrip(command: RttCommand): Promise<RttResult> {
  const group = `rtt-${command.clientId}`;
  await open({
    cmd: 'open',
    group,
    port: command.port,
    first: 0,
    count: 1,
    clientPrefix: command.clientId,
    subscribe: { filter: command.topic, qos: 1 },
    localAddresses: ['127.0.0.1'],
    concurrency: 1,
    timeoutMs: 10_000,
  });
  const client = groups.get(group)?.clients[0];
  if (client === undefined) throw new Error('rtt client missing');
  const template = publishTemplate(command.topic, 1, Math.max(8, command.payloadBytes));
  await warmUp(client, template, command.warmupRoundTrips);
  const sentAtBySeq = new Map<number, number>();
  const sentAtById = new Map<number, number>();
  const delivery: number[] = [];
  const puback: number[] = [];
  let measuring = false;
  let sent = 0;
  client.framer = new Framer({
    publish(qos, packetId, buf, payloadStart) {
      const now = performance.now();
      const seq = buf.readUInt32BE(payloadStart);
      const at = sentAtBySeq.get(seq);
      sentAtBySeq.delete(seq);
      if (at !== undefined && measuring) delivery.push(now - at);
      if (qos === 1) client.pendingAcks.push(packetId);
    },
    puback(packetId) {
      const now = performance.now();
      const at = sentAtById.get(packetId);
      sentAtById.delete(packetId);
      if (at !== undefined && measuring) puback.push(now - at);
    },
    control() {},
  });
  const interval = 1000 / command.rate;
  const started = performance.now();
  const measureFrom = started + command.warmupMs;
  const end = measureFrom + command.durationMs;
  let seq = 0;
  await new Promise<void>((resolve) => {
    const step = () => {
      const now = performance.now();
      if (now >= end) return resolve();
      if (!measuring && now >= measureFrom) measuring = true;
      const frame = Buffer.from(template.frame);
      const id = (seq % 0xffff) + 1;
      frame.writeUInt16BE(id, template.packetIdOffset);
      frame.writeUInt32BE(seq, template.payloadOffset);
      const at = performance.now();
      sentAtBySeq.set(seq, at);
      sentAtById.set(id, at);
      client.socket.write(frame);
      if (measuring) sent++;
      seq++;
      // Scheduled against the start, so the rate holds whatever each timer's lateness.
      const next = started + seq * interval;
      setTimeout(step, Math.max(0, next - performance.now()));
    };
    step();
  });
  // Let the last messages arrive.
  await new Promise((r) => setTimeout(r, 200));
  measuring = false;
  await close(group, 2000);
  return {
    sent,
    delivered: delivery.length,
    acked: puback.length,
    deliveryMs: summarize(delivery),
    pubackMs: summarize(puback),
    deliverySamples: delivery,
    pubackSamples: puback,
  };
}

/**
 * `count` QoS 1 round trips as fast as they go, 10 in flight, before the timed phase: at 200/s a Node broker would
 * still be compiling its hot path for the whole measurement (V8 optimizes a function after enough calls; callgrind
 * counted 170 k of ~255 k instructions per round trip in the JIT compiler over 2 000 round trips without this, 42 k
 * after 5 000 of them), so the row would show a broker's first seconds rather than one that has been running.
 */
async function warmUp(client: Client, template: PublishTemplate, count: number): Promise<void> {
  if (count <= 0) return;
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve) => {
    const send = () => {
      const frame = Buffer.from(template.frame);
      frame.writeUInt16BE((sent % 0xffff) + 1, template.packetIdOffset);
      frame.writeUInt32BE(0xffffffff, template.payloadOffset);
      sent++;
      client.socket.write(frame);
    };
    client.framer = new Framer({
      publish(qos, packetId) {
        if (qos === 1) client.pendingAcks.push(packetId);
      },
      puback() {
        acked++;
        if (sent < count) send();
        else if (acked === count) resolve();
      },
      control() {},
    });
    for (let i = 0; i < Math.min(10, count); i++) send();
  });
  // Deliveries still on their way belong to the warm-up: let them arrive before the timed phase's framer takes over.
  await new Promise((r) => setTimeout(r, 100));
}

/**
 * CONNECT frames with client ids `${prefix}00000000`, `${prefix}00000001`, …: encoded once, then each one a copy with
 * its serial number patched in, so the generator spends no time encoding between connects.
 */
function connectFrames(prefix: string): { next(): Buffer } {
  const template = connectFrame(`${prefix}00000000`);
  const digitsAt = template.length - 8;
  let serial = 0;
  return {
    next() {
      const frame = Buffer.from(template);
      frame.write((serial++ % 1e8).toString().padStart(8, '0'), digitsAt, 'latin1');
      return frame;
    },
  };
}

/**
 * connect → CONNECT → CONNACK → DISCONNECT + close, `concurrency` handshakes in progress at once, for `durationMs`.
 * A loop moves on once its CONNACK is in and DISCONNECT sent; the close finishes in the background, bounded to a
 * few times `concurrency` sockets, so the rate measures the broker's accept/CONNECT path, not the FIN exchange.
 */
async function connectLoop(command: ConnectLoopCommand): Promise<ConnectLoopResult> {
  const started = performance.now();
  const end = started + command.durationMs;
  const maxClosing = 4 * command.concurrency;
  let completed = 0;
  let errors = 0;
  let closing = 0;
  let firstError: string | undefined;
  const connects = connectFrames(command.clientPrefix);
  const handshakeMs: number[] = [];
  const once = (localAddress: string | undefined) =>
    new Promise<void>((resolve) => {
      const begun = performance.now();
      const socket = connect({ host: '127.0.0.1', port: command.port, localAddress, noDelay: true });
      closing++;
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (error !== undefined) {
          errors++;
          firstError ??= error;
          socket.destroy();
        }
        resolve();
      };
      const timer = setTimeout(() => finish('no CONNACK within 5 s'), 5000);
      socket.on('connect', () => socket.write(connects.next()));
      socket.once('data', (chunk: Buffer) => {
        if (chunk.length >= 4 && chunk[0] === 0x20 && chunk[3] === 0) {
          completed++;
          handshakeMs.push(performance.now() - begun);
          socket.end(DISCONNECT);
          finish();
        } else {
          finish(`unexpected reply ${chunk.subarray(0, 4).toString('hex')}`);
        }
      });
      socket.on('error', (error) => finish(error.message));
      socket.on('close', () => {
        closing--;
        finish('closed before CONNACK');
      });
    });
  let slotSerial = 0;
  const loop = async () => {
    const slot = slotSerial++;
    let turn = 0;
    while (performance.now() < end) {
      while (closing >= maxClosing) await new Promise((r) => setTimeout(r, 1));
      const addresses = command.localAddresses;
      await once(addresses.length > 0 ? addresses[(slot + turn++) % addresses.length] : undefined);
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, loop));
  const elapsedMs = performance.now() - started;
  for (let i = 0; i < 3000 && closing > 0; i++) await new Promise((r) => setTimeout(r, 1));
  handshakeMs.sort((a, b) => a - b);
  return {
    completed,
    errors,
    elapsedMs,
    firstError,
    handshakeMs: { p50: percentile(handshakeMs, 0.5), p99: percentile(handshakeMs, 0.99) },
  };
}
