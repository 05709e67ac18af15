// `otalink up` as a user runs it: a child process with its own data directory and free ports, ready when it
// prints its summary; the API answers over HTTPS (trusting the dev CA it created), the 100 simulated vehicles are
// registered and online, and SIGTERM brings it down with exit code 0.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;
const READY = 'Ctrl-C stops everything.';

async function getJson(url: string, ca: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

let child: ChildProcess | undefined;
let home: string | undefined;
after(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  if (home !== undefined) await rm(home, { recursive: true, force: true });
});

test('otalink up: HTTPS API healthy, 100 vehicles online, SIGTERM exits 0', { timeout: 240_000 }, async () => {
  home = await mkdtemp(join(tmpdir(), 'otalink-up-'));
  const proc = spawn(process.execPath, ['bin/otalink.js', 'up', '--http-port', '0', '--mqtt-port', '0'], {
    cwd: root,
    env: { ...process.env, OTALINK_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  await new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`not ready in time:\n${stdout}\n${stderr}`)), 180_000);
    const check = () => {
      if (stdout.includes(READY)) {
        clearTimeout(guard);
        proc.stdout?.off('data', check);
        resolve();
      }
    };
    proc.stdout?.on('data', check);
    void exited.then(([code]) => {
      clearTimeout(guard);
      reject(new Error(`exited early with ${code}:\n${stdout}\n${stderr}`));
    });
  });

  const api = /API\s+(https:\/\/\S+\/api\/v1)/.exec(stdout)?.[1];
  const dashboard = /Dashboard\s+(https:\/\/\S+)/.exec(stdout)?.[1];
  assert.ok(api !== undefined && dashboard !== undefined, stdout);
  assert.match(stdout, /Fleet\s+100 of 100 simulated vehicles online/);
  assert.match(stdout, /mqtts:\/\/127\.0\.0\.1:\d+/);
  const ca = await readFile(join(home, 'pki', 'ca.pem'), 'utf8');

  const health = await getJson(new URL('/healthz', dashboard).toString(), ca);
  assert.deepEqual(health, { status: 200, body: { status: 'ok' } });

  const vehicles = await getJson(`${api}/vehicles?limit=1000`, ca);
  assert.equal(vehicles.status, 200);
  const items = (vehicles.body as { items: Array<{ vin: string; online: boolean }> }).items;
  assert.equal(items.length, 100);
  assert.equal(items.filter((v) => v.online).length, 100);
  assert.ok(items.some((v) => v.vin === 'SIM-000100'));

  const artifacts = await getJson(`${api}/artifacts`, ca);
  assert.equal((artifacts.body as { items: unknown[] }).items.length, 1, 'the sample artifact is uploaded');

  proc.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /otalink up: stopped/);
});
