// Event-loop stall during a compaction of the broker's log store: 100 k queued messages (256 B) for one session,
// then compactNow() while a writer keeps committing one operation per turn. Prints the longest event-loop delay
// (perf_hooks monitorEventLoopDelay, and the longest gap between 1 ms timer ticks), the compaction's wall time and
// the slowest commit meanwhile.
// node --import tsx bench/durable/compaction.ts [messages]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LogStore as LogStoreClass } from '../../packages/broker/src/index.js';

// STORE_MODULE=path/to/broker/src/index.ts measures another version of the store (e.g. a checkout of an older commit).
const { LogStore } = (await import(process.env.STORE_MODULE ?? '../../packages/broker/src/index.js')) as {
  LogStore: typeof LogStoreClass;
};

const count = Number(process.argv[2] ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), 'otalink-compaction-bench-'));
try {
  const store = new LogStore({ dir, compactMinBytes: Number.MAX_SAFE_INTEGER });
  await store.load();
  store.putSession('k', 3600, 0);
  const payload = new Uint8Array(256).fill(97);
  for (let i = 0; i < count; i++) {
    const messageId = store.putMessage({
      topic: `fleet/vin-${i % 1000}/cmd`,
      payload,
      qos: 1,
      retain: false,
      properties: undefined,
      expiresAt: 0,
      origin: 'backend',
    });
    store.enqueue('k', store.newEntryId(), {
      messageId,
      qos: 1,
      retain: false,
      subscriptionIds: undefined,
      sharedFilter: undefined,
    });
    if (i % 1000 === 999) await store.commit();
  }
  await store.commit();
  const before = store.size();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let writing = true;
  let slowestCommit = 0;
  let commits = 0;
  const writer = (async () => {
    while (writing) {
      const started = performance.now();
      store.putSession('w', 3600, Date.now());
      await store.commit();
      slowestCommit = Math.max(slowestCommit, performance.now() - started);
      commits++;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 50));
  // The histogram records nothing when one stall spans its whole window: a 1 ms timer measures the gaps too.
  let lastTick = performance.now();
  let longestGap = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - lastTick);
    lastTick = now;
  }, 1);
  delay.enable();
  const started = performance.now();
  await store.compactNow();
  const compactionMs = performance.now() - started;
  delay.disable();
  clearInterval(probe);
  longestGap = Math.max(longestGap, performance.now() - lastTick);
  writing = false;
  await writer;
  const after = store.size();
  await store.close();
  console.log(
    JSON.stringify({
      messages: count,
      bytesBefore: before.bytes,
      bytesAfter: after.bytes,
      compactionMs: Math.round(compactionMs),
      longestStallMs: Math.round(longestGap),
      eventLoopDelayMaxMs: Math.round(delay.max / 1e6),
      eventLoopDelayP99Ms: Math.round(delay.percentile(99) / 1e6),
      slowestCommitMs: Math.round(slowestCommit),
      commitsDuringCompaction: commits,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
