// `otalink campaign` against a real HTTPS backend (in-memory service): create with every target form, the state
// commands, status, list, and watch drawing progress from the event stream until the campaign finishes.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseWaves, progressLine, renderProgress, runCampaign } from '../src/commands/campaign.js';
import { Capture, io, startTestBackend, type TestBackend } from './cli-support.js';

const VINS = ['WVWZZZ1JZXW000001', 'WVWZZZ1JZXW000002', 'WVWZZZ1JZXW000003'];
let backend: TestBackend | undefined;
let sha256 = '';

before(async () => {
  backend = await startTestBackend();
  if (backend === undefined) return;
  const info = await backend.service.putArtifact(Buffer.from('image'), {
    name: 'fw',
    version: '1.0.0',
    hardwareIds: ['hw-a'],
  });
  sha256 = info.sha256;
});
after(async () => {
  await backend?.close();
});

function api(): string[] {
  assert.ok(backend);
  return ['--api', backend.server.url, '--cafile', backend.caFile];
}

async function run(args: string[], out = io()) {
  const code = await runCampaign(args, { ...out, watchIntervalMs: 0 });
  return { code, stdout: out.stdout.text, stderr: out.stderr.text };
}

/** Creates and starts a campaign over `vins` through the CLI; its id. */
async function startedCampaign(name: string, vins: string[]): Promise<string> {
  const created = await run([
    'create',
    '--name',
    name,
    '--artifact',
    sha256,
    '--vin',
    vins.join(','),
    '--start',
    '--json',
    ...api(),
  ]);
  assert.equal(created.code, 0, created.stderr);
  return JSON.parse(created.stdout).id as string;
}

/** Waits until the fake service has exactly `n` event subscribers for the campaign (1: the watcher is connected). */
async function subscribed(id: string, n = 1, what = 'watch to subscribe'): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((backend?.service.listeners.get(id)?.size ?? 0) !== n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('create', () => {
  test('with --vin (repeated and comma lists), --waves, --max-retries, --abort-*', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const res = await run([
      'create',
      '--name',
      'spring',
      '--artifact',
      sha256,
      '--vin',
      VINS[0] as string,
      '--vin',
      `${VINS[1]},${VINS[2]}`,
      '--waves',
      '10:90,100',
      '--max-retries',
      '2',
      '--abort-failure-percent',
      '20',
      '--abort-min-finished',
      '5',
      '--json',
      ...api(),
    ]);
    assert.equal(res.code, 0, res.stderr);
    const created = JSON.parse(res.stdout) as {
      id: string;
      target: { vins: string[] };
      maxRetries: number;
      rollout: unknown;
    };
    assert.deepEqual(created.target.vins, VINS);
    assert.equal(created.maxRetries, 2);
    assert.deepEqual(created.rollout, {
      kind: 'waves',
      waves: [
        { percent: 10, successThreshold: 90 },
        { percent: 100, successThreshold: 0 },
      ],
    });
  });

  test('with --vins-file and --start; with a selector; from a JSON file', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const file = join(backend.dir, 'vins.txt');
    writeFileSync(file, `${VINS[0]}\n# a comment\n\n${VINS[1]}\r\n`);
    const started = await run([
      'create',
      '--name',
      'f',
      '--artifact',
      sha256,
      '--vins-file',
      file,
      '--start',
      ...api(),
    ]);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^created campaign c\d+ \(RUNNING\)\n$/);

    const selector = await run([
      'create',
      '--name',
      's',
      '--artifact',
      sha256,
      '--model',
      'model-x',
      '--attribute',
      'color=red',
      '--json',
      ...api(),
    ]);
    assert.equal(selector.code, 0, selector.stderr);
    assert.deepEqual(JSON.parse(selector.stdout).target, {
      selector: { model: 'model-x', attributes: { color: 'red' } },
    });

    const body = join(backend.dir, 'campaign.json');
    writeFileSync(
      body,
      JSON.stringify({ name: 'from-file', artifact: sha256, target: { vins: [VINS[2]] }, maxRetries: 1 }),
    );
    const fromFile = await run(['create', '--from', body, '--name', 'overridden', '--json', ...api()]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(JSON.parse(fromFile.stdout).name, 'overridden');
    assert.equal(JSON.parse(fromFile.stdout).maxRetries, 1);
  });

  test('the backend refusing a campaign exits 1 with its code and field', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const res = await run([
      'create',
      '--name',
      'x',
      '--artifact',
      'f'.repeat(64),
      '--vin',
      VINS[0] as string,
      ...api(),
    ]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^otalink campaign: .* \(artifact\) \[OTA_ERR_VALIDATION\]\n$/);
  });
});

test('bad options exit 2 with one line naming the problem', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /sub-command is needed/],
    [['explode'], /unknown sub-command "explode"/],
    [['start'], /start needs a campaign ID/],
    [['status', 'a', 'b'], /unexpected argument "b"/],
    [['create', '--artifact', 'x', '--vin', 'V'], /--name is required/],
    [['create', '--name', 'n', '--vin', 'V'], /--artifact is required/],
    [['create', '--name', 'n', '--artifact', 'x'], /a target is required/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--model', 'm'], /not both/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--waves', '50'], /last wave must be 100/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--waves', '50,20,100'], /must grow/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--max-retries', '-1'], /--max-retries/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--attribute', 'novalue'], /KEY=VALUE/],
    [['create', '--name', 'n', '--artifact', 'x', '--vin', 'V', '--abort-min-finished', '3'], /goes with/],
    [['create', '--from', '/nonexistent.json'], /nonexistent\.json/],
    [['status', 'c1', '--api', 'not a url'], /not a URL/],
    [['status', 'c1', '--cafile', '/nonexistent.pem'], /nonexistent\.pem/],
    [['status', '--frob'], /frob/],
    [['history', 'c1'], /needs a campaign ID and a VIN/],
    [['executions'], /executions needs a campaign ID/],
  ];
  for (const [args, message] of cases) {
    const res = await run(args);
    assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr.split('\n')[0] as string, /^otalink campaign: /);
    assert.match(res.stderr, message, args.join(' '));
  }
});

test('start, pause, resume, cancel, status and list', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const created = await run([
    'create',
    '--name',
    'cmds',
    '--artifact',
    sha256,
    '--vin',
    VINS[0] as string,
    '--json',
    ...api(),
  ]);
  const id = JSON.parse(created.stdout).id as string;
  assert.equal((await run(['start', id, ...api()])).stdout, `campaign ${id}: RUNNING\n`);
  assert.equal((await run(['pause', id, ...api()])).stdout, `campaign ${id}: PAUSED\n`);
  const paused = await run(['pause', id, ...api()]);
  assert.equal(paused.code, 1);
  assert.match(paused.stderr, /\[OTA_ERR_INVALID_STATE\]/);
  assert.equal((await run(['resume', id, ...api()])).stdout, `campaign ${id}: RUNNING\n`);
  const status = await run(['status', id, ...api()]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`^cmds \\(${id}\\): RUNNING, 0/1 released\\n  artifact    ${sha256}\\n`));
  assert.match(status.stdout, /SUCCEEDED {3}░+ +0 +0%/);
  assert.equal(JSON.parse((await run(['status', id, '--json', ...api()])).stdout).state, 'RUNNING');
  const newest = await run(['status', '--json', ...api()]);
  assert.equal(JSON.parse(newest.stdout).id, id, 'status without an ID shows the newest campaign');
  const list = await run(['list', ...api()]);
  assert.match(list.stdout, new RegExp(`^${id}  cmds  RUNNING 0/1 succeeded`, 'm'));
  assert.equal((await run(['cancel', id, ...api()])).stdout, `campaign ${id}: CANCELED\n`);
  const executions = await run(['executions', id, ...api()]);
  assert.equal(executions.code, 0, executions.stderr);
  assert.equal(executions.stdout, `${VINS[0]}  QUEUED\n`);
  assert.equal((await run(['executions', id, '--status', 'SUCCEEDED', ...api()])).stdout, '');
  const badStatus = await run(['executions', id, '--status', 'DONE', ...api()]);
  assert.equal(badStatus.code, 1);
  assert.match(badStatus.stderr, /\(query\.status\) \[OTA_ERR_VALIDATION\]/);
  const history = await run(['history', id, VINS[0] as string, '--json', ...api()]);
  assert.equal(history.code, 0, history.stderr);
  assert.equal(JSON.parse(history.stdout).executions[0].vin, VINS[0]);
  assert.equal((await run(['history', id, 'ZZZZZZZZZZZZZZZZZ', ...api()])).code, 1);
  const unknown = await run(['status', 'nope', ...api()]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /\[OTA_ERR_NOT_FOUND\]/);
});

describe('watch', () => {
  test('line per update on a pipe, exit 0 when the campaign completes', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const service = backend.service;
    const id = await startedCampaign('w', VINS);
    const watching = run(['watch', id, ...api()]);
    await subscribed(id);
    service.report(id, VINS[0] as string, 'IN_PROGRESS');
    service.report(id, VINS[0] as string, 'SUCCEEDED');
    service.report(id, VINS[1] as string, 'FAILED');
    service.report(id, VINS[2] as string, 'SUCCEEDED');
    const res = await watching;
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split('\n');
    assert.equal(lines[0], 'RUNNING 0/3 succeeded, 0 released');
    assert.ok(lines.includes('RUNNING 0/3 succeeded, 3 released: in_progress 1, queued 2'), res.stdout);
    assert.equal(lines.at(-1), 'COMPLETED 2/3 succeeded, 3 released: succeeded 2, failed 1');
    await subscribed(id, 0, 'the watcher to hang up');
  });

  test('redraws in place on a terminal, exit 1 when the campaign is canceled', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const id = await startedCampaign('tty', VINS);
    const out = io(new Capture(true));
    const watching = run(['watch', id, ...api()], out);
    await subscribed(id);
    backend.service.report(id, VINS[0] as string, 'SUCCEEDED');
    assert.equal((await run(['cancel', id, ...api()])).code, 0);
    const res = await watching;
    assert.equal(res.code, 1);
    const ESC = String.fromCharCode(27);
    assert.match(res.stdout, new RegExp(`${ESC}\\[\\d+F${ESC}\\[J`), 'cursor moved back over the previous block');
    const lastBlock = res.stdout.split(`${ESC}[J`).at(-1) as string;
    assert.match(lastBlock, new RegExp(`^tty \\(${id}\\): CANCELED, 3/3 released\\n`));
    assert.match(lastBlock, /SUCCEEDED {3}█+░+ +1 +33%/);
  });

  test('a finished campaign prints once and exits; an unknown one exits 1', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const created = await run([
      'create',
      '--name',
      'done',
      '--artifact',
      sha256,
      '--vin',
      VINS[0] as string,
      '--json',
      ...api(),
    ]);
    const id = JSON.parse(created.stdout).id as string;
    await run(['cancel', id, ...api()]);
    const res = await run(['watch', id, ...api()]);
    assert.equal(res.code, 1);
    assert.equal(res.stdout, 'CANCELED 0/1 succeeded, 0 released\n');
    const unknown = await run(['watch', 'nope', ...api()]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /\[OTA_ERR_NOT_FOUND\]/);
  });

  test('an abort signal stops watching with 130', async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const id = await startedCampaign('sig', [VINS[0] as string]);
    const controller = new AbortController();
    const out = io();
    const watching = runCampaign(['watch', id, ...api()], { ...out, signal: controller.signal });
    await subscribed(id);
    controller.abort();
    assert.equal(await watching, 130);
  });

  test('an abort while the event stream is still being opened stops watching too (once hung forever)', {
    timeout: 20_000,
  }, async (t) => {
    if (backend === undefined) return t.skip('openssl not available to make a test certificate');
    const id = await startedCampaign('early', [VINS[0] as string]);
    for (const delayMs of [0, 1, 5]) {
      const controller = new AbortController();
      const watching = runCampaign(['watch', id, ...api()], { ...io(), signal: controller.signal });
      setTimeout(() => controller.abort(), delayMs);
      assert.equal(await watching, 130, `aborted after ${delayMs} ms`);
    }
    await subscribed(id, 0, 'every watcher to hang up');
  });
});

test('rendering helpers', () => {
  assert.deepEqual(parseWaves('1:100, 10:95 ,100'), [
    { percent: 1, successThreshold: 100 },
    { percent: 10, successThreshold: 95 },
    { percent: 100, successThreshold: 0 },
  ]);
  const counts = {
    QUEUED: 0,
    NOTIFIED: 0,
    IN_PROGRESS: 1,
    SUCCEEDED: 2,
    FAILED: 1,
    REJECTED: 0,
    TIMED_OUT: 0,
    CANCELED: 0,
    ROLLED_BACK: 0,
  };
  const view = { id: 'c1', name: 'n', state: 'RUNNING' as const, targets: 4, released: 4, counts };
  assert.equal(progressLine(view), 'RUNNING 2/4 succeeded, 4 released: succeeded 2, in_progress 1, failed 1');
  const lines = renderProgress(view, 60);
  assert.equal(lines.length, 4);
  assert.equal(lines[1], `  SUCCEEDED   ${'█'.repeat(14)}${'░'.repeat(14)}      2  50%`);
});
