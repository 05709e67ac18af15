// Churn: a broker that vehicles connect to and leave for months must keep nothing for the clients that are gone.
// Each cycle runs what a fleet does, with our client, in both protocol versions, over TCP with the memory store and
// over WebSocket with the durable store (small segments, so that it rotates and compacts meanwhile): a vehicle with a will and
// a transient session subscribes (exact, wildcard, shared), a backend on one of a few persistent sessions (5.0:
// expiring a second after it leaves) follows that vehicle's filters and sends it a QoS 2 command, the vehicle
// answers at QoS 1, sets and clears a retained message; every third vehicle is taken over by a second connection
// with its client id, and every other one drops its line without DISCONNECT, so that its will goes out.
// After a warm-up the broker's counters and a census of the heap are taken, and again after many more cycles: the
// counters must be the same, and so must the heap's objects, by kind and in bytes (broker and clients together,
// after a full GC). The census leaves out compiled code, which V8 keeps adding to and dropping for a while (a
// few hundred KB either way between two rounds here), and the bytes of a few kinds that swing by themselves
// (VOLATILE); what is left came out level to within ~200 bytes over 600 cycles and every kind's count to within a
// few, so one object kept per cycle, or a Map or array growing with them, shows. (Checked: a broker that kept
// each departed client id in an array failed here with 1 401 more strings.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, type Message, type MqttClient, type ProtocolVersion } from '@otalink/mqtt';
import type { BrokerOptions, BrokerStats } from '../src/index.js';
import { startBroker } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const tempDir = tempDirs('otalink-churn-');

const WARM_UP = 150;
const CYCLES = 600;
/** Persistent backend sessions, taken in turn: a bounded set, since a 3.1.1 one never expires. */
const BACKENDS = 3;
/** Growth the census lets pass: a few objects and bytes of noise, far below one per cycle. */
const MAX_NEW_OBJECTS_OF_A_KIND = CYCLES / 10;
const MAX_NEW_BYTES = 8 * CYCLES;

/** The next `count` messages `client` gets; fails after 5 s naming `what` it waited for. */
function nextMessages(client: MqttClient, count: number, what: string): Promise<Message[]> {
  const got: Message[] = [];
  return new Promise<Message[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${got.length}/${count}`)), 5000);
    const onMessage = (message: Message) => {
      got.push(message);
      if (got.length < count) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(got);
    };
    client.on('message', onMessage);
  });
}

async function cycle(url: string, i: number): Promise<void> {
  const version: ProtocolVersion = i % 2 === 0 ? 5 : 4;
  const common = { url, protocolVersion: version, reconnect: false as const };
  const vehicleId = `veh-${i}`;
  const backend = await connect({
    ...common,
    clientId: `backend-${version}-${i % BACKENDS}`,
    clean: false,
    properties: version === 5 ? { sessionExpiryInterval: 1 } : undefined,
  });
  // Filters of this vehicle only, taken back before the backend leaves: its session outlives the cycle, and what
  // matched it while offline would queue there (bounded, but not the same count after every cycle).
  const backendFilters = [`churn/fleet/${vehicleId}/+`, `churn/will/${vehicleId}`];
  await backend.subscribe(backendFilters.map((topicFilter) => ({ topicFilter, qos: 1 as const })));
  const will = { topic: `churn/will/${vehicleId}`, payload: vehicleId, qos: 1 as const };
  const asVehicle = { ...common, clientId: vehicleId, will };
  let vehicle = await connect(asVehicle);
  await vehicle.subscribe([
    { topicFilter: `churn/cmd/${vehicleId}`, qos: 2 },
    { topicFilter: 'churn/broadcast/#', qos: 0 },
    { topicFilter: '$share/fleet/churn/job', qos: 1 },
  ]);
  if (i % 3 === 0) {
    // Takeover: the old connection is closed by the broker (DISCONNECT 0x8E in 5.0), its will going out.
    const old = vehicle;
    const oldWill = nextMessages(backend, 1, 'the will of a taken-over vehicle');
    vehicle = await connect(asVehicle);
    await oldWill;
    await old.end({ force: true });
    await vehicle.subscribe([
      { topicFilter: `churn/cmd/${vehicleId}`, qos: 2 },
      { topicFilter: 'churn/broadcast/#', qos: 0 },
      { topicFilter: '$share/fleet/churn/job', qos: 1 },
    ]);
  }

  const toVehicle = nextMessages(vehicle, 3, 'command, broadcast and job');
  await backend.publish(`churn/cmd/${vehicleId}`, 'install', { qos: 2 });
  await backend.publish(`churn/broadcast/${i}`, 'hello', { qos: 0 });
  await backend.publish('churn/job', 'job', { qos: 1 });
  await toVehicle;

  const toBackend = nextMessages(backend, 1, 'status');
  await vehicle.publish(`churn/fleet/${vehicleId}/status`, 'installed', { qos: 1 });
  await vehicle.publish(`churn/retained/${vehicleId}`, 'last', { qos: 1, retain: true });
  await vehicle.publish(`churn/retained/${vehicleId}`, '', { qos: 1, retain: true });
  await toBackend;

  if (i % 2 === 1) {
    // No DISCONNECT: the broker sees the line drop and publishes the will.
    const will = nextMessages(backend, 1, 'the will of a dropped vehicle');
    await vehicle.end({ force: true });
    await will;
  } else {
    await vehicle.end();
  }
  await backend.unsubscribe(backendFilters);
  await backend.end();
}

function counters(stats: BrokerStats) {
  return {
    connections: stats.connectionsCurrent,
    sessions: stats.sessionsCurrent,
    offline: stats.sessionsOffline,
    subscriptions: stats.subscriptionsCurrent,
    retained: stats.retainedCurrent,
    queued: stats.queuedCurrent,
  };
}

/** Waits for the 5.0 backends' sessions to expire (a second after they left) and for connections to finish closing. */
async function settled(b: { broker: { clients(): string[] } }): Promise<void> {
  const until = Date.now() + 5000;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  while (b.broker.clients().length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * Kinds whose bytes swing by up to ~250 KB between two snapshots of the same state: V8's unnamed internal arrays
 * (its string table, number-to-string cache), heap numbers, and array buffers' backing stores (Node's Buffer pool
 * slabs and read buffers, filled and freed whatever the clients do). Their counts are still checked.
 */
const VOLATILE = new Set(['array ', 'number', 'native']);

interface Census {
  /** Self size of every node but compiled code, V8's internal ones and VOLATILE kinds. */
  bytes: number;
  /** Nodes by kind: `object Session`, `string`, `array (object elements)`, `closure onData`, … */
  counts: Map<string, number>;
  /** Their self size, by the same kinds. */
  sizes: Map<string, number>;
}

/**
 * Writes a heap snapshot (V8 makes a full GC first) to `file`. Both snapshots are written before either is read:
 * the first one's census, alive during the second, would be counted in it.
 */
function snapshot(file: string): string {
  gc();
  return writeHeapSnapshot(file);
}

/** Counts what a heap snapshot holds. */
function census(file: string): Census {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = parsed.snapshot.meta.node_fields;
  const typeNames = parsed.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const counts = new Map<string, number>();
  const sizes = new Map<string, number>();
  let bytes = 0;
  for (let i = 0; i < parsed.nodes.length; i += width) {
    const type = typeNames[parsed.nodes[i + typeAt]!]!;
    if (type === 'code' || type === 'hidden' || type === 'synthetic' || type === 'object shape') continue;
    const size = parsed.nodes[i + sizeAt]!;
    // Strings and numbers are named by their value: counted by type alone.
    const named = type === 'object' || type === 'array' || type === 'closure';
    const kind = named ? `${type} ${parsed.strings[parsed.nodes[i + nameAt]!]}` : type;
    if (!VOLATILE.has(kind)) bytes += size;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    sizes.set(kind, (sizes.get(kind) ?? 0) + size);
  }
  return { bytes, counts, sizes };
}

interface SetUp {
  name: string;
  options: () => Partial<BrokerOptions>;
  url: (port: number) => string;
}

const SET_UPS: SetUp[] = [
  {
    name: 'TCP, memory store',
    options: () => ({}),
    url: (port) => `mqtt://127.0.0.1:${port}`,
  },
  {
    name: 'WebSocket, durable store',
    options: () => ({
      listeners: [{ protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' }],
      dataDir: tempDir(),
      // The test is about memory: no fdatasync per commit; segments small enough to rotate and compact meanwhile.
      storeOptions: { sync: 'none', segmentBytes: 64 * 1024, compactMinBytes: 64 * 1024 },
    }),
    url: (port) => `ws://127.0.0.1:${port}/mqtt`,
  },
];

describe('21 churn', () => {
  for (const setUp of SET_UPS) {
    test(`${setUp.name}: ${CYCLES} cycles of clients coming and going leave the broker's state and the heap level`, async () => {
      const b = await startBroker(setUp.options());
      const url = setUp.url(b.port);
      try {
        for (let i = 0; i < WARM_UP; i++) await cycle(url, i);
        await settled(b);
        const before = counters(b.broker.stats);
        // What the warm-up leaves: the 3.1.1 backends' sessions (they never expire), with nothing in them.
        assert.deepEqual(before, {
          connections: 0,
          sessions: BACKENDS,
          offline: BACKENDS,
          subscriptions: 0,
          retained: 0,
          queued: 0,
        });
        const dir = tempDir();
        const firstSnapshot = snapshot(join(dir, 'after-warm-up.heapsnapshot'));

        for (let i = WARM_UP; i < WARM_UP + CYCLES; i++) await cycle(url, i);
        await settled(b);
        assert.deepEqual(b.broker.clients(), []);
        assert.deepEqual(counters(b.broker.stats), before);
        const lastSnapshot = snapshot(join(dir, 'after-churn.heapsnapshot'));
        const heapBefore = census(firstSnapshot);
        const heapAfter = census(lastSnapshot);
        const grown = [...heapAfter.counts]
          .map(([kind, count]) => ({ kind, more: count - (heapBefore.counts.get(kind) ?? 0) }))
          .filter(({ more }) => more > MAX_NEW_OBJECTS_OF_A_KIND);
        assert.deepEqual(grown, [], `kinds of objects that grew over ${CYCLES} cycles`);
        const growth = [...heapAfter.sizes]
          .map(([kind, size]) => ({ kind, more: size - (heapBefore.sizes.get(kind) ?? 0) }))
          .sort((x, y) => y.more - x.more)
          .slice(0, 5)
          .map(({ kind, more }) => `${kind} +${more} B`);
        assert.ok(
          heapAfter.bytes - heapBefore.bytes <= MAX_NEW_BYTES,
          `the heap grew by ${heapAfter.bytes - heapBefore.bytes} B over ${CYCLES} cycles: ${growth.join(', ')}`,
        );
      } finally {
        await b.close();
      }
    });
  }
});
