// `otalink token` and how every API command finds its token: --token, OTALINK_TOKEN, --token-file, else the local
// backend's admin-token file (loopback APIs only); the 401/403 refusals with their hints.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tokenFor } from '../src/commands/api-client.js';
import { runCampaign } from '../src/commands/campaign.js';
import { runToken } from '../src/commands/token.js';
import { io, startTestBackend, type TestBackend } from './cli-support.js';

let backend: TestBackend | undefined;

before(async () => {
  backend = await startTestBackend();
});

after(async () => {
  await backend?.close();
});

function api(b: TestBackend): string[] {
  return ['--api', b.server.url, '--cafile', b.caFile];
}

test('the local admin-token file is read by default: nothing to configure after otalink up', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const out = io();
  assert.equal(await runToken(['list', ...api(backend)], out), 0, out.stderr.text);
  assert.match(out.stdout.text, /^ID {16}ROLE/);
  assert.match(out.stdout.text, /admin +\S+ +- +- +test admin/);
  const campaigns = io();
  assert.equal(await runCampaign(['list', ...api(backend)], campaigns), 0, campaigns.stderr.text);
});

test('a loopback https API trusts the local dev CA ($OTALINK_HOME/pki/ca.pem) without --cafile', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const home = mkdtempSync(join(tmpdir(), 'otalink-home-'));
  mkdirSync(join(home, 'backend'));
  writeFileSync(join(home, 'backend', 'admin-token'), `${backend.token}\n`, { mode: 0o600 });
  const untrusted = io();
  untrusted.env = { OTALINK_HOME: home };
  assert.equal(await runCampaign(['list', '--api', backend.server.url], untrusted), 1);
  assert.match(untrusted.stderr.text, /certificate/);
  mkdirSync(join(home, 'pki'));
  writeFileSync(join(home, 'pki', 'ca.pem'), readFileSync(backend.caFile));
  const trusted = io();
  trusted.env = { OTALINK_HOME: home };
  assert.equal(await runCampaign(['list', '--api', backend.server.url], trusted), 0, trusted.stderr.text);
});

test('no token anywhere: exit 1 with OTA_ERR_UNAUTHORIZED and how to give one', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const out = io();
  out.env.OTALINK_HOME = mkdtempSync(join(tmpdir(), 'otalink-empty-home-'));
  assert.equal(await runCampaign(['list', ...api(backend)], out), 1);
  assert.match(out.stderr.text, /OTA_ERR_UNAUTHORIZED/);
  assert.match(out.stderr.text, /--token-file FILE, set OTALINK_TOKEN/);
  const bad = io();
  bad.env.OTALINK_TOKEN = 'otk_0000000000000000.wrong';
  assert.equal(await runCampaign(['list', ...api(backend)], bad), 1);
  assert.match(bad.stderr.text, /the API token from OTALINK_TOKEN was refused\)? ?\[OTA_ERR_UNAUTHORIZED\]/);
});

test('token create, use as OTALINK_TOKEN / --token / --token-file, 403 for the role, revoke', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const created = io();
  assert.equal(
    await runToken(['create', '--name', 'dashboard wall', '--role', 'viewer', ...api(backend)], created),
    0,
    created.stderr.text,
  );
  const token = created.stdout.text.trim();
  assert.match(token, /^otk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  assert.match(created.stderr.text, /shown once/);
  const id = token.slice(4, 20);

  const empty = mkdtempSync(join(tmpdir(), 'otalink-empty-home-'));
  const viaEnv = io();
  viaEnv.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
  assert.equal(await runCampaign(['list', ...api(backend)], viaEnv), 0, viaEnv.stderr.text);
  const viaFlag = io();
  viaFlag.env = { OTALINK_HOME: empty };
  assert.equal(await runCampaign(['list', '--token', token, ...api(backend)], viaFlag), 0, viaFlag.stderr.text);
  const file = join(empty, 'viewer-token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  const viaFile = io();
  viaFile.env = { OTALINK_HOME: empty };
  assert.equal(await runCampaign(['list', '--token-file', file, ...api(backend)], viaFile), 0, viaFile.stderr.text);

  const forbidden = io();
  forbidden.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
  assert.equal(await runCampaign(['cancel', 'c1', ...api(backend)], forbidden), 1);
  assert.match(forbidden.stderr.text, /needs operator \[OTA_ERR_FORBIDDEN\]/);
  const notAdmin = io();
  notAdmin.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
  assert.equal(await runToken(['list', ...api(backend)], notAdmin), 1);
  assert.match(notAdmin.stderr.text, /OTA_ERR_FORBIDDEN/);

  const revoked = io();
  assert.equal(await runToken(['revoke', id, ...api(backend)], revoked), 0, revoked.stderr.text);
  assert.match(revoked.stdout.text, new RegExp(`token ${id} \\(dashboard wall\\) revoked at `));
  const after = io();
  after.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
  assert.equal(await runCampaign(['list', ...api(backend)], after), 1);
  assert.match(after.stderr.text, /OTA_ERR_UNAUTHORIZED/);
  const listed = io();
  assert.equal(await runToken(['list', '--json', ...api(backend)], listed), 0);
  const entry = (JSON.parse(listed.stdout.text) as Array<{ id: string; revokedAt?: number }>).find((e) => e.id === id);
  assert.equal(typeof entry?.revokedAt, 'number');
});

test('--expires-in: the token is listed with its expiry and refused once it has passed', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const created = io();
  const args = ['create', '--name', 'short lived', '--role', 'viewer', '--expires-in', '15m', '--json'];
  assert.equal(await runToken([...args, ...api(backend)], created), 0, created.stderr.text);
  const { token, info } = JSON.parse(created.stdout.text) as {
    token: string;
    info: { createdAt: number; expiresAt?: number };
  };
  assert.equal(info.expiresAt, info.createdAt + 15 * 60_000);
  const empty = mkdtempSync(join(tmpdir(), 'otalink-home-'));
  const before = io();
  before.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
  assert.equal(await runCampaign(['list', ...api(backend)], before), 0, before.stderr.text);
  backend.service.now += 15 * 60_000;
  try {
    const expired = io();
    expired.env = { OTALINK_HOME: empty, OTALINK_TOKEN: token };
    assert.equal(await runCampaign(['list', ...api(backend)], expired), 1);
    assert.match(expired.stderr.text, /expired API token .*\[OTA_ERR_UNAUTHORIZED\]/);
    const tooShort = io();
    const shortArgs = ['create', '--name', 'x', '--role', 'viewer', '--expires-in', '30s'];
    assert.equal(await runToken([...shortArgs, ...api(backend)], tooShort), 1);
    assert.match(tooShort.stderr.text, /expiresInSeconds/);
  } finally {
    backend.service.now -= 15 * 60_000;
  }
});

test('usage errors exit 2', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  for (const args of [
    ['create', '--name', 'x'],
    ['create', '--role', 'viewer'],
    ['create', '--name', 'x', '--role', 'root'],
    ['create', '--name', 'x', '--role', 'viewer', '--expires-in', 'soon'],
    ['create', '--name', 'x', '--role', 'viewer', '--expires-in', '-5m'],
    ['revoke'],
    ['revoke', 'not-an-id'],
    ['frobnicate'],
    [],
    ['list', '--token-file', '/nonexistent/otalink-token'],
  ]) {
    const out = io();
    assert.equal(await runToken([...args, ...api(backend)], out), 2, `${args.join(' ')}: ${out.stderr.text}`);
  }
});

test('the default token file goes to loopback APIs only, never to another host', async () => {
  const home = mkdtempSync(join(tmpdir(), 'otalink-home-'));
  mkdirSync(join(home, 'backend'));
  writeFileSync(join(home, 'backend', 'admin-token'), 'otk_local\n');
  const env = { OTALINK_HOME: home };
  for (const url of ['https://127.0.0.1:8443', 'https://localhost:8443', 'http://[::1]:8080', 'http://127.0.0.5']) {
    assert.equal((await tokenFor({}, env, new URL(url)))?.token, 'otk_local', url);
  }
  for (const url of ['https://ota.example.com', 'https://10.0.0.1:8443', 'https://127.example.com']) {
    assert.equal(await tokenFor({}, env, new URL(url)), undefined, url);
  }
  assert.equal(
    (await tokenFor({}, { OTALINK_DATA_DIR: join(home, 'backend') }, new URL('https://127.0.0.1')))?.token,
    'otk_local',
  );
  assert.equal(
    (await tokenFor({ token: 'otk_flag' }, { ...env, OTALINK_TOKEN: 'otk_env' }, new URL('https://x')))?.token,
    'otk_flag',
  );
  assert.equal((await tokenFor({}, { ...env, OTALINK_TOKEN: 'otk_env' }, new URL('https://x')))?.token, 'otk_env');
});
