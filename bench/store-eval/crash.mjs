// Crash rounds: a child writes with 50 concurrent publishers and prints "a <id>" after each durable put and
// "r <id>" before and "d <id>" after each durable delete; the parent SIGKILLs it at a random moment, reopens the store and checks
// that every acknowledged put that was not deleted is there, and no acknowledged delete came back.
//   node crash.mjs rounds <candidate> <dir> <rounds>
//   node crash.mjs torn <dir> <cuts>          (log only: truncate / corrupt the tail at random offsets, reopen)
// A SIGKILL tests the process dying, not the machine: the page cache survives it, so this proves the write
// ordering and the recovery code, not the fsync policy (that needs a power cut, which cannot be made here).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LogStore } from './log-store.mjs';
import { candidates } from './stores.mjs';

const [mode, ...args] = process.argv.slice(2);

function payloadOf(id) {
  return Buffer.alloc(100 + (id % 900), id % 251);
}

async function writer(name, dir, base) {
  const store = await candidates[name](dir);
  let next = base;
  const publisher = async () => {
    for (;;) {
      const id = next++;
      await store.put(id, payloadOf(id));
      process.stdout.write(`a ${id}\n`);
      if (id % 10 === 0) {
        // Announced before it is issued: once asked for, the delete may land even if its ack is never printed.
        process.stdout.write(`r ${id}\n`);
        await store.delete(id);
        process.stdout.write(`d ${id}\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: 50 }, publisher));
}

async function rounds(name, dir, count) {
  fs.rmSync(dir, { recursive: true, force: true });
  const acked = new Set();
  const deleted = new Set();
  const deleteRequested = new Set();
  const results = [];
  for (let round = 0; round < count; round++) {
    const child = spawn(process.execPath, [process.argv[1], 'writer', name, dir, String(round * 1_000_000)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let pending = '';
    let firstAck;
    const started = new Promise((resolve) => {
      firstAck = resolve;
    });
    child.stdout.on('data', (chunk) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const [kind, id] = line.split(' ');
        if (kind === 'a') acked.add(Number(id));
        else if (kind === 'd') deleted.add(Number(id));
        else if (kind === 'r') deleteRequested.add(Number(id));
      }
      firstAck();
    });
    const exited = new Promise((resolve) => child.on('close', resolve));
    await started;
    const delay = 100 + Math.floor(Math.random() * 1400);
    await new Promise((r) => setTimeout(r, delay));
    child.kill('SIGKILL');
    await exited;
    const t0 = performance.now();
    let store;
    try {
      store = await candidates[name](dir);
    } catch (err) {
      results.push({ round, killAfterMs: delay, acked: acked.size, reopenError: String(err.message) });
      break;
    }
    const reopenMs = Math.round(performance.now() - t0);
    let missing = 0;
    let resurrected = 0;
    for (const id of acked) if (!deleteRequested.has(id) && !store.has(id)) missing++;
    for (const id of deleted) if (store.has(id)) resurrected++;
    const stats = store.stats();
    await store.close();
    results.push({
      round,
      killAfterMs: delay,
      acked: acked.size,
      deleted: deleted.size,
      missing,
      resurrected,
      reopenMs,
      truncatedBytes: stats.truncatedBytes,
    });
  }
  const lost = results.reduce((n, r) => n + (r.missing ?? 0), 0);
  const back = results.reduce((n, r) => n + (r.resurrected ?? 0), 0);
  const reopenErrors = results.filter((r) => r.reopenError).length;
  const ok = lost === 0 && back === 0 && reopenErrors === 0 && results.length === count;
  const summary = {
    mode: 'crash',
    candidate: name,
    rounds: results.length,
    ackedTotal: acked.size,
    lost,
    resurrected: back,
    reopenErrors,
    ok,
  };
  process.stdout.write(`${JSON.stringify({ ...summary, results })}\n`);
}

async function torn(dir, cuts) {
  fs.rmSync(dir, { recursive: true, force: true });
  const source = path.join(dir, 'src');
  const store = new LogStore({ dir: source, preallocateBytes: 0 }).open();
  await Promise.all(Array.from({ length: 2000 }, (_, id) => store.put(String(id), payloadOf(id))));
  await store.close();
  const full = fs.readFileSync(path.join(source, 'store.log'));
  // Record boundaries, to know how many whole records precede a cut.
  const ends = [];
  for (let offset = 0; offset < full.length; ) {
    offset += 8 + full.readUInt32LE(offset);
    ends.push(offset);
  }
  let failures = 0;
  for (let i = 0; i < cuts; i++) {
    const cut = Math.floor(Math.random() * full.length);
    const corrupt = i % 2 === 1;
    const copy = Buffer.from(full.subarray(0, corrupt ? full.length : cut));
    if (corrupt) copy[cut] ^= 0xff;
    const target = path.join(dir, `cut${i}`);
    fs.mkdirSync(target, { recursive: true });
    fs.writeFileSync(path.join(target, 'store.log'), copy);
    const reopened = new LogStore({ dir: target }).open();
    const whole = ends.filter((e) => e <= cut).length;
    // A cut keeps every whole record before it; a flipped byte loses its record and everything after it.
    const expected = whole;
    const okCount = reopened.index.size === expected;
    let okContent = true;
    for (let id = 0; id < expected; id++) {
      const p = reopened.read(String(id));
      if (!p?.equals(payloadOf(id))) okContent = false;
    }
    // Appending after recovery must work and survive another reopen.
    await reopened.put('after', Buffer.from('x'));
    await reopened.close();
    const again = new LogStore({ dir: target }).open();
    const okAppend = again.index.has('after') && again.index.size === expected + 1;
    await again.close();
    if (!(okCount && okContent && okAppend)) failures++;
  }
  process.stdout.write(`${JSON.stringify({ mode: 'torn', candidate: 'log', cuts, failures, ok: failures === 0 })}\n`);
}

if (mode === 'writer') await writer(args[0], args[1], Number(args[2]));
else if (mode === 'rounds') await rounds(args[0], args[1], Number(args[2]));
else if (mode === 'torn') await torn(args[0], Number(args[1]));
else throw new Error(`unknown mode ${mode}`);
