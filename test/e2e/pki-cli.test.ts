// `otalink pki init` and `otalink pki vehicle` as a user runs them: files with the right modes, a second init that
// reuses everything, vehicle certificates that chain to the CA with the VIN as CN, and refusals with exit code 2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;

async function otalink(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['bin/otalink.js', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const [code] = (await once(proc, 'close')) as [number | null];
  return { code, stdout, stderr };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'otalink-pki-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('otalink pki init creates the dev PKI once, then reuses it', { timeout: 60_000 }, async () => {
  const pkiDir = join(dir, 'pki');
  const first = await otalink(['pki', 'init', '--dir', pkiDir]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /wrote 6 file\(s\)/);
  assert.equal((await stat(join(pkiDir, 'ca-key.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(pkiDir, 'server-key.pem'))).mode & 0o777, 0o600);
  const ca = await readFile(join(pkiDir, 'ca.pem'), 'utf8');
  const second = await otalink(['pki', 'init', '--dir', pkiDir]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /\(reused\)/);
  assert.equal(await readFile(join(pkiDir, 'ca.pem'), 'utf8'), ca);
});

test('otalink pki vehicle issues per-VIN client certificates signed by the CA', { timeout: 60_000 }, async () => {
  const pkiDir = join(dir, 'pki');
  const result = await otalink(['pki', 'vehicle', '--dir', pkiDir, '--vin', 'WVWZZZ1JZXW000001', 'SIM-000042']);
  assert.equal(result.code, 0, result.stderr);
  const caCert = new X509Certificate(await readFile(join(pkiDir, 'ca.pem')));
  for (const vin of ['WVWZZZ1JZXW000001', 'SIM-000042']) {
    assert.match(result.stdout, new RegExp(`^${vin} `, 'm'));
    const cert = new X509Certificate(await readFile(join(pkiDir, 'vehicles', `${vin}.pem`)));
    assert.equal(cert.subject, `CN=${vin}`);
    assert.ok(cert.verify(caCert.publicKey));
    assert.equal((await stat(join(pkiDir, 'vehicles', `${vin}-key.pem`))).mode & 0o777, 0o600);
  }
});

test('otalink pki refuses bad VINs and unknown sub-commands with exit code 2', { timeout: 60_000 }, async () => {
  const pkiDir = join(dir, 'pki');
  const bad = await otalink(['pki', 'vehicle', '--dir', pkiDir, '--vin', '../etc']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not a VIN/);
  assert.equal((await otalink(['pki', 'vehicle', '--dir', pkiDir])).code, 2);
  assert.equal((await otalink(['pki', 'frobnicate', '--dir', pkiDir])).code, 2);
});
