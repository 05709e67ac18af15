// Medians of repeated measurements as Markdown tables: node summarize.mjs results.jsonl [crash.jsonl] [fulldisk.jsonl]
import fs from 'node:fs';

const rows = process.argv
  .slice(2)
  .flatMap((file) => fs.readFileSync(file, 'utf8').split('\n'))
  .filter((line) => line.startsWith('{'))
  .map((line) => JSON.parse(line));

function median(values) {
  const sorted = values.filter((v) => typeof v === 'number').sort((a, b) => a - b);
  if (sorted.length === 0) return '';
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : +((sorted[mid - 1] + sorted[mid]) / 2).toFixed(2);
}

function range(values) {
  const nums = values.filter((v) => typeof v === 'number');
  return nums.length ? `${Math.min(...nums)}–${Math.max(...nums)}` : '';
}

function table(header, lines) {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const line of lines) console.log(`| ${line.join(' | ')} |`);
  console.log();
}

const candidatesOf = (mode) => [...new Set(rows.filter((r) => r.mode === mode).map((r) => r.candidate))];
const loads = rows.filter((r) => r.loadavg).map((r) => Number(r.loadavg.split(' ')[0]));
console.log(`load average (1 min) during the runs: ${range(loads)}, median ${median(loads)}\n`);

const puts = rows.filter((r) => r.mode === 'put');
const publisherCounts = [...new Set(puts.map((r) => r.publishers))].sort((a, b) => a - b);
const syncRows = rows.filter((r) => r.mode === 'syncs');
const putLines = [];
for (const c of candidatesOf('put')) {
  for (const p of publisherCounts) {
    const sel = puts.filter((r) => r.candidate === c && r.publishers === p);
    const sync = syncRows.find((r) => r.candidate === c && r.publishers === p);
    putLines.push([
      c,
      p,
      median(sel.map((r) => r.msgsPerSec)),
      range(sel.map((r) => r.msgsPerSec)),
      median(sel.map((r) => r.cpuUsPerMsg)),
      median(sel.map((r) => r.cpuShare)),
      median(sel.map((r) => r.p50ms)),
      median(sel.map((r) => r.p99ms)),
      sync ? sync.msgsPerSync : '',
      sync
        ? Object.entries(sync.syscalls)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')
        : '',
    ]);
  }
}
table(
  [
    'candidate',
    'publishers',
    'durable msgs/s (median)',
    'range',
    'CPU µs/msg',
    'CPU cores used',
    'p50 ms',
    'p99 ms',
    'msgs per sync',
    'sync syscalls (strace pass)',
  ],
  putLines,
);

const loopRows = puts.filter((r) => typeof r.loopDelayP99ms === 'number');
if (loopRows.length) {
  const lines = [];
  for (const c of [...new Set(loopRows.map((r) => r.candidate))]) {
    for (const p of publisherCounts) {
      const sel = loopRows.filter((r) => r.candidate === c && r.publishers === p);
      if (sel.length === 0) continue;
      lines.push([
        c,
        p,
        median(sel.map((r) => r.msgsPerSec)),
        median(sel.map((r) => r.cpuUsPerMsg)),
        median(sel.map((r) => r.loopDelayP99ms)),
        median(sel.map((r) => r.loopDelayMaxMs)),
      ]);
    }
  }
  table(
    ['candidate', 'publishers', 'durable msgs/s', 'CPU µs/msg', 'event-loop delay p99 ms', 'event-loop delay max ms'],
    lines,
  );
}

const deletes = rows.filter((r) => r.mode === 'delete');
table(
  ['candidate', 'durable deletes/s (100 ackers)', 'range', 'CPU µs/delete'],
  candidatesOf('delete').map((c) => {
    const sel = deletes.filter((r) => r.candidate === c);
    return [
      c,
      median(sel.map((r) => r.deletesPerSec)),
      range(sel.map((r) => r.deletesPerSec)),
      median(sel.map((r) => r.cpuUsPerDelete)),
    ];
  }),
);

const fills = rows.filter((r) => r.mode === 'fill');
const loadsRows = rows.filter((r) => r.mode === 'load' && r.live === 100000);
const halves = rows.filter((r) => r.mode === 'half');
const halfLoads = rows.filter((r) => r.mode === 'load' && r.live === 50000);
table(
  [
    'candidate',
    'restart 100 k: open + index ms',
    'range',
    'CPU ms',
    'RSS after MB',
    'RSS growth MB',
    'disk MB (100 k, 56.2 MB payload)',
    'amplification',
    'after deleting half MB',
    'after compaction MB',
    'compaction ms',
    'restart 50 k ms',
  ],
  candidatesOf('fill').map((c) => {
    const f = fills.filter((r) => r.candidate === c);
    const l = loadsRows.filter((r) => r.candidate === c);
    const h = halves.find((r) => r.candidate === c);
    const hl = halfLoads.find((r) => r.candidate === c);
    const disk = median(f.map((r) => r.diskBytes));
    const mb = (n) => (typeof n === 'number' ? (n / 1e6).toFixed(1) : '');
    return [
      c,
      median(l.map((r) => r.openLoadMs)),
      range(l.map((r) => r.openLoadMs)),
      median(l.map((r) => r.cpuMs)),
      median(l.map((r) => r.rssMB)),
      median(l.map((r) => r.rssGrowthMB)),
      mb(disk),
      typeof disk === 'number' ? (disk / f[0].liveBytes).toFixed(2) : '',
      mb(h?.afterDelete),
      mb(h?.afterCompact),
      h?.compactMs ?? '',
      hl?.openLoadMs ?? '',
    ];
  }),
);

const crashes = rows.filter((r) => r.mode === 'crash');
if (crashes.length) {
  table(
    ['candidate', 'rounds', 'acknowledged puts', 'lost', 'acked deletes undone', 'reopen errors', 'verdict'],
    crashes.map((r) => [
      r.candidate,
      r.rounds,
      r.ackedTotal,
      r.lost,
      r.resurrected,
      `${r.reopenErrors}${r.results.find((x) => x.reopenError) ? ` (${r.results.find((x) => x.reopenError).reopenError})` : ''}`,
      r.ok ? 'pass' : 'FAIL',
    ]),
  );
}
for (const r of rows.filter((x) => x.mode === 'torn'))
  console.log(`torn-tail: ${r.cuts} cuts/corruptions, ${r.failures} failures\n`);
const full = rows.filter((r) => r.mode === 'fulldisk');
if (full.length) {
  table(
    ['candidate', 'acked before error', 'error', 'delete after full', 'write after delete', 'acked lost on reopen'],
    full.map((r) => [
      r.candidate,
      r.ackedBeforeError,
      r.error,
      r.deleteAfterFull,
      r.writeAfterDelete,
      r.reopenError ?? r.reopenedMissingAcked,
    ]),
  );
}
