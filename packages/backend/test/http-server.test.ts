// The HTTP layer on real sockets: HTTPS with a self-signed certificate on 127.0.0.1 port 0, a plain-HTTP listener
// next to it, the ranged download over TLS, and the SSE stream (snapshot, live updates, heartbeat, clean close).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RunningHttpServer, startHttpServer } from '../src/http/server.js';
import {
  FakeBackend,
  fetchUrl as fetchWithCa,
  openEvents as openEventsWithCa,
  selfSignedCert,
} from './http-support.js';

const VIN = 'WVWZZZ1JZXW000001';
const VIN2 = 'WVWZZZ1JZXW000002';
const cert = selfSignedCert();

let service: FakeBackend;
let server: RunningHttpServer | undefined;
/** An admin token's header, sent with every request of this file. */
let auth: Record<string, string> = {};
const fetchUrl = (url: string, options: Parameters<typeof fetchWithCa>[1] = {}) =>
  fetchWithCa(url, { ca: cert?.cert, ...options, headers: { ...auth, ...options.headers } });
const openEvents = (url: string) => openEventsWithCa(url, cert?.cert, auth);

before(async () => {
  if (cert === undefined) return;
  service = new FakeBackend();
  auth = (await service.bearer('admin')).headers;
  server = await startHttpServer({
    service,
    tls: cert,
    host: '127.0.0.1',
    port: 0,
    plainHttp: { port: 0 },
    sseHeartbeatMs: 100,
    sseMaxBufferedBytes: 64 * 1024,
  });
});

after(async () => {
  await server?.close();
  service?.close();
});

test('HTTPS and the plain listener serve the same app', async (t) => {
  if (server === undefined) return t.skip('openssl not available to make a test certificate');
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const health = await fetchUrl(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  assert.ok(server.plainUrl);
  const plain = await fetchUrl(`${server.plainUrl}/api/v1/nothing`);
  assert.equal(plain.status, 404);
  assert.equal(JSON.parse(plain.body.toString()).error.code, 'OTA_ERR_ROUTE_NOT_FOUND');
});

test('login: the session cookie is Secure over HTTPS, not on the plain listener; no token → 401 on both', async (t) => {
  if (server === undefined || server.plainUrl === undefined) return t.skip('openssl not available');
  const { token } = await service.bearer('viewer');
  const login = (base: string) =>
    fetchWithCa(`${base}/api/v1/session`, {
      method: 'POST',
      ca: cert?.cert,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ token })),
    });
  const overTls = await login(server.url);
  assert.equal(overTls.status, 200, overTls.body.toString());
  assert.match(String(overTls.headers['set-cookie']), /; Secure/);
  const plain = await login(server.plainUrl);
  assert.equal(plain.status, 200);
  assert.doesNotMatch(String(plain.headers['set-cookie']), /Secure/);
  for (const base of [server.url, server.plainUrl]) {
    const anonymous = await fetchWithCa(`${base}/api/v1/campaigns`, { ca: cert?.cert });
    assert.equal(anonymous.status, 401);
    assert.equal(JSON.parse(anonymous.body.toString()).error.code, 'OTA_ERR_UNAUTHORIZED');
  }
});

test('upload over TLS, then a resumed download with Range and If-Range', async (t) => {
  if (server === undefined) return t.skip('openssl not available to make a test certificate');
  const bytes = Buffer.alloc(256 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
  const up = await fetchUrl(`${server.url}/api/v1/artifacts?name=big&version=2.0.0&hardwareIds=hw-a`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  assert.equal(up.status, 201, up.body.toString());
  const { sha256 } = JSON.parse(up.body.toString()) as { sha256: string };
  const url = `${server.url}${service.signArtifactUrl(sha256, 60_000)}`;
  const head = await fetchUrl(url, { method: 'HEAD' });
  assert.equal(head.headers['content-length'], String(bytes.length));
  const firstPart = await fetchUrl(url, { headers: { range: 'bytes=0-99999' } });
  assert.equal(firstPart.status, 206);
  const rest = await fetchUrl(url, { headers: { range: 'bytes=100000-', 'if-range': String(head.headers.etag) } });
  assert.equal(rest.status, 206);
  assert.equal(rest.headers['content-range'], `bytes 100000-${bytes.length - 1}/${bytes.length}`);
  assert.deepEqual(Buffer.concat([firstPart.body, rest.body]), bytes);
  const suffix = await fetchUrl(url, { headers: { range: 'bytes=-16' } });
  assert.deepEqual(suffix.body, bytes.subarray(bytes.length - 16));
  const bad = await fetchUrl(url, { headers: { range: `bytes=${bytes.length}-` } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers['content-range'], `bytes */${bytes.length}`);
});

test('an upload cut off mid-body and an event stream that stops reading do not take the server down', async (t) => {
  if (server === undefined) return t.skip('openssl not available to make a test certificate');
  const base = server.url;
  // The client promises 1 MB, sends 64 KiB and hangs up.
  await new Promise<void>((resolve) => {
    const req = httpsRequest(new URL(`${base}/api/v1/artifacts?name=cut&version=1.0.0&hardwareIds=hw-a`), {
      method: 'POST',
      ca: cert?.cert,
      headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(1_000_000) },
    });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.write(Buffer.alloc(64 * 1024), () => setTimeout(() => req.destroy(), 50));
  });
  assert.equal([...service.artifacts.values()].filter((a) => a.name === 'cut').length, 0);
  assert.equal((await fetchUrl(`${base}/healthz`)).status, 200);

  // A client that never reads its event stream is dropped once 64 KiB are queued for it.
  const sha256 = [...service.artifacts.keys()][0] as string;
  const { id } = await service.createCampaign({ name: 'stuck', artifact: sha256, target: { vins: [VIN] } });
  const before = service.listeners.get(id)?.size ?? 0;
  let paused: IncomingMessage | undefined;
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(
      new URL(`${base}/api/v1/campaigns/${id}/events`),
      { ca: cert?.cert, headers: auth },
      (res) => {
        paused = res;
        res.pause();
        resolve();
      },
    );
    req.on('error', reject);
    req.end();
  });
  const deadline = Date.now() + 10_000;
  while ((service.listeners.get(id)?.size ?? 0) === before && Date.now() < deadline) await sleep(10);
  assert.equal(service.listeners.get(id)?.size, before + 1);
  const big = 'x'.repeat(8 * 1024);
  for (let i = 0; i < 2000 && (service.listeners.get(id)?.size ?? 0) > before; i++) {
    service.emit({
      type: 'campaign.state',
      campaignId: id,
      at: 0,
      from: 'RUNNING',
      to: 'RUNNING',
      cause: 'test',
      reason: big,
    });
    if (i % 50 === 0) await sleep(5);
  }
  assert.equal(service.listeners.get(id)?.size ?? 0, before, 'the stuck stream was dropped');
  paused?.destroy();
});

test('SSE: a snapshot first, then live updates, heartbeats, and the stream ends when the server closes', async (t) => {
  if (server === undefined) return t.skip('openssl not available to make a test certificate');
  const up = await fetchUrl(`${server.url}/api/v1/artifacts?name=fw&version=1.0.0&hardwareIds=hw-a`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.from('firmware'),
  });
  const { sha256 } = JSON.parse(up.body.toString()) as { sha256: string };
  const created = await fetchUrl(`${server.url}/api/v1/campaigns`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ name: 'live', artifact: sha256, target: { vins: [VIN, VIN2] } })),
  });
  const { id } = JSON.parse(created.body.toString()) as { id: string };

  const stream = openEvents(`${server.url}/api/v1/campaigns/${id}/events`);
  const res = await stream.opened;
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/event-stream/);
  await stream.until(() => stream.events.length >= 1, 'the snapshot');
  assert.equal(stream.events[0]?.event, 'snapshot');
  assert.equal((stream.events[0]?.data as { state?: string } | undefined)?.state, 'DRAFT');

  const started = await fetchUrl(`${server.url}/api/v1/campaigns/${id}/start`, { method: 'POST' });
  assert.equal(started.status, 200);
  await stream.until(() => stream.events.some((e) => e.event === 'campaign.state'), 'the start event');
  service.report(id, VIN, 'SUCCEEDED');
  await stream.until(() => stream.events.some((e) => e.event === 'counts'), 'a counts event');
  const counts = stream.events.find((e) => e.event === 'counts')?.data as { counts: Record<string, number> };
  assert.equal(counts.counts.SUCCEEDED, 1);
  assert.equal(counts.counts.QUEUED, 1);
  const execution = stream.events.find((e) => e.event === 'execution')?.data as { vin: string; status: string };
  assert.deepEqual([execution.vin, execution.status], [VIN, 'SUCCEEDED']);
  await stream.until(() => stream.comments.includes('heartbeat'), 'a heartbeat');

  // A second client that hangs up is unsubscribed.
  const other = openEvents(`${server.url}/api/v1/campaigns/${id}/events`);
  await other.until(() => other.events.length >= 1, 'the second snapshot');
  assert.equal(service.listeners.get(id)?.size, 2);
  other.destroy();
  const deadline = Date.now() + 10_000;
  while ((service.listeners.get(id)?.size ?? 0) > 1 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal(service.listeners.get(id)?.size, 1);

  // Closing the server ends the open stream instead of waiting for the client.
  await server.close();
  await stream.until(() => stream.ended, 'the end of the stream');
  assert.equal(service.listeners.get(id)?.size ?? 0, 0);
});
