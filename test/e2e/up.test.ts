// `otalink up` as a user runs it: a child process with its own data directory and free ports, ready when it
// prints its summary; the API answers over HTTPS (trusting the dev CA it created), the dashboard is served, the 100
// simulated vehicles are registered and online, the sample campaign updates all of them at its growing rate, and
// SIGTERM brings it down with exit code 0. A second run on the same directory reuses the CA and the vehicles'
// registrations and does not start the campaign again. The API wants the admin token `up` prints (and keeps in
// <home>/backend/admin-token, 0600), which `otalink campaign` finds by itself.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { exitedWithOutput } from '../support/child-exit.js';

const root = new URL('../..', import.meta.url).pathname;
const READY = 'Ctrl-C stops everything.';
/** The admin token `up` printed, sent by getJson. */
let bearer: string | undefined;

async function get(
  url: string,
  ca: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 15_000, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type'] ?? ''),
          text: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

async function getJson(url: string, ca: string): Promise<{ status: number; body: unknown }> {
  const response = await get(url, ca, bearer === undefined ? {} : { authorization: `Bearer ${bearer}` });
  return { status: response.status, body: JSON.parse(response.text) };
}

interface RunningUp {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  api: string;
  dashboard: string;
  /** The loopback plain-HTTP listener, printed first: what a browser on this machine opens without a warning. */
  plainDashboard: string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
let home: string | undefined;
after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  if (home !== undefined) await rm(home, { recursive: true, force: true });
});

async function startUp(dataDir: string): Promise<RunningUp> {
  const proc = spawn(
    process.execPath,
    ['bin/otalink.js', 'up', '--http-port', '0', '--dashboard-port', '0', '--mqtt-port', '0'],
    {
      cwd: root,
      env: { ...process.env, OTALINK_HOME: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(proc);
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
  const urls = /Dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/)\s+\(loopback only; over HTTPS: (https:\/\/\S+)\)/.exec(
    stdout,
  );
  const [, plainDashboard, dashboard] = urls ?? [];
  assert.ok(api !== undefined && dashboard !== undefined && plainDashboard !== undefined, stdout);
  return {
    proc,
    stdout: () => stdout,
    stderr: () => stderr,
    api,
    dashboard,
    plainDashboard,
    async stop() {
      proc.kill('SIGTERM');
      // Its output read to the end: the 'stopped' line is checked next, and 'exit' can come before it is read.
      return exitedWithOutput(proc);
    },
  };
}

interface CampaignBody {
  state: string;
  counts: Record<string, number>;
  rollout: { kind: string };
}

/** Polls `probe` every 250 ms until it returns a value; fails after `timeoutMs`. */
async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function vehicles(api: string, ca: string): Promise<Array<{ vin: string; online: boolean; model: string }>> {
  const response = await getJson(`${api}/vehicles?limit=1000`, ca);
  assert.equal(response.status, 200);
  return (response.body as { items: Array<{ vin: string; online: boolean; model: string }> }).items;
}

test('otalink up: HTTPS API and dashboard, 100 vehicles online, SIGTERM exits 0; a restart reuses the PKI', {
  timeout: 400_000,
}, async () => {
  home = await mkdtemp(join(tmpdir(), 'otalink-up-'));
  const first = await startUp(home);
  assert.match(first.stdout(), /Fleet\s+100 of 100 simulated vehicles online/);
  assert.match(first.stdout(), /mqtts:\/\/127\.0\.0\.1:\d+/);
  const ca = await readFile(join(home, 'pki', 'ca.pem'), 'utf8');

  // The bootstrap admin token: printed, in a 0600 file, and needed: the API refuses requests without it.
  const tokenFile = join(home, 'backend', 'admin-token');
  bearer = /API token\s+(otk_\S+)/.exec(first.stdout())?.[1];
  assert.ok(bearer !== undefined, first.stdout());
  assert.equal((await readFile(tokenFile, 'utf8')).trim(), bearer);
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  assert.ok(!first.stderr().includes(bearer.split('.')[1] as string), 'the token is not in the log');
  const anonymous = await get(`${first.api}/vehicles`, ca);
  assert.equal(anonymous.status, 401);
  assert.equal(JSON.parse(anonymous.text).error.code, 'OTA_ERR_UNAUTHORIZED');

  const health = await getJson(new URL('/healthz', first.dashboard).toString(), ca);
  assert.deepEqual(health, { status: 200, body: { status: 'ok' } });
  const page = await get(first.dashboard, ca);
  assert.equal(page.status, 200);
  assert.match(page.type, /text\/html/);
  const plainPage = await fetch(first.plainDashboard);
  assert.equal(plainPage.status, 200);
  assert.equal(await plainPage.text(), page.text, 'the same dashboard over plain HTTP on loopback');

  const fleet = await vehicles(first.api, ca);
  assert.equal(fleet.length, 100);
  assert.ok(fleet.some((v) => v.vin === 'SIM-000100'));
  // The sample campaign is already under way: a vehicle restarting for its activation says it is offline for that
  // moment (longer on a busy machine: once, in a full test run, 92 of 100 were online here), so the fleet is awaited
  // back online rather than read once.
  await until(async () => {
    const online = (await vehicles(first.api, ca)).filter((v) => v.online).length;
    return online === 100 ? true : undefined;
  }, 60_000);

  const artifacts = await getJson(`${first.api}/artifacts`, ca);
  assert.equal((artifacts.body as { items: unknown[] }).items.length, 1, 'the sample artifact is uploaded');

  // The sample campaign starts by itself and carries the whole fleet to the new version, at a growing rate.
  const campaignId = /Campaign\s+(\S+): .* to 100 vehicles, 10\/min/.exec(first.stdout())?.[1];
  assert.ok(campaignId !== undefined, first.stdout());
  const finished = await until(async () => {
    const campaign = (await getJson(`${first.api}/campaigns/${campaignId}`, ca)).body as CampaignBody;
    return campaign.state === 'COMPLETED' ? campaign : undefined;
  }, 180_000);
  assert.equal(finished.counts.SUCCEEDED, 100);
  assert.equal(finished.rollout.kind, 'exponential');
  await until(async () => (first.stdout().includes(`campaign ${campaignId}: COMPLETED`) ? true : undefined), 10_000);

  // `npx otalink campaign status` with nothing but the API address (this test's ports are not the default): the
  // CLI reads the token file and trusts the dev CA under OTALINK_HOME, and shows the newest campaign.
  const status = spawn(
    process.execPath,
    ['bin/otalink.js', 'campaign', 'status', '--api', first.api.replace(/\/api\/v1$/, '')],
    { cwd: root, env: { ...process.env, OTALINK_HOME: home, OTALINK_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let statusOut = '';
  status.stdout?.on('data', (c: Buffer) => {
    statusOut += c.toString();
  });
  status.stderr?.on('data', (c: Buffer) => {
    statusOut += c.toString();
  });
  const { code: statusCode } = await exitedWithOutput(status);
  assert.equal(statusCode, 0, statusOut);
  assert.match(statusOut, new RegExp(`\\(${campaignId}\\): COMPLETED`));
  assert.match(first.stdout(), /OTALINK_HOME=\S+ npx otalink campaign watch --api https:\/\/127\.0\.0\.1:\d+ /);
  assert.ok(existsSync(join(home, 'broker')), 'the broker keeps its durable store in the data directory');

  const stopped = await first.stop();
  assert.deepEqual(stopped, { code: 0, signal: null }, first.stderr());
  assert.match(first.stdout(), /otalink up: stopped/);

  const second = await startUp(home);
  assert.equal(await readFile(join(home, 'pki', 'ca.pem'), 'utf8'), ca, 'the CA is reused');
  assert.equal(/API token\s+(otk_\S+)/.exec(second.stdout())?.[1], bearer, 'the same admin token after a restart');
  const again = await vehicles(second.api, ca);
  assert.equal(again.length, 100);
  assert.equal(again.filter((v) => v.online).length, 100);
  const artifactsAgain = await getJson(`${second.api}/artifacts`, ca);
  assert.equal((artifactsAgain.body as { items: unknown[] }).items.length, 1, 'same sample bytes, one artifact');
  assert.match(second.stdout(), new RegExp(`Campaign\\s+${campaignId}: from an earlier run, COMPLETED`));
  const campaigns = (await getJson(`${second.api}/campaigns`, ca)).body as { items: unknown[] };
  assert.equal(campaigns.items.length, 1, 'the sample campaign is not started twice');
  assert.deepEqual(await second.stop(), { code: 0, signal: null }, second.stderr());
});
