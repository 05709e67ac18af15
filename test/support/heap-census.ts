// Test support: what a process keeps on its heap between two moments, for leak tests. A test takes a snapshot
// after its warm-up and another after the work under test, then compares them: objects by kind (constructor or
// type) and their bytes, after a full GC. Compiled code is left out, since V8 keeps adding to it and dropping it
// for a while (a few hundred KB either way between two rounds of the same work), and so are the bytes of the
// VOLATILE kinds. What is left came out level to within a few hundred bytes over hundreds of rounds of broker
// and client churn, so one object kept per round, or a Map or array growing with them, shows.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Kinds whose bytes swing by up to ~250 KB between two snapshots of the same state: V8's unnamed internal arrays
 * (its string table, number-to-string cache), heap numbers, and array buffers' backing stores (Node's Buffer pool
 * slabs and read buffers, filled and freed whatever the clients do). Their counts are still compared.
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
 * Writes a heap snapshot of this process into `dir` (V8 makes a full GC first) and returns its path. Take both
 * snapshots before comparing them: the first one's census, alive during the second, would be counted in it.
 */
export function heapSnapshot(dir: string, name: string): string {
  gc();
  return writeHeapSnapshot(join(dir, `${name}.heapsnapshot`));
}

interface HeapGrowth {
  /** Kinds with more than `maxNewObjects` more objects in the second snapshot. */
  grown: Array<{ kind: string; more: number }>;
  /** Bytes the second snapshot holds beyond the first (without code and VOLATILE kinds). */
  bytes: number;
  /** The five kinds whose bytes grew most, for a failure message: `object Session +4096 B`, … */
  largest: string[];
}

/**
 * Writes the second snapshot into `dir` and asserts that, against `first`, no kind of object grew by more than one
 * per ten of the `rounds` of `what` run between them, and the heap by no more than 8 bytes a round.
 */
export function assertHeapLevel(first: string, dir: string, rounds: number, what: string): void {
  const growth = heapGrowth(first, heapSnapshot(dir, 'after'), rounds / 10);
  assert.deepEqual(growth.grown, [], `kinds of objects that grew over ${rounds} ${what}`);
  assert.ok(
    growth.bytes <= 8 * rounds,
    `the heap grew by ${growth.bytes} B over ${rounds} ${what}: ${growth.largest.join(', ')}`,
  );
}

/** Compares two snapshots written by heapSnapshot. */
function heapGrowth(before: string, after: string, maxNewObjects: number): HeapGrowth {
  const first = census(before);
  const second = census(after);
  const grown = [...second.counts]
    .map(([kind, count]) => ({ kind, more: count - (first.counts.get(kind) ?? 0) }))
    .filter(({ more }) => more > maxNewObjects);
  const largest = [...second.sizes]
    .map(([kind, size]) => ({ kind, more: size - (first.sizes.get(kind) ?? 0) }))
    .sort((x, y) => y.more - x.more)
    .slice(0, 5)
    .map(({ kind, more }) => `${kind} +${more} B`);
  return { grown, bytes: second.bytes - first.bytes, largest };
}

function census(file: string): Census {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = parsed.snapshot.meta.node_fields;
  const typeNames = parsed.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
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
