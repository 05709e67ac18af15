// bench:ota with its broker child process killed while the fleet is up: the benchmark must stop with a message
// that names the broker, not wait out its 180 s / 300 s campaign limits (it hung before).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { exitedWithOutput } from '../support/child-exit.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The bench's child processes: pid and command line. */
function children(pid: number): Array<{ pid: number; args: string }> {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((line) => /^\s*(\d+)\s+(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => ({ pid: Number(m[1]), args: m[2] as string }));
  } catch {
    return []; // ps exits 1 when there is no child
  }
}

test('bench:ota fails with a clear message when the broker process dies', { timeout: 120_000 }, async () => {
  const bench = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'bench/ota.ts'), '--vehicles', '20', '--fleet', 'agent', '--shards', '1'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  bench.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  bench.stdout.resume();
  const exited = exitedWithOutput(bench);
  try {
    // Killed once the campaign starts: the bench then waits on the fleet and the campaign (it hung there).
    for (let i = 0; i < 1200 && !stderr.includes('campaign starts') && bench.exitCode === null; i++) await delay(100);
    assert.match(stderr, /campaign starts/);
    const broker = children(bench.pid as number).find((k) => k.args.includes('broker-process.ts'));
    assert.ok(broker, `the bench runs a broker process; stderr: ${stderr}`);
    process.kill(broker.pid, 'SIGKILL');
    const timer = setTimeout(() => bench.kill('SIGKILL'), 60_000);
    const { code, signal } = await exited;
    clearTimeout(timer);
    assert.equal(signal, null, `the bench hung after the broker died and was killed; stderr: ${stderr}`);
    assert.notEqual(code, 0);
    assert.match(stderr, /broker process exited/);
  } finally {
    if (bench.exitCode === null && bench.signalCode === null) {
      bench.kill('SIGKILL');
      await exited;
    }
  }
});
