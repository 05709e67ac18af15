// The main thread's side of the download worker: a worker that dies is logged and restarted on the same port, a
// port already taken is a clear EADDRINUSE at start, close() waits for the worker to exit, and a backend must be
// told where downloads are.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackend } from '../src/backend.js';
import { DownloadListenError, startDownloadListener } from '../src/downloads/listener.js';
import { type Logger, silentLogger } from '../src/logger.js';
import { fetchUrl } from './http-support.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'otalink-download-listener-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function recordingLogger(records: Array<{ level: string; msg: string; obj: object }>): Logger {
  const at = (level: string) => (obj: object, msg?: string) => void records.push({ level, msg: msg ?? '', obj });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

test('a worker that dies is logged and restarted on the port it had; close() waits for it', async () => {
  const records: Array<{ level: string; msg: string; obj: object }> = [];
  const listener = await startDownloadListener({
    artifactDir: dir,
    urlSecret: Buffer.alloc(32, 1),
    logger: recordingLogger(records),
    workerEntry: new URL('./fixtures/dying-download-worker.mjs', import.meta.url),
    restartDelayMs: 20,
  });
  try {
    const url = listener.url;
    const firstThread = listener.threadId;
    for (let i = 0; i < 500 && listener.restarts === 0; i++) await sleep(10);
    for (let i = 0; i < 500 && !listener.listening; i++) await sleep(10);
    assert.equal(listener.restarts, 1);
    assert.ok(listener.listening);
    assert.notEqual(listener.threadId, firstThread, 'a new thread');
    assert.equal(listener.url, url, 'on the same port: the URLs already handed out stay valid');
    assert.equal((await fetchUrl(`${url}/`)).body.toString(), 'alive');
    assert.ok(
      records.some((r) => r.level === 'error' && r.msg === 'download worker failed'),
      JSON.stringify(records),
    );
    assert.ok(records.some((r) => r.level === 'info' && r.msg === 'download worker restarted'));
  } finally {
    await listener.close();
  }
  assert.equal(listener.listening, false);
  assert.equal(listener.threadId, -1, 'no worker left');
  // Refused; or, when a test file running beside this one took the freed port meanwhile, not answered by us.
  await assert.rejects(fetchUrl(listener.url), /ECONNREFUSED|socket hang up|ECONNRESET/);
});

test('a port already taken fails the start with EADDRINUSE and its port', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as { port: number }).port;
  try {
    const error = await startDownloadListener({
      artifactDir: dir,
      urlSecret: Buffer.alloc(32, 1),
      logger: recordingLogger([]),
      port,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof DownloadListenError, String(error));
    assert.equal(error.code, 'EADDRINUSE');
    assert.equal(error.port, port);
  } finally {
    taken.close();
  }
});

test('a backend with neither publicBaseUrl nor a download listener refuses to start, naming the option', async () => {
  const backend = createBackend({ dataDir: join(dir, 'no-origin'), logger: silentLogger, adminTokenFile: false });
  await assert.rejects(backend.start(), { code: 'OTA_ERR_VALIDATION', field: 'publicBaseUrl' });
  await backend.close();
});
