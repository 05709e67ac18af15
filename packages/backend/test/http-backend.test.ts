// The HTTP layer over the real engine (createBackend: SQLite in a temp dir, MQTT to our broker on port 0), end to
// end: REST registration, an HTTPS upload, a campaign started over REST, a vehicle (our MQTT client) that gets the
// signed manifest, downloads the artifact in two ranges from the URL in it and reports success, and the SSE stream
// following the campaign to COMPLETED.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import { connect, type MqttClient } from '@otalink/mqtt';
import { createMessage, encodeMessage, type JobNotify, parseMessage } from '@otalink/ota';
import pino from 'pino';
import type { BackendService } from '../src/api.js';
import { type Backend, createBackend } from '../src/backend.js';
import { type RunningHttpServer, startHttpServer } from '../src/http/server.js';
import { silentLogger } from '../src/logger.js';
import { fetchUrl, openEvents, selfSignedCert } from './http-support.js';

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + 15_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The engine's service, reached only when a request comes: the HTTP server listens first so its port can be the
 *  public URL the engine signs download URLs under. */
function lateService(get: () => BackendService): BackendService {
  return new Proxy({} as BackendService, {
    get(_target, name) {
      const service = get() as unknown as Record<string | symbol, unknown>;
      const value = service[name];
      return typeof value === 'function' ? value.bind(service) : value;
    },
  });
}

test('real backend: register, upload, campaign, manifest download with Range, status over MQTT, SSE to COMPLETED', async (t) => {
  const cert = selfSignedCert();
  if (cert === undefined) return t.skip('openssl not available to make a test certificate');
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const mqttUrl = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-http-backend-'));
  let backend: Backend | undefined;
  let server: RunningHttpServer | undefined;
  let vehicle: MqttClient | undefined;
  let events: ReturnType<typeof openEvents> | undefined;
  try {
    server = await startHttpServer({
      service: lateService(() => {
        if (backend === undefined) throw new Error('backend not created');
        return backend.service;
      }),
      tls: cert,
      host: '127.0.0.1',
      port: 0,
    });
    const base = server.url;
    backend = createBackend({
      dataDir,
      mqtt: mqttUrl,
      vinMode: 'simulation',
      publicBaseUrl: base,
      logger: silentLogger,
      autoRegister: false,
    });
    await backend.start();
    // The bootstrap admin token the first start wrote, as an operator would use it.
    const auth = {
      authorization: `Bearer ${readFileSync(backend.adminTokenFile ?? 'no token file', 'utf8').trim()}`,
    };
    const json = (method: string, path: string, body?: unknown) =>
      fetchUrl(`${base}${path}`, {
        method,
        ca: cert.cert,
        ...(body === undefined
          ? { headers: auth }
          : { headers: { ...auth, 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) }),
      }).then((r) => ({ status: r.status, body: r.body.length > 0 ? JSON.parse(r.body.toString()) : undefined }));

    const vin = 'SIM-000001';
    const registered = await json('POST', '/api/v1/vehicles', {
      vin,
      model: 'ID.4',
      hardwareId: 'tcu-v2',
      installedVersion: '1.0.0',
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const noHardware = await json('POST', '/api/v1/vehicles', { vin, model: 'ID.4' });
    assert.equal(noHardware.status, 400);
    assert.deepEqual(noHardware.body.error.field, 'body.hardwareId');

    const image = Buffer.alloc(200_000);
    for (let i = 0; i < image.length; i++) image[i] = (i * 31) % 256;
    const sha256 = createHash('sha256').update(image).digest('hex');
    const uploaded = await fetchUrl(`${base}/api/v1/artifacts?name=tcu-firmware&version=2.0.0&hardwareIds=tcu-v2`, {
      method: 'POST',
      ca: cert.cert,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: image,
    });
    assert.equal(uploaded.status, 201, uploaded.body.toString());
    assert.equal(JSON.parse(uploaded.body.toString()).sha256, sha256);
    assert.equal((await json('GET', `/api/v1/artifacts/${sha256}`)).body.size, image.length);

    // The vehicle: subscribed to its commands before the campaign starts.
    const notified: JobNotify[] = [];
    vehicle = await connect({ url: mqttUrl, clientId: vin, clean: false, reconnect: false });
    vehicle.on('message', (m) => {
      const parsed = parseMessage(m.payload);
      if (parsed.ok && parsed.message.type === 'job.notify') notified.push(parsed.message);
    });
    await vehicle.subscribe(`ota/${vin}/command`, { qos: 1 });

    const created = await json('POST', '/api/v1/campaigns', { name: 'e2e', artifact: sha256, target: { vins: [vin] } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    events = openEvents(`${base}/api/v1/campaigns/${id}/events`, cert.cert, auth);
    const stream = events;
    await stream.until(() => stream.events.length >= 1, 'the snapshot');
    assert.equal(stream.events[0]?.event, 'snapshot');
    assert.equal((stream.events[0]?.data as { state?: string } | undefined)?.state, 'DRAFT');

    const started = await json('POST', `/api/v1/campaigns/${id}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal((await json('POST', `/api/v1/campaigns/${id}/start`)).body.error.code, 'OTA_ERR_INVALID_STATE');
    const notify = await until('job.notify', () => notified[0]);
    const { url } = notify.manifest.manifest;
    assert.ok(url.startsWith(`${base}/artifacts/${sha256}?`), url);

    // Download as an agent resumes: two ranges, the second conditional on the ETag of the first.
    const first = await fetchUrl(url, { ca: cert.cert, headers: { range: 'bytes=0-65535' } });
    assert.equal(first.status, 206);
    const etag = String(first.headers.etag);
    assert.equal(etag, `"${sha256}"`);
    const rest = await fetchUrl(url, { ca: cert.cert, headers: { range: 'bytes=65536-', 'if-range': etag } });
    assert.equal(rest.status, 206);
    assert.equal(
      createHash('sha256')
        .update(Buffer.concat([first.body, rest.body]))
        .digest('hex'),
      sha256,
    );
    const forged = await fetchUrl(
      url.replace(/exp=(\d+)/, (_m, e: string) => `exp=${Number(e) + 1}`),
      { ca: cert.cert },
    );
    assert.equal(forged.status, 403);
    assert.equal(JSON.parse(forged.body.toString()).error.code, 'OTA_ERR_URL_SIGNATURE');
    const notModified = await fetchUrl(url, { ca: cert.cert, headers: { 'if-none-match': etag } });
    assert.equal(notModified.status, 304);

    const status = (seq: number, body: Record<string, unknown>) =>
      encodeMessage(
        createMessage(
          'job.status',
          { jobId: notify.jobId, executionNumber: notify.executionNumber, seq, ...body } as never,
          {
            ts: Date.now(),
          },
        ),
      );
    await vehicle.publish(
      `ota/${vin}/status`,
      status(1, { status: 'IN_PROGRESS', step: 'DOWNLOADING', progress: 50 }),
      {
        qos: 1,
      },
    );
    await vehicle.publish(`ota/${vin}/status`, status(2, { status: 'SUCCEEDED', installedVersion: '2.0.0' }), {
      qos: 1,
    });

    await stream.until(
      () => stream.events.some((e) => e.event === 'campaign.state' && (e.data as { to?: string }).to === 'COMPLETED'),
      'the campaign to complete on the event stream',
    );
    const statuses = stream.events
      .filter((e) => e.event === 'execution')
      .map((e) => (e.data as { status: string }).status);
    assert.ok(statuses.includes('SUCCEEDED'), statuses.join(','));
    const lastCounts = stream.events.filter((e) => e.event === 'counts').at(-1)?.data as {
      counts?: Record<string, number>;
    };
    assert.equal(lastCounts.counts?.SUCCEEDED, 1);

    const executions = await json('GET', `/api/v1/campaigns/${id}/executions?status=SUCCEEDED`);
    assert.equal(executions.status, 200);
    assert.deepEqual(
      executions.body.items.map((e: { vin: string }) => e.vin),
      [vin],
    );
    const history = await json('GET', `/api/v1/campaigns/${id}/executions/${vin}/history`);
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.transitions.map((tr: { to: string }) => tr.to).slice(-1), ['SUCCEEDED']);
    assert.equal((await json('GET', `/api/v1/vehicles/${vin}`)).body.installedVersion, '2.0.0');
    const stats = await json('GET', '/api/v1/stats');
    assert.equal(stats.body.mqttConnected, true);
    assert.ok(stats.body.statusApplied >= 2);
    assert.equal((await json('GET', '/api/v1/campaigns/nope')).body.error.code, 'OTA_ERR_NOT_FOUND');
  } finally {
    events?.destroy();
    await vehicle?.end({ force: true }).catch(() => undefined);
    await server?.close();
    await backend?.close();
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
