// One measurement in this process, printed as one JSON line (run.mjs starts one process per measurement):
//   node bench.mjs put <candidate> <dir> <publishers> <seconds>   durable puts, closed loop, each publisher awaits its ack
//   node bench.mjs delete <candidate> <dir> <count>               fill, then delete-on-ack by 100 concurrent ackers
//   node bench.mjs fill <candidate> <dir> <count>                 fill (batches of 1000), report size on disk
//   node bench.mjs load <candidate> <dir>                         restart: open + rebuild the index, time and memory
//   node bench.mjs half <candidate> <dir>                         delete every other message, then compact; sizes
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { candidates, dirSize } from './stores.mjs';

const [mode, name, dir, arg1, arg2] = process.argv.slice(2);

function payloadOf(seed) {
  // 100 B to 1 KiB, not compressible
  const length = 100 + ((seed * 2654435761) % 925);
  const buf = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i += 4) buf.writeUInt32LE((seed * 7919 + i * 104729) >>> 0, Math.min(i, length - 4));
  return buf;
}

function cpuMs(since) {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
}

function out(result) {
  process.stdout.write(
    `${JSON.stringify({ mode, candidate: name, loadavg: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '), ...result })}\n`,
  );
}

async function fill(store, count, batch) {
  let bytes = 0;
  for (let start = 0; start < count; start += batch) {
    const ops = [];
    for (let id = start; id < Math.min(count, start + batch); id++) {
      const p = payloadOf(id);
      bytes += p.length;
      ops.push(store.put(id, p));
    }
    await Promise.all(ops);
  }
  return bytes;
}

async function main() {
  const open = candidates[name];
  if (!open) throw new Error(`unknown candidate ${name}`);
  if (mode === 'put') {
    fs.rmSync(dir, { recursive: true, force: true });
    const publishers = Number(arg1);
    const seconds = Number(arg2);
    const store = await open(dir);
    let nextId = 0;
    let done = 0;
    const latencies = [];
    const deadline = performance.now() + seconds * 1000;
    // A synchronous commit (the SQLite bindings) blocks every socket for its fsync; this shows for how long.
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const publisher = async () => {
      while (performance.now() < deadline) {
        const id = nextId++;
        const t = performance.now();
        await store.put(id, payloadOf(id));
        latencies.push(performance.now() - t);
        done++;
      }
    };
    await Promise.all(Array.from({ length: publishers }, publisher));
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = cpuMs(cpu0);
    loopDelay.disable();
    const stats = store.stats();
    await store.close();
    latencies.sort((a, b) => a - b);
    out({
      publishers,
      msgsPerSec: Math.round(done / elapsed),
      cpuUsPerMsg: Math.round((cpu * 1000) / done),
      cpuShare: +(cpu / 1000 / elapsed).toFixed(2),
      p50ms: +latencies[Math.floor(latencies.length * 0.5)].toFixed(2),
      p99ms: +latencies[Math.floor(latencies.length * 0.99)].toFixed(2),
      messages: done,
      batches: stats.batches,
      syncs: stats.syncs,
      bytesPerMsg: Math.round(dirSize(dir) / done),
      loopDelayP99ms: +(loopDelay.percentile(99) / 1e6).toFixed(2),
      loopDelayMaxMs: +(loopDelay.max / 1e6).toFixed(2),
    });
  } else if (mode === 'delete') {
    fs.rmSync(dir, { recursive: true, force: true });
    const count = Number(arg1);
    const store = await open(dir);
    await fill(store, count, 1000);
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const acker = async () => {
      while (next < count) await store.delete(next++);
    };
    await Promise.all(Array.from({ length: 100 }, acker));
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = cpuMs(cpu0);
    await store.close();
    out({ deletesPerSec: Math.round(count / elapsed), cpuUsPerDelete: Math.round((cpu * 1000) / count) });
  } else if (mode === 'fill') {
    fs.rmSync(dir, { recursive: true, force: true });
    const count = Number(arg1);
    const store = await open(dir);
    const t0 = performance.now();
    const liveBytes = await fill(store, count, 1000);
    const seconds = (performance.now() - t0) / 1000;
    await store.close();
    out({ count, fillSeconds: +seconds.toFixed(2), liveBytes, diskBytes: dirSize(dir) });
  } else if (mode === 'load') {
    const rss0 = process.memoryUsage().rss;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const store = await open(dir);
    const live = await store.loadIndex();
    const ms = performance.now() - t0;
    const cpu = cpuMs(cpu0);
    const rss = process.memoryUsage().rss;
    await store.close();
    out({
      live,
      openLoadMs: Math.round(ms),
      cpuMs: Math.round(cpu),
      rssMB: Math.round(rss / 2 ** 20),
      rssGrowthMB: Math.round((rss - rss0) / 2 ** 20),
    });
  } else if (mode === 'half') {
    const store = await open(dir);
    const before = dirSize(dir);
    const total = await store.loadIndex();
    const ops = [];
    for (let id = 0; id < total; id += 2) ops.push(store.delete(id));
    await Promise.all(ops);
    const afterDelete = dirSize(dir);
    const t0 = performance.now();
    const copySize = await store.compact();
    const compactMs = Math.round(performance.now() - t0);
    const afterCompact = typeof copySize === 'number' ? copySize : dirSize(dir);
    const live = await store.loadIndex();
    await store.close();
    out({ before, afterDelete, afterCompact, compactMs, live });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

await main();
