// Artifact downloads from the worker thread's own listener (createBackend({ downloads })): the same route as the
// API's (signature first, 404, ETag, If-None-Match, Range/If-Range, HEAD, small artifacts from memory, large ones
// streamed), a removed artifact no longer served, close() ending the worker, and the API answering while a herd of
// TLS downloads is on the download listener.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ArtifactFiles } from '../src/artifacts/files.js';
import { type Backend, createBackend } from '../src/backend.js';
import { type RunningHttpServer, startHttpServer } from '../src/http/server.js';
import { silentLogger } from '../src/logger.js';
import { type Fetched, fetchUrl, selfSignedCert } from './http-support.js';

// RSA: the server's side of a TLS handshake (the signature) then costs more than the client's, so a herd of
// handshakes keeps the download listener's thread busy rather than the herd's own process.
const cert = selfSignedCert('rsa');
let dataDir: string;
let backend: Backend | undefined;
let api: RunningHttpServer | undefined;
let adminAuth: Record<string, string> = {};

const bytesOf = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + 7) & 0xff));
const small = bytesOf(64 * 1024, 13);
/** Above the 1 MiB memory limit: streamed from its file. */
const large = bytesOf(1024 * 1024 + 4096, 7);
const get = (url: string, options: Parameters<typeof fetchUrl>[1] = {}) =>
  fetchUrl(url, { ca: cert?.cert, ...options });
const errorOf = (res: Fetched) =>
  (JSON.parse(res.body.toString()) as { error: { code: string; field?: string } }).error;

before(async () => {
  if (cert === undefined) return;
  dataDir = await mkdtemp(join(tmpdir(), 'otalink-download-worker-'));
  backend = createBackend({
    dataDir,
    downloads: { tls: cert, host: '127.0.0.1', port: 0 },
    logger: silentLogger,
    adminTokenFile: false,
  });
  await backend.start();
  api = await startHttpServer({ service: backend.service, tls: cert, host: '127.0.0.1', port: 0 });
  const created = await backend.service.createApiToken({ name: 'test', role: 'admin' });
  adminAuth = { authorization: `Bearer ${created.token}` };
});

after(async () => {
  await api?.close();
  await backend?.close();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

async function upload(bytes: Buffer, version: string): Promise<string> {
  const info = await (backend as Backend).service.putArtifact(bytes, { name: 'w', version, hardwareIds: ['hw'] });
  return info.sha256;
}

test('manifests point at the download listener, which serves whole files, HEAD, ETag and ranges', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const downloadsUrl = backend.downloads?.url ?? '';
  assert.match(downloadsUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(downloadsUrl, api?.url);
  for (const [bytes, version] of [
    [small, '1.0.0'],
    [large, '1.0.1'],
  ] as const) {
    const sha256 = await upload(bytes, version);
    const url = backend.service.signArtifactUrl(sha256, 60_000);
    assert.ok(url.startsWith(`${downloadsUrl}/artifacts/${sha256}?`), url);
    const whole = await get(url);
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.body, bytes);
    assert.equal(whole.headers.etag, `"${sha256}"`);
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    const head = await get(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(bytes.length));
    assert.equal(head.body.length, 0);
    const notModified = await get(url, { headers: { 'if-none-match': `W/"${sha256}"` } });
    assert.equal(notModified.status, 304);
    const first = await get(url, { headers: { range: 'bytes=0-999' } });
    assert.equal(first.status, 206);
    assert.equal(first.headers['content-range'], `bytes 0-999/${bytes.length}`);
    const rest = await get(url, { headers: { range: 'bytes=1000-', 'if-range': `"${sha256}"` } });
    assert.equal(rest.status, 206);
    assert.deepEqual(Buffer.concat([first.body, rest.body]), bytes);
    const otherFile = await get(url, { headers: { range: 'bytes=1000-', 'if-range': '"another"' } });
    assert.equal(otherFile.status, 200, 'If-Range for another file: the whole file');
    assert.equal(otherFile.body.length, bytes.length);
    const outside = await get(url, { headers: { range: `bytes=${bytes.length}-` } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers['content-range'], `bytes */${bytes.length}`);
    assert.equal(errorOf(outside).code, 'OTA_ERR_RANGE_NOT_SATISFIABLE');
  }
});

test('the signature is checked first: 403 with a JSON body naming the field, then 404 for an unknown artifact', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const sha256 = await upload(small, '1.0.0');
  const url = new URL(backend.service.signArtifactUrl(sha256, 60_000));
  const forged = new URL(url);
  forged.searchParams.set('sig', `${url.searchParams.get('sig')?.slice(0, -2)}AA`);
  const bad = await get(forged.href);
  assert.equal(bad.status, 403);
  assert.match(String(bad.headers['content-type']), /^application\/json/);
  assert.deepEqual(errorOf(bad), {
    code: 'OTA_ERR_URL_SIGNATURE',
    message: 'download URL signature is invalid',
    field: 'sig',
  });
  const unsigned = await get(`${url.origin}${url.pathname}`);
  assert.equal(errorOf(unsigned).code, 'OTA_ERR_URL_SIGNATURE');
  const expired = await get(backend.service.signArtifactUrl(sha256, -60_000));
  assert.equal(expired.status, 403);
  assert.deepEqual(errorOf(expired), {
    code: 'OTA_ERR_URL_EXPIRED',
    message: 'download URL has expired',
    field: 'exp',
  });
  const unknownSha = 'f'.repeat(64);
  const unknown = await get(backend.service.signArtifactUrl(unknownSha, 60_000));
  assert.equal(unknown.status, 404);
  assert.equal(errorOf(unknown).code, 'OTA_ERR_NOT_FOUND');
  const noRoute = await get(`${url.origin}/api/v1/artifacts`);
  assert.equal(noRoute.status, 404, 'the download listener serves downloads only');
  assert.equal(errorOf(noRoute).code, 'OTA_ERR_ROUTE_NOT_FOUND');
});

test('an artifact removed by the main thread is no longer served from the worker memory', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const bytes = bytesOf(10_000, 17);
  const sha256 = await upload(bytes, '3.0.0');
  const url = backend.service.signArtifactUrl(sha256, 60_000);
  assert.equal((await get(url)).status, 200, 'served once: now held in the worker memory');
  await removeArtifactFile(sha256);
  const gone = await get(url);
  assert.equal(gone.status, 404);
  assert.equal(errorOf(gone).code, 'OTA_ERR_NOT_FOUND');
});

/**
 * The service removes a file only for an upload whose bytes do not hash to the sha256 it claims (and were not stored
 * before), so a served artifact is removed here through the same ArtifactFiles.remove over the backend's directory,
 * told to the backend's worker as createBackend wires it: unlink, then the worker forgets and confirms.
 */
async function removeArtifactFile(sha256: string): Promise<void> {
  const listener = (backend as Backend).downloads;
  const files = new ArtifactFiles(join(dataDir, 'artifacts'), { onRemoved: (sha) => listener?.forget(sha) });
  await files.remove(sha256);
}

test('the API answers while a herd of TLS downloads is on the download listener', async (t) => {
  if (backend === undefined || api === undefined) return t.skip('openssl not available to make a test certificate');
  const sha256 = await upload(small, '1.0.0');
  const url = backend.service.signArtifactUrl(sha256, 60_000);
  const herdSize = 300;
  const herd = spawn(
    process.execPath,
    [join(import.meta.dirname, 'fixtures', 'download-herd.mjs'), url, String(herdSize)],
    {
      env: { ...process.env, HERD_CA: cert?.cert, HERD_LENGTH: String(small.length) },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => herd.kill());
  let output = '';
  const lines = (want: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const match = want.exec(output);
        if (match !== null) resolve(match[0]);
      };
      herd.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        check();
      });
      herd.once('close', (code) => reject(new Error(`the herd exited (${code}) before ${want}: ${output}`)));
      check();
    });
  const herdHalf = lines(/half/);
  const herdDone = lines(/done (\d+)/);
  await lines(/connected/);
  // Every connection of the herd is up, its handshake queued on the download listener: an API request now must not
  // wait for them. (On one event loop it waited behind them all: this failed with the downloads on the API's port.)
  const answer = await get(`${api.url}/api/v1/artifacts?limit=1`, { headers: adminAuth });
  assert.equal(answer.status, 200);
  assert.doesNotMatch(output, /half|done/, 'the API answered before half the herd downloads ended');
  await herdHalf;
  const done = await herdDone;
  assert.equal(done, `done ${herdSize}`, 'and every download of the herd succeeded');
});

test('close() ends the worker: the download port is closed', async (t) => {
  if (backend === undefined) return t.skip('openssl not available to make a test certificate');
  const listener = backend.downloads;
  assert.ok(listener?.listening);
  const port = Number(new URL(listener.url).port);
  await api?.close();
  await backend.close();
  assert.equal(listener.listening, false);
  const refused = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
});
