// The download worker thread: serves GET/HEAD /artifacts/{sha256} on its own listener with the same route as the
// API's app (http/download.ts), reading the artifact directory itself and checking URL signatures with the shared
// secret, so ten thousand TLS handshakes at a campaign's start cost this thread's event loop, not the API's.
// Started by listener.ts through worker-entry.mjs.
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { ArtifactReader } from '../artifacts/reader.js';
import { verifyArtifactSignature } from '../artifacts/signed-url.js';
import { artifactBody, buildDownloadApp } from '../http/download.js';
import type { DownloadWorkerData, FromWorker, ToWorker } from './messages.js';

const port = parentPort;
if (port === null) throw new Error('downloads/worker.ts runs in a worker thread');
const data = workerData as DownloadWorkerData;
const post = (message: FromWorker) => port.postMessage(message);

// Records go to the main thread, which logs them through the backend's logger.
const logger = pino({ level: data.logLevel }, { write: (line: string) => post({ type: 'log', line }) });

const reader = new ArtifactReader(data.artifactDir, {
  ...(data.hotFileMaxBytes === undefined ? {} : { hotFileMaxBytes: data.hotFileMaxBytes }),
  ...(data.hotTotalMaxBytes === undefined ? {} : { hotTotalMaxBytes: data.hotTotalMaxBytes }),
});
const secret = Buffer.from(data.urlSecret);

const app = buildDownloadApp({
  source: {
    check(sha256, exp, sig) {
      const verdict = verifyArtifactSignature(secret, sha256, exp, sig);
      if (verdict.ok) return 'ok';
      return verdict.code === 'EXPIRED' ? 'expired' : 'invalid';
    },
    async open(sha256) {
      const stored = await reader.open(sha256);
      return stored === undefined ? undefined : artifactBody(reader.pathOf(sha256), stored.size, stored.bytes);
    },
  },
  ...(data.tls === undefined ? {} : { https: data.tls }),
  logger,
});

let closing = false;
port.on('message', (message: ToWorker) => {
  if (message.type === 'forget') {
    reader.forget(message.sha256);
    post({ type: 'forgotten', id: message.id });
  } else if (message.type === 'close' && !closing) {
    closing = true;
    void app
      .close()
      .catch((err: unknown) => logger.warn({ err }, 'closing the download listener'))
      // Nothing left to keep the thread alive once the port is closed: it exits with code 0.
      .finally(() => port.close());
  }
});

try {
  // A fleet starting its downloads at once overflows Node's default accept queue (511), as on the API's listener.
  await app.listen({ host: data.host, port: data.port, backlog: 4096 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the download listener has no TCP address');
  post({ type: 'listening', address: address.address, family: address.family, port: address.port });
} catch (error) {
  const e = error as NodeJS.ErrnoException;
  post({ type: 'listen-failed', code: e.code, message: e.message });
  await app.close().catch(() => undefined);
  port.close();
}
