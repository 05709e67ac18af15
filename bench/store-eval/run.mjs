// Runs every measurement in its own process, interleaving candidates so that load on the shared machine hits
// them alike, and prints one JSON line per measurement (save them: node run.mjs > results.jsonl).
//   node run.mjs [repeats=3] [seconds=2]
// The fsync count comes from a separate pass under `strace -f -c` (tracing slows syscalls, so its timings are
// not used); skipped when strace is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const repeats = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 2);
const here = path.dirname(new URL(import.meta.url).pathname);
const work = path.join(here, 'data');
const bench = path.join(here, 'bench.mjs');
const putCandidates = ['log', 'log-noprealloc', 'log-2ms', 'sqlite-full', 'sqlite-normal', 'lmdb', 'sqlite-wasm'];
const candidates = ['log', 'sqlite-full', 'sqlite-normal', 'lmdb', 'sqlite-wasm'];
const publisherCounts = [1, 10, 100, 1000];

function node(args, env = {}) {
  const out = execFileSync(process.execPath, [bench, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  process.stdout.write(out);
  return out;
}

for (let r = 0; r < repeats; r++) {
  for (const publishers of publisherCounts) {
    for (const c of putCandidates) node(['put', c, path.join(work, c), String(publishers), String(seconds)]);
  }
}

const hasStrace = spawnSync('strace', ['-V']).status === 0;
if (hasStrace) {
  for (const publishers of publisherCounts) {
    for (const c of putCandidates) {
      const traceFile = path.join(work, `strace-${c}-${publishers}.txt`);
      const out = execFileSync(
        'strace',
        [
          '-f',
          '-c',
          '-e',
          'trace=fsync,fdatasync,msync,sync_file_range',
          '-o',
          traceFile,
          process.execPath,
          bench,
          'put',
          c,
          path.join(work, c),
          String(publishers),
          String(seconds),
        ],
        { encoding: 'utf8' },
      );
      const result = JSON.parse(out);
      const syscalls = {};
      for (const line of fs.readFileSync(traceFile, 'utf8').split('\n')) {
        const m = line.trim().match(/^[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/);
        if (m && m[2] !== 'total') syscalls[m[2]] = Number(m[1]);
      }
      const syncs = Object.values(syscalls).reduce((a, b) => a + b, 0);
      process.stdout.write(
        `${JSON.stringify({ mode: 'syncs', candidate: c, publishers, messages: result.messages, syscalls, syncsPerMsg: +(syncs / result.messages).toFixed(4), msgsPerSync: +(result.messages / syncs).toFixed(1) })}\n`,
      );
    }
  }
}

for (let r = 0; r < repeats; r++) {
  for (const c of candidates) node(['delete', c, path.join(work, c), '20000']);
}

for (let r = 0; r < repeats; r++) {
  for (const c of candidates) {
    const dir = path.join(work, `${c}-100k`);
    node(['fill', c, dir, '100000']);
    node(['load', c, dir]);
    if (r === 0) {
      node(['half', c, dir], { STORE_AUTOCOMPACT: '0' });
      node(['load', c, dir]);
    }
  }
}
fs.rmSync(work, { recursive: true, force: true });
