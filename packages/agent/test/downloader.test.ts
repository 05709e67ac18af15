// The resumable downloader against a real HTTPS server with Range/ETag: cut links, restarts with a partial file, a
// changed artifact, an endless-data server, server errors, and a server whose certificate is not trusted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { checkArtifact } from '@otalink/ota';
import { sha256Hex } from '@otalink/ota/node';
import { download, hashFile } from '../src/index.js';
import { type ArtifactServer, makeCertificate, startArtifactServer } from './support/artifact-server.js';

const BYTES = randomBytes(300 * 1024 + 123);
let server: ArtifactServer;
let dir: string;

before(async () => {
  server = await startArtifactServer();
  server.put('/a.bin', BYTES);
  dir = await mkdtemp(join(tmpdir(), 'otalink-dl-'));
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const fast = { initialDelayMs: 5, maxDelayMs: 20 };

describe('download', () => {
  test('bytes that arrive together with the close of the link are kept: each attempt gets further', async () => {
    // A link that delivers a burst and drops at once (the FIN right behind the data): the body is still in the
    // stream's buffers when the connection ends. Every attempt must keep its burst, or none ever gets further.
    const certificate = makeCertificate();
    const piece = 50_000;
    const starts: number[] = [];
    const burst = createTlsServer({ cert: certificate.cert, key: certificate.key }, (socket) => {
      let head = '';
      socket.on('error', () => {});
      socket.on('data', (data: Buffer) => {
        head += data.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const range = /\r\nrange: bytes=(\d+)-/i.exec(head);
        const from = range === null ? 0 : Number(range[1]);
        starts.push(from);
        const lines = [
          range === null ? 'HTTP/1.1 200 OK' : 'HTTP/1.1 206 Partial Content',
          `Content-Length: ${BYTES.length - from}`,
          ...(range === null ? [] : [`Content-Range: bytes ${from}-${BYTES.length - 1}/${BYTES.length}`]),
          'ETag: "burst"',
          'Connection: close',
          '',
          '',
        ];
        socket.end(Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), BYTES.subarray(from, from + piece)]));
      });
    });
    await new Promise<void>((resolve) => burst.listen(0, '127.0.0.1', resolve));
    try {
      const port = (burst.address() as { port: number }).port;
      const path = join(dir, 'burst.part');
      const result = await download({
        url: `https://127.0.0.1:${port}/a.bin`,
        path,
        size: BYTES.length,
        ca: certificate.cert,
        maxAttempts: 3,
        ...fast,
      });
      assert.deepEqual(result, { ok: true, bytes: BYTES.length, etag: '"burst"' }, JSON.stringify(starts));
      assert.deepEqual(
        starts,
        Array.from({ length: Math.ceil(BYTES.length / piece) }, (_, i) => i * piece),
      );
      assert.ok((await readFile(path)).equals(BYTES));
    } finally {
      await new Promise<void>((resolve) => burst.close(() => resolve()));
    }
  });

  test('the link is cut three times: it resumes with Range + If-Range and the bytes verify', async () => {
    const path = join(dir, 'cut.part');
    server.requests.length = 0;
    server.cutAfter(70_000, 3);
    const progress: number[] = [];
    const result = await download({
      url: server.url('/a.bin'),
      path,
      size: BYTES.length,
      ca: server.ca,
      ...fast,
      onProgress: (done) => progress.push(done),
    });
    assert.equal(result.ok, true);
    assert.equal(server.requests.length, 4);
    assert.equal(server.requests[0]?.range, undefined);
    for (const r of server.requests.slice(1)) {
      assert.match(r.range ?? '', /^bytes=\d+-$/);
      assert.equal(r.ifRange, await etagOf());
      assert.equal(r.status, 206);
    }
    const offsets = server.requests.slice(1).map((r) => Number(/\d+/.exec(r.range ?? '')?.[0]));
    assert.ok(
      offsets.every((o, i) => o > (offsets[i - 1] ?? 0)),
      'each resume starts further on',
    );
    const actual = await hashFile(path);
    assert.deepEqual(checkArtifact(actual, { size: BYTES.length, sha256: sha256Hex(BYTES) }), { ok: true });
    assert.ok(progress.every((p, i) => p >= (progress[i - 1] ?? 0) || i === 0 || p <= BYTES.length));
  });

  test('after a process restart: the partial file and the journal ETag resume the download', async () => {
    const path = join(dir, 'restart.part');
    await writeFile(path, BYTES.subarray(0, 100_000));
    server.requests.length = 0;
    const result = await download({
      url: server.url('/a.bin'),
      path,
      size: BYTES.length,
      etag: await etagOf(),
      ca: server.ca,
      ...fast,
    });
    assert.equal(result.ok, true);
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]?.range, 'bytes=100000-');
    assert.equal(server.requests[0]?.status, 206);
    assert.ok((await readFile(path)).equals(BYTES));
  });

  test('a changed artifact (other ETag): If-Range gets the whole new file, never a splice of two', async () => {
    const path = join(dir, 'changed.part');
    await writeFile(path, BYTES.subarray(0, 100_000));
    const other = randomBytes(BYTES.length);
    server.put('/b.bin', other);
    server.requests.length = 0;
    const result = await download({
      url: server.url('/b.bin'),
      path,
      size: other.length,
      etag: '"an-old-etag"',
      ca: server.ca,
      ...fast,
    });
    assert.equal(result.ok, true);
    assert.equal(server.requests[0]?.status, 200);
    assert.ok((await readFile(path)).equals(other));
  });

  test('a file already complete on disk: 416 counts as done', async () => {
    const path = join(dir, 'complete.part');
    await writeFile(path, BYTES);
    const result = await download({ url: server.url('/a.bin'), path, size: BYTES.length, ca: server.ca, ...fast });
    assert.equal(result.ok, true);
  });

  test('more bytes than declared: OTA_ERR_TOO_LARGE at once, no retry', async () => {
    const path = join(dir, 'large.part');
    server.put('/c.bin', BYTES);
    server.appendGarbage(50_000);
    server.requests.length = 0;
    try {
      const result = await download({ url: server.url('/c.bin'), path, size: BYTES.length, ca: server.ca, ...fast });
      assert.equal(result.ok, false);
      assert.equal(result.ok === false && result.code, 'OTA_ERR_TOO_LARGE');
      assert.equal(server.requests.length, 1);
    } finally {
      server.appendGarbage(0);
    }
  });

  test('server errors are retried with backoff; a 404 is not', async () => {
    server.failWith(503, 2);
    server.requests.length = 0;
    const ok = await download({
      url: server.url('/a.bin'),
      path: join(dir, 'retry.part'),
      size: BYTES.length,
      ca: server.ca,
      ...fast,
    });
    assert.equal(ok.ok, true);
    assert.deepEqual(
      server.requests.map((r) => r.status),
      [503, 503, 200],
    );
    server.requests.length = 0;
    const missing = await download({
      url: server.url('/missing.bin'),
      path: join(dir, 'missing.part'),
      size: 10,
      ca: server.ca,
      ...fast,
    });
    assert.equal(missing.ok === false && missing.code, 'AGENT_ERR_DOWNLOAD_FAILED');
    assert.equal(server.requests.length, 1);
  });

  test('an untrusted server certificate fails after the attempts run out', async () => {
    server.requests.length = 0;
    const result = await download({
      url: server.url('/a.bin'),
      path: join(dir, 'untrusted.part'),
      size: BYTES.length,
      maxAttempts: 3,
      ...fast,
    });
    assert.equal(result.ok === false && result.code, 'AGENT_ERR_DOWNLOAD_FAILED');
    assert.equal(server.requests.length, 0, 'no request reached the server');
  });

  test('a trusted certificate for another host name is refused before any request', async () => {
    const elsewhere = await startArtifactServer({ certificate: makeCertificate('DNS:artifacts.example.com') });
    try {
      elsewhere.put('/a.bin', BYTES);
      const result = await download({
        url: elsewhere.url('/a.bin'),
        path: join(dir, 'other-host.part'),
        size: BYTES.length,
        ca: elsewhere.ca,
        maxAttempts: 2,
        ...fast,
      });
      assert.equal(result.ok === false && result.code, 'AGENT_ERR_DOWNLOAD_FAILED');
      assert.match(result.ok === false ? result.text : '', /IP: 127\.0\.0\.1 is not in the cert's list/);
      assert.equal(elsewhere.requests.length, 0, 'no request reached the server');
    } finally {
      await elsewhere.close();
    }
  });

  test('each download has its own connection, closed with the response (no pool shared by vehicles)', async () => {
    server.requests.length = 0;
    for (const name of ['own-1.part', 'own-2.part']) {
      const result = await download({
        url: server.url('/a.bin'),
        path: join(dir, name),
        size: BYTES.length,
        ca: server.ca,
      });
      assert.equal(result.ok, true);
    }
    assert.deepEqual(
      server.requests.map((r) => r.connection),
      ['close', 'close'],
    );
  });

  test('plain http only when allowed', async () => {
    const plain = await startArtifactServer({ http: true });
    try {
      plain.put('/a.bin', BYTES);
      const refused = await download({ url: plain.url('/a.bin'), path: join(dir, 'http1.part'), size: BYTES.length });
      assert.equal(refused.ok === false && refused.code, 'AGENT_ERR_INSECURE_URL');
      const allowed = await download({
        url: plain.url('/a.bin'),
        path: join(dir, 'http2.part'),
        size: BYTES.length,
        allowHttp: true,
      });
      assert.equal(allowed.ok, true);
    } finally {
      await plain.close();
    }
  });

  test('an abort stops it and keeps the partial file for a later resume', async () => {
    const path = join(dir, 'abort.part');
    server.slow(20);
    const abort = new AbortController();
    try {
      const run = download({
        url: server.url('/a.bin'),
        path,
        size: BYTES.length,
        ca: server.ca,
        signal: abort.signal,
        onProgress: (done) => {
          if (done > 40_000) abort.abort();
        },
      });
      const result = await run;
      assert.equal(result.ok === false && result.code, 'AGENT_ERR_DOWNLOAD_STOPPED');
    } finally {
      server.slow(0);
    }
    const partial = (await readFile(path)).length;
    assert.ok(partial > 0 && partial < BYTES.length);
    const resumed = await download({ url: server.url('/a.bin'), path, size: BYTES.length, ca: server.ca, ...fast });
    assert.equal(resumed.ok, true);
    assert.ok((await readFile(path)).equals(BYTES));
  });
});

async function etagOf(): Promise<string> {
  // The test server's ETag is the first 16 hex digits of the SHA-256 of the bytes.
  return `"${sha256Hex(BYTES).slice(0, 16)}"`;
}
