// `otalink artifact` against a real HTTPS backend (in-memory service): streamed upload, list, and its refusals.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runArtifact } from '../src/commands/artifact.js';
import { Capture, io, startTestBackend, type TestBackend } from './cli-support.js';

let backend: TestBackend | undefined;

before(async () => {
  backend = await startTestBackend();
});
after(async () => {
  await backend?.close();
});

test('upload streams the file and prints its sha256; list shows it', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const file = join(backend.dir, 'fw.bin');
  const bytes = Buffer.alloc(300_000, 0x5a);
  writeFileSync(file, bytes);
  const out = io();
  const code = await runArtifact(
    [
      'upload',
      file,
      '--name',
      'tcu-fw',
      '--version',
      '2.1.0',
      '--hardware-id',
      'hw-a',
      '--hardware-id',
      'hw-b,hw-c',
      '--api',
      backend.server.url,
      '--cafile',
      backend.caFile,
    ],
    out,
  );
  assert.equal(code, 0, out.stderr.text);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  assert.match(out.stdout.text, new RegExp(`sha256 ${sha256}`));
  assert.deepEqual(backend.service.artifacts.get(sha256)?.hardwareIds, ['hw-a', 'hw-b', 'hw-c']);
  assert.equal(backend.service.artifacts.get(sha256)?.size, bytes.length);

  const listed = io();
  listed.env.OTALINK_API = backend.server.url;
  assert.equal(await runArtifact(['list', '--insecure', '--json'], listed), 0, listed.stderr.text);
  assert.deepEqual(
    (JSON.parse(listed.stdout.text) as Array<{ sha256: string }>).map((a) => a.sha256),
    [sha256],
  );
});

test('bad options exit 2 with one line naming the problem', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['upload'], /needs the FILE/],
    [['upload', '/nonexistent/file', '--name', 'a', '--version', '1', '--hardware-id', 'h'], /\/nonexistent\/file/],
    [['upload', 'f', '--version', '1', '--hardware-id', 'h'], /--name is required/],
    [['upload', 'f', '--name', 'a', '--version', '1'], /--hardware-id/],
    [['upload', 'f', '--bogus'], /bogus/],
    [['frobnicate'], /unknown sub-command/],
    [['list', '--api', 'ftp://x'], /http:\/\/ or https:\/\//],
  ];
  for (const [args, message] of cases) {
    const out = io();
    assert.equal(await runArtifact(args, out), 2, args.join(' '));
    assert.match(out.stderr.text, message, args.join(' '));
    assert.equal(out.stderr.text.split('\n')[0]?.startsWith('otalink artifact: '), true);
  }
});

test('refusals from the backend exit 1 with their code; an untrusted certificate is refused', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const file = join(backend.dir, 'small.bin');
  writeFileSync(file, 'x');
  const api = ['--api', backend.server.url, '--cafile', backend.caFile];
  const bad = io();
  assert.equal(
    await runArtifact(['upload', file, '--name', 'a', '--version', '1', '--hardware-id', 'bad id!', ...api], bad),
    1,
  );
  assert.match(bad.stderr.text, /^otalink artifact: .*\(query\.hardwareIds\) \[OTA_ERR_VALIDATION\]\n$/);
  const refused = io(new Capture(), new Capture());
  const code = await runArtifact(
    ['upload', file, '--name', 'a', '--version', '1', '--hardware-id', 'h', '--api', backend.server.url],
    refused,
  );
  assert.equal(code, 1);
  assert.match(refused.stderr.text, /certificate|CLI_ERR_CONNECT/);
});
