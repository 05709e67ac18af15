// Machine instructions per PUBLISH for our codec, counted by valgrind's callgrind: repeatable whatever else runs
// on the machine, unlike the rates of bench/codec.ts. Each case runs twice (after the same warm-up), once with
// no measured packets and once with N; the difference over N is the cost of one packet, JIT and GC included.
//
//   node --import tsx bench/codec-instructions.ts                       every case (~1 min each)
//   node --import tsx bench/codec-instructions.ts --filter=parse --n=50000
//
// The child is bundled with esbuild first so that valgrind runs plain JavaScript, not the tsx loader.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Decoder, encode, encodeInto, type ProtocolVersion, type QoS } from '@otalink/mqtt/codec';
import { publishPackets } from './lib/codec-fixtures.js';

type Op = 'parse' | 'encodeInto' | 'encode';

interface Case {
  op: Op;
  version: ProtocolVersion;
  qos: QoS;
  payloadBytes: number;
}

/** Runs `warm` packets, then `n`, through the case's operation, 1000 packets per call of a batch function. */
function child(c: Case, warm: number, n: number): void {
  const list = publishPackets({ topics: 'distinct', qos: c.qos, payloadBytes: c.payloadBytes }, 1000);
  let sink = 0;
  let batch: () => void;
  if (c.op === 'parse') {
    const stream = Buffer.concat(list.map((p) => encode(p, c.version)));
    const decoder = new Decoder({ protocolVersion: c.version, role: 'server' });
    batch = () => {
      decoder.push(stream);
      while (decoder.next() !== undefined) sink++;
    };
  } else if (c.op === 'encodeInto') {
    const buf = Buffer.allocUnsafe(64 * 1024);
    const limit = buf.length - (c.payloadBytes + 256);
    let offset = 0;
    batch = () => {
      for (let i = 0; i < list.length; i++) {
        if (offset > limit) offset = 0;
        offset = encodeInto(list[i]!, c.version, buf, offset);
      }
      sink += offset;
    };
  } else {
    batch = () => {
      for (let i = 0; i < list.length; i++) sink += encode(list[i]!, c.version).length;
    };
  }
  for (let done = 0; done < warm; done += list.length) batch();
  for (let done = 0; done < n; done += list.length) batch();
  if (sink < 0) throw new Error('unreachable');
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const op of ['parse', 'encodeInto', 'encode'] as const)
    for (const payloadBytes of [16, 1024])
      for (const version of [4, 5] as const)
        for (const qos of [0, 1] as const) list.push({ op, version, qos, payloadBytes });
  return list;
}

function name(c: Case): string {
  return `${c.op} ${c.version === 5 ? '5.0' : '3.1.1'} QoS${c.qos} ${c.payloadBytes >= 1024 ? '1 KiB' : '16 B'}`;
}

function arg(key: string): string | undefined {
  const hit = process.argv.find((a) => a.startsWith(`--${key}=`));
  return hit?.slice(key.length + 3);
}

/** Total instructions of one valgrind run of the bundled child. */
function instructions(bundle: string, dir: string, index: number, warm: number, n: number): number {
  const out = join(dir, `callgrind.${index}.${n}`);
  const result = spawnSync(
    'valgrind',
    [
      '--tool=callgrind',
      `--callgrind-out-file=${out}`,
      '--smc-check=all-non-file',
      process.execPath,
      // No background compiler or GC threads and no timer-driven heuristics: otherwise their work lands in
      // either run by timing and the counts vary by several percent.
      '--predictable',
      bundle,
      `--child=${index}`,
      `--warm=${warm}`,
      `--n=${n}`,
    ],
    { encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`valgrind failed (${result.status}): ${result.stderr}`);
  const summary = /^summary:\s+(\d+)/m.exec(readFileSync(out, 'utf8'));
  if (summary === null) throw new Error(`no summary in ${out}`);
  return Number(summary[1]);
}

async function main(): Promise<void> {
  const all = cases();
  const childIndex = arg('child');
  const warm = Number(arg('warm') ?? 100_000);
  const n = Number(arg('n') ?? 100_000);
  if (childIndex !== undefined) {
    child(all[Number(childIndex)]!, warm, n);
    return;
  }
  const { buildSync } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'codec-instructions-'));
  try {
    const bundle = join(dir, 'child.mjs');
    buildSync({
      entryPoints: [fileURLToPath(import.meta.url)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: bundle,
      external: ['esbuild'],
      logLevel: 'error',
    });
    const filter = arg('filter');
    process.stdout.write(`instructions per PUBLISH (callgrind, ${warm} packets warm-up, ${n} measured)\n`);
    all.forEach((c, index) => {
      if (filter !== undefined && !name(c).includes(filter)) return;
      const base = instructions(bundle, dir, index, warm, 0);
      const full = instructions(bundle, dir, index, warm, n);
      process.stdout.write(`${name(c).padEnd(28)} ${Math.round((full - base) / n)}\n`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
