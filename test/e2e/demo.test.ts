// `otalink demo` as a child process: 50 vehicles with 10 % installation failures and 10 % rollbacks. It must exit 0
// and its table must show the counts the knobs predict (5 + 5 of 50), which the test computes on its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;

async function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['bin/otalink.js', 'demo', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  // A guard only: the demo has its own --timeout; a hung child is killed so the suite still ends.
  const guard = setTimeout(() => proc.kill('SIGKILL'), 280_000);
  const [code] = (await once(proc, 'close')) as [number | null];
  clearTimeout(guard);
  return { code, stdout, stderr };
}

function row(stdout: string, status: string): { actual: number; predicted: number } | undefined {
  const m = new RegExp(`^\\s+${status}\\s+(\\d+)\\s+(\\d+)`, 'm').exec(stdout);
  return m === null ? undefined : { actual: Number(m[1]), predicted: Number(m[2]) };
}

test('otalink demo --vehicles 50 with 10 % knobs: exit 0, counts as predicted', { timeout: 300_000 }, async () => {
  const { code, stdout, stderr } = await runDemo([
    '--vehicles',
    '50',
    '--install-fail',
    '10',
    '--rollback',
    '10',
    '--timeout',
    '240',
  ]);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  assert.deepEqual(row(stdout, 'SUCCEEDED'), { actual: 40, predicted: 40 });
  assert.deepEqual(row(stdout, 'FAILED'), { actual: 5, predicted: 5 });
  assert.deepEqual(row(stdout, 'ROLLED_BACK'), { actual: 5, predicted: 5 });
  assert.match(stdout, /: COMPLETED$/m);
  assert.match(stdout, /time to finish\s+\d+\.\d s/);
  const messages = /MQTT messages\s+(\d+)/.exec(stdout);
  // Every vehicle at least receives its notify and sends several status reports.
  assert.ok(messages !== null && Number(messages[1]) > 50 * 3, stdout);
  assert.match(stdout, /outcome: as predicted/);
});

test('otalink demo refuses knobs that cannot be met', { timeout: 60_000 }, async () => {
  const { code, stderr } = await runDemo(['--vehicles', '10', '--install-fail', '70', '--rollback', '40']);
  assert.equal(code, 2);
  assert.match(stderr, /more than 100 %/);
});
