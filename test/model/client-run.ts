// The client's model run: three of our clients (both versions), each on a persistent session with a file store and
// behind its own proxy, publish at every QoS to topics all three subscribe to, while their links are reset,
// stalled and silenced, their processes "crash" (the link cut and the client abandoned, a new one
// opened on the same store) and the broker restarts. After the links heal and everything settles, the guarantees
// are checked message by message: every QoS 1/2 message whose publish resolved reached every client, QoS 2 and
// QoS 0 at most once (even across a crash), nothing arrived that nobody sent, and each publisher's messages of one
// QoS came in the order they were published.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type MqttClient, openFileStore } from '../../packages/mqtt/src/client/index.js';
import type { TransportFactory } from '../../packages/mqtt/src/client/transport.js';
import { tcpTransport } from '../../packages/mqtt/src/client/transports/tcp.js';
import { Decoder } from '../../packages/mqtt/src/codec/decoder.js';
import type { ProtocolVersion, QoS } from '../../packages/mqtt/src/codec/packets.js';
import { ImpairingProxy } from '../../packages/mqtt/test/client/proxy.js';
import { prng } from '../../packages/mqtt/test/support/prng.js';
import type { ModelBroker } from './brokers.js';
import { ModelDivergence } from './run.js';

export interface ClientRunOptions {
  broker: ModelBroker;
  seed: number;
  /** Operations (publishes, link faults, crashes, restarts) before the links heal. */
  operations: number;
}

interface Sent {
  tag: string;
  from: number;
  seq: number;
  qos: QoS;
  status: 'pending' | 'ok' | string;
  /** The operation that published it. */
  op: number;
}

interface Node {
  id: string;
  version: ProtocolVersion;
  dir: string;
  proxy: ImpairingProxy;
  client: MqttClient | undefined;
  /** Tag → times received, and the order of first arrivals. */
  counts: Map<string, number>;
  arrivals: string[];
  /** For a failure's story: each copy's DUP flag, and which client (after crashes) and connection took it. */
  copies: Map<string, string[]>;
  generation: number;
  connections: number;
  /** What the line watch saw (see watchingTransport). */
  qos2Ids: Map<number, string>;
  released: Set<string>;
  resentAfterRelease: Set<string>;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const decoder = new TextDecoder();

export interface ClientRunResult {
  published: number;
  deliveries: number;
  /** QoS 2 messages delivered twice because the server sent them again after its PUBREL ("client tag"). */
  serverResends: string[];
}

export async function runClientModel(options: ClientRunOptions): Promise<ClientRunResult> {
  const { broker, seed } = options;
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const trace: string[] = [];
  // Every client's line is watched (decoded a second time, for the judge only): which QoS 2 messages the server
  // released (PUBREL) and then sent again as a PUBLISH, which the specification forbids it [MQTT-4.3.3-6] and
  // Mosquitto 2.0.11 does after a reconnect or restart; the client, told by PUBREL to forget the id, must take the
  // PUBLISH as new. With MODEL_PACKETS=1 every packet is also logged, for the story of a failure.
  const packetLog: string[] | undefined = process.env.MODEL_PACKETS === '1' ? [] : undefined;
  const watchingTransport =
    (node: Node, generation: number, log: string[] | undefined): TransportFactory =>
    async (target, handlers) => {
      /** Packet id → the tag of the QoS 2 message it last carried to this client. */
      const carried = node.qos2Ids;
      const [out, into] = [
        new Decoder({ role: 'server' }),
        new Decoder({ protocolVersion: node.version, role: 'client' }),
      ];
      const note = (decoder: Decoder, arrow: string, chunk: Uint8Array) => {
        try {
          decoder.push(chunk);
          for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
            if (decoder === into && p.type === 'publish' && p.qos === 2) {
              const tag = new TextDecoder().decode(p.payload);
              if (node.released.has(tag)) node.resentAfterRelease.add(tag);
              carried.set(p.packetId!, tag);
            } else if (decoder === into && p.type === 'pubrel') {
              const tag = carried.get(p.packetId);
              if (tag !== undefined) node.released.add(tag);
            }
            if (log === undefined) continue;
            const extra =
              p.type === 'publish'
                ? ` id ${p.packetId} q${p.qos} d${p.dup ? 1 : 0} ${decoder === into ? new TextDecoder().decode(p.payload) : ''}`
                : p.type === 'connack'
                  ? ` present ${p.sessionPresent ? 1 : 0} rc ${p.reasonCode}`
                  : 'packetId' in p
                    ? ` id ${p.packetId}`
                    : '';
            log.push(`op ${currentOp} ${node.id}#${generation} ${arrow} ${p.type}${extra}`);
          }
        } catch {
          // a trace only
        }
      };
      const transport = await tcpTransport(target, {
        data(chunk) {
          note(into, '<-', chunk);
          handlers.data(chunk);
        },
        close(error) {
          log?.push(`op ${currentOp} ${node.id}#${generation} closed`);
          handlers.close(error);
        },
        drained() {
          handlers.drained?.();
        },
      });
      return {
        write(chunk) {
          note(out, '->', chunk);
          return transport.write(chunk);
        },
        end: () => transport.end(),
        destroy: () => transport.destroy(),
        pause: () => transport.pause?.(),
        resume: () => transport.resume?.(),
      };
    };
  /** The operation running now (0 before the first, and the last one's while the run settles). */
  let currentOp = 0;
  const fail = (what: string): never => {
    throw new ModelDivergence(
      `seed ${seed}: ${what}\n  operations:\n  ${trace.slice(process.env.MODEL_TRACE === 'all' ? 0 : -40).join('\n  ')}`,
    );
  };
  const nodes: Node[] = [];
  const sent: Sent[] = [];
  const poisoned: string[] = [];
  let deliveries = 0;
  const serverResends: string[] = [];

  const start = async (node: Node, first: boolean): Promise<void> => {
    const generation = ++node.generation;
    const client = await connect({
      transport: watchingTransport(node, generation, packetLog),
      url: node.proxy.url,
      clientId: node.id,
      protocolVersion: node.version,
      clean: false,
      properties: node.version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
      keepalive: 1,
      pingTimeoutMs: 500,
      connectTimeoutMs: 1000,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      // After a crash the link may be down: a vehicle's client starts anyway and connects when it can.
      retryFirstConnect: !first,
      store: await openFileStore(join(node.dir, 'session.store')),
      // The first vehicle also reads an iterator slowly: its acks are held for it while its publishes await theirs.
      highWaterMark: node === nodes[0] ? 4 : undefined,
    });

    // Nothing here is a poison message: the client giving one up (a restored one is reported here) is a failure.
    client.on('error', (error: { code?: string; message: string }) => {
      if (error.code === 'MQTT_ERR_POISON_MESSAGE') poisoned.push(`${node.id}: ${error.message}`);
    });
    client.on('connected', () => node.connections++);
    client.on('message', (m) => {
      deliveries++;
      const tag = decoder.decode(m.payload);
      const n = node.counts.get(tag) ?? 0;
      node.counts.set(tag, n + 1);
      if (n === 0) node.arrivals.push(tag);
      if (m.qos === 2) {
        const copies = node.copies.get(tag) ?? [];
        copies.push(`dup ${m.dup ? 1 : 0}, client #${generation}, connection #${node.connections}, op ${currentOp}`);
        node.copies.set(tag, copies);
      }
    });
    if (node === nodes[0]) {
      // After the listener: the first consumer gets what arrived before it, and the listener is what counts.
      const behind = client.messages();
      void (async () => {
        for await (const _ of behind) await delay(20);
      })();
    }
    node.client = client;
    if (first) await client.subscribe('m/#', { qos: 2 });
  };

  try {
    for (let i = 0; i < 3; i++) {
      const node: Node = {
        id: `cm${seed}-${i}`,
        version: i === 1 ? 4 : 5,
        dir: mkdtempSync(join(tmpdir(), 'otalink-client-model-')),
        proxy: await ImpairingProxy.start(broker.port),
        client: undefined,
        counts: new Map(),
        arrivals: [],
        copies: new Map(),
        generation: 0,
        connections: 0,
        qos2Ids: new Map(),
        released: new Set(),
        resentAfterRelease: new Set(),
      };
      nodes.push(node);
      await start(node, true);
    }
    const seqs = [0, 0, 0];
    for (let op = 1; op <= options.operations; op++) {
      currentOp = op;
      const r = random();
      const i = Math.floor(random() * 3);
      const node = nodes[i]!;
      if (r < 0.6) {
        const qos = pick([0, 1, 2] as const);
        const seq = ++seqs[i]!;
        const entry: Sent = { tag: `${i}.${seq}`, from: i, seq, qos, status: 'pending', op };
        sent.push(entry);
        trace.push(`${op}: ${node.id} publishes ${entry.tag} at QoS ${qos}`);
        node.client!.publish(`m/${i}/${qos}`, entry.tag, { qos }).then(
          () => {
            entry.status = 'ok';
          },
          (error: { code?: string }) => {
            entry.status = error.code ?? 'rejected';
          },
        );
      } else if (r < 0.7) {
        trace.push(`${op}: ${node.id}'s link drops`);
        node.proxy.drop();
      } else if (r < 0.76) {
        const ms = 100 + Math.floor(random() * 1100);
        trace.push(`${op}: ${node.id}'s link stalls for ${ms} ms`);
        node.proxy.pause(ms);
      } else if (r < 0.8) {
        trace.push(`${op}: ${node.id}'s link goes silent (until keepalive notices)`);
        node.proxy.blackhole();
      } else if (r < 0.84) {
        // A crash: the line is cut, the client abandoned with what it holds; a new one opens the same store.
        trace.push(`${op}: ${node.id} crashes and starts again on its store`);
        node.proxy.drop();
        await node.client!.end({ force: true });
        await start(node, false);
      } else if (r < 0.86 && broker.restart !== undefined) {
        trace.push(`${op}: the broker restarts`);
        await broker.restart();
      } else {
        await delay(Math.floor(random() * 40));
      }
    }

    // Heal, let every publish settle and every line go quiet.
    for (const node of nodes) node.proxy.heal();
    const deadline = Date.now() + 30_000;
    while (sent.some((s) => s.status === 'pending')) {
      if (Date.now() > deadline) {
        const stuck = sent.filter((s) => s.status === 'pending').map((s) => s.tag);
        const states = nodes.map((n) => `${n.id} ${n.client?.state}`).join(', ');
        fail(`publishes never settled: ${stuck.slice(0, 20).join(' ')} (clients: ${states})`);
      }
      await delay(50);
    }
    // A silenced line is noticed by keepalive only (up to 1.5 s), then the client waits out its backoff: wait until
    // every client is back on a live line before judging quiet, or a late reconnect looks like a lost message.
    while (nodes.some((n) => n.proxy.silencedLinks > 0 || n.client?.state !== 'connected')) {
      if (Date.now() > deadline) {
        const states = nodes.map((n) => `${n.id} ${n.client?.state}, ${n.proxy.silencedLinks} silenced`).join('; ');
        fail(`clients never came back on live lines (${states})`);
      }
      await delay(50);
    }
    for (let quiet = 0, last = -1; quiet < 15; ) {
      if (Date.now() > deadline + 30_000) fail('deliveries never went quiet');
      await delay(100);
      // The slow reader's held acks keep messages at the server until it has read what it holds.
      const reading = nodes.some((n) => (n.client?.bufferedCount ?? 0) > 0 || (n.client?.unackedCount ?? 0) > 0);
      quiet = deliveries === last && !reading ? quiet + 1 : 0;
      last = deliveries;
    }

    for (const s of sent)
      if (s.status === 'MQTT_ERR_POISON_MESSAGE') poisoned.push(`${s.tag}, published at op ${s.op}`);
    if (poisoned.length > 0) fail(`messages given up as poison on a line that only drops: ${poisoned.join('; ')}`);
    const byTag = new Map(sent.map((s) => [s.tag, s]));
    for (const node of nodes) {
      for (const [tag, n] of node.counts) {
        const s = byTag.get(tag);
        if (s === undefined) return fail(`${node.id} received ${tag}, which nobody sent`);
        if (s.qos === 0 && n > 1) fail(`${node.id} received QoS 0 ${tag} ${n} times`);
        // The server sent it again after releasing it: the second copy is the server's, not the client's doing.
        if (s.qos === 2 && n > 1 && node.resentAfterRelease.has(tag)) serverResends.push(`${node.id} ${tag}`);
        else if (s.qos === 2 && n > 1) {
          const story = trace.filter((line) => {
            const at = Number.parseInt(line, 10);
            return at >= s.op && at <= s.op + 25;
          });
          const packets = (packetLog ?? []).filter((line) => line.includes(` ${node.id}#`));
          fail(
            `${node.id} received QoS 2 ${tag} ${n} times (${s.status}), published at op ${s.op}; copies: ` +
              `${(node.copies.get(tag) ?? []).join(' | ')}\n  from its publish on:\n  ${story.join('\n  ')}` +
              (packetLog === undefined ? '' : `\n  its packets:\n  ${packets.join('\n  ')}`),
          );
        }
      }
      for (const s of sent) {
        if (s.qos === 0 || s.status !== 'ok') continue;
        if (!node.counts.has(s.tag)) {
          const packets = (packetLog ?? []).filter((line) => line.includes(` ${node.id}#`)).slice(-150);
          fail(
            `${node.id} never received ${s.tag} (QoS ${s.qos}, acknowledged to its sender; client ${node.client?.state}, ` +
              `${node.client?.bufferedCount} buffered, reading paused ${node.client?.readingPaused}, ` +
              `${node.client?.unackedCount} unacked)` +
              (packetLog === undefined ? '' : `\n  its last packets:\n  ${packets.join('\n  ')}`),
          );
        }
      }
      // Each publisher's messages of one QoS arrive in the order published (first arrivals).
      for (let from = 0; from < 3; from++) {
        for (const qos of [1, 2] as const) {
          const seen = node.arrivals.map((tag) => byTag.get(tag)!).filter((s) => s.from === from && s.qos === qos);
          for (let k = 1; k < seen.length; k++) {
            if (seen[k]!.seq < seen[k - 1]!.seq) {
              const [a, b] = [seen[k - 1]!, seen[k]!];
              fail(`${node.id} got ${b.tag} (${b.status}) after ${a.tag} (${a.status}) (QoS ${qos} from ${from})`);
            }
          }
        }
      }
    }
    return { published: sent.length, deliveries, serverResends };
  } finally {
    for (const node of nodes) {
      await node.client?.end({ force: true });
      await node.proxy.close();
      rmSync(node.dir, { recursive: true, force: true });
    }
  }
}
