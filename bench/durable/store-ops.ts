// CPU cost of the log store alone, on the three paths bench:durable measures through the broker: a publish to four
// offline persistent subscribers (one `msg` and four `enqueue` records), a drain (`inflight` moving the queue entry
// into the window, then `inflight-del` on PUBACK) and a load with 100 k queued. CPU time (process.cpuUsage, all
// threads) is far less sensitive to a shared machine than wall time; run it under `valgrind --tool=callgrind` for
// instruction counts.
// node --import tsx bench/durable/store-ops.ts [messages] [sync: batch|none]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogStore as LogStoreClass } from '../../packages/broker/src/index.js';

// STORE_MODULE=path/to/broker/src/index.ts measures another version of the store (e.g. a checkout of an older commit).
const other = process.env.STORE_MODULE;
const { LogStore } = (
  other === undefined ? await import('../../packages/broker/src/index.js') : await import(other)
) as { LogStore: typeof LogStoreClass };

const count = Number(process.argv[2] ?? 40_000);
const sync = (process.argv[3] ?? 'batch') as 'batch' | 'none';
const SUBSCRIBERS = ['bench-sub-0', 'bench-sub-1', 'bench-sub-2', 'bench-sub-3'];
/** Messages per event-loop turn (the batch a closed loop of that many publishers makes). */
const PER_TURN = 50;
const payload = new Uint8Array(256).fill(97);

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

const dir = mkdtempSync(join(tmpdir(), 'otalink-store-ops-'));
try {
  const store = new LogStore({ dir, sync, compactMinBytes: Number.MAX_SAFE_INTEGER });
  await store.load();
  for (const id of SUBSCRIBERS) store.putSession(id, 3600, Date.now() + 3_600_000);
  await store.commit();

  type Queued = { entryId: number; delivery: Parameters<LogStoreClass['enqueue']>[2] };
  const entries = new Map<string, Queued[]>(SUBSCRIBERS.map((id) => [id, []]));
  let cpu = cpuMs();
  let wall = performance.now();
  for (let i = 0; i < count; i++) {
    const message = {
      topic: `bench/durable/${i % 50}`,
      payload,
      qos: 1 as const,
      retain: false,
      properties: undefined,
      expiresAt: 0,
      origin: `bench-pub-${i % 50}`,
    };
    for (const id of SUBSCRIBERS) {
      const entryId = store.newEntryId();
      const delivery = {
        messageId: store.putMessage(message),
        qos: 1 as const,
        retain: false,
        subscriptionIds: undefined,
        sharedFilter: undefined,
      };
      entries.get(id)!.push({ entryId, delivery });
      store.enqueue(id, entryId, delivery);
    }
    if (i % PER_TURN === PER_TURN - 1) await store.commit();
  }
  await store.commit();
  const publishCpu = cpuMs() - cpu;
  const publishWall = performance.now() - wall;

  cpu = cpuMs();
  wall = performance.now();
  let packetId = 0;
  let drained = 0;
  for (let i = 0; i < count; i++) {
    for (const id of SUBSCRIBERS) {
      const { entryId, delivery } = entries.get(id)![i]!;
      packetId = (packetId % 65535) + 1;
      store.setInflight(id, packetId, delivery, entryId);
      store.completeInflight(id, packetId);
      drained++;
    }
    if (i % PER_TURN === PER_TURN - 1) await store.commit();
  }
  await store.commit();
  const drainCpu = cpuMs() - cpu;
  const drainWall = performance.now() - wall;
  await store.close();

  // Load: 100 k messages queued for one session, read back by a new store.
  const loadDir = join(dir, 'load');
  const writer = new LogStore({ dir: loadDir, sync: 'none', compactMinBytes: Number.MAX_SAFE_INTEGER });
  await writer.load();
  writer.putSession('k', 3600, Date.now() + 3_600_000);
  for (let i = 0; i < 100_000; i++) {
    const messageId = writer.putMessage({
      topic: `bench/durable/${i % 50}`,
      payload,
      qos: 1,
      retain: false,
      properties: undefined,
      expiresAt: 0,
      origin: `bench-pub-${i % 50}`,
    });
    writer.enqueue('k', writer.newEntryId(), {
      messageId,
      qos: 1,
      retain: false,
      subscriptionIds: undefined,
      sharedFilter: undefined,
    });
    if (i % 1000 === 999) await writer.commit();
  }
  await writer.close();
  const bytes = writer.size().bytes;
  cpu = cpuMs();
  wall = performance.now();
  const reader = new LogStore({ dir: loadDir, sync: 'none' });
  const contents = await reader.load();
  const loadCpu = cpuMs() - cpu;
  const loadWall = performance.now() - wall;
  const queued = contents.sessions.get('k')?.queue.size;
  await reader.close();

  const us = (ms: number, n: number) => ((ms * 1000) / n).toFixed(2);
  console.log(`# store-ops: ${count} messages x ${SUBSCRIBERS.length} offline subscribers, sync ${sync}`);
  console.log(`publish  cpu ${us(publishCpu, count)} us/msg  wall ${us(publishWall, count)} us/msg`);
  console.log(`drain    cpu ${us(drainCpu, drained)} us/delivery  wall ${us(drainWall, drained)} us/delivery`);
  console.log(
    `load     100k queued (${(bytes / 1e6).toFixed(1)} MB, ${queued} back): cpu ${loadCpu.toFixed(0)} ms  wall ${loadWall.toFixed(0)} ms`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
