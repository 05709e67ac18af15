// The HTTP app without sockets (fastify inject) over an in-memory service: every route's happy path and refusals,
// the error shape, the signed ranged download, the dashboard and the OpenAPI document's completeness.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { signArtifactPath } from '../src/artifacts/signed-url.js';
import { buildBackendApp } from '../src/http/app.js';
import { FakeBackend } from './http-support.js';

const VIN = 'WVWZZZ1JZXW000001';
const VIN2 = 'WVWZZZ1JZXW000002';
const BYTES = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

let service: FakeBackend;
let app: FastifyInstance;
let routes: string[];
let sha256: string;
/** An admin token's header, sent with every request of this file unless a test says otherwise. */
let auth: { authorization: string };

function inject(options: InjectOptions | string): Promise<LightMyRequestResponse> {
  const o: InjectOptions = typeof options === 'string' ? { url: options } : options;
  return app.inject({ ...o, headers: { ...auth, ...o.headers } });
}

function assertError(res: LightMyRequestResponse, status: number, code: string, field?: string): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as { error: { code: string; message: string; field?: string } };
  assert.equal(body.error.code, code, res.body);
  assert.equal(typeof body.error.message, 'string');
  if (field !== undefined) assert.equal(body.error.field, field, res.body);
}

function upload(query: string, payload: Buffer = BYTES, contentType = 'application/octet-stream') {
  return inject({
    method: 'POST',
    url: `/api/v1/artifacts?${query}`,
    payload,
    headers: { 'content-type': contentType },
  });
}

before(async () => {
  service = new FakeBackend();
  ({ app, routes } = await buildBackendApp({ service, uploadLimitBytes: 4096 }));
  auth = (await service.bearer('admin')).headers;
  const res = await upload('name=fw&version=1.2.3&hardwareIds=hw-a,hw-b');
  assert.equal(res.statusCode, 201, res.body);
  sha256 = (res.json() as { sha256: string }).sha256;
});

after(async () => {
  await app.close();
  service.close();
});

describe('vehicles', () => {
  test('POST /vehicles registers, GET lists and reads one', async () => {
    const created = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: {
        vin: VIN,
        model: 'model-x',
        hardwareId: 'hw-a',
        installedVersion: '1.0.0',
        attributes: { color: 'red' },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().vin, VIN);
    assert.deepEqual(created.json().attributes, { color: 'red' });
    const list = await inject('/api/v1/vehicles?limit=10');
    assert.equal(list.statusCode, 200);
    assert.deepEqual(
      list.json().items.map((v: { vin: string }) => v.vin),
      [VIN],
    );
    const one = await inject(`/api/v1/vehicles/${VIN}`);
    assert.equal(one.statusCode, 200);
    assert.equal(one.json().installedVersion, '1.0.0');
    assert.equal(one.json().online, false);
  });

  test('refusals: schema, service validation, unknown VIN, bad query', async () => {
    const noModel = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: { vin: VIN, hardwareId: 'h' },
    });
    assertError(noModel, 400, 'OTA_ERR_VALIDATION', 'body.model');
    const badPattern = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: { vin: VIN, model: 'no spaces', hardwareId: 'h' },
    });
    assertError(badPattern, 400, 'OTA_ERR_VALIDATION', 'body.model');
    const shortVin = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: { vin: 'SHORT', model: 'm', hardwareId: 'h' },
    });
    assertError(shortVin, 400, 'OTA_ERR_VALIDATION', 'vin');
    assertError(await inject(`/api/v1/vehicles/${VIN2}`), 404, 'OTA_ERR_NOT_FOUND');
    assertError(await inject('/api/v1/vehicles/not%20a%20vin'), 400, 'OTA_ERR_VALIDATION', 'params.vin');
    assertError(await inject('/api/v1/vehicles?limit=0'), 400, 'OTA_ERR_VALIDATION', 'query.limit');
    assertError(await inject('/api/v1/vehicles?limit=abc'), 400, 'OTA_ERR_VALIDATION', 'query.limit');
  });

  test('malformed and wrongly typed bodies are JSON 400/415, never a crash', async () => {
    const badJson = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: '{"vin":',
      headers: { 'content-type': 'application/json' },
    });
    assertError(badJson, 400, 'OTA_ERR_VALIDATION', 'body');
    const empty = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: '',
      headers: { 'content-type': 'application/json' },
    });
    assertError(empty, 400, 'OTA_ERR_VALIDATION');
    const xml = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: '<vin/>',
      headers: { 'content-type': 'application/xml' },
    });
    assertError(xml, 415, 'OTA_ERR_UNSUPPORTED_MEDIA_TYPE');
    const array = await inject({ method: 'POST', url: '/api/v1/vehicles', payload: [1, 2] });
    assertError(array, 400, 'OTA_ERR_VALIDATION');
    const proto = await inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: '{"__proto__":{"x":1},"vin":"x"}',
      headers: { 'content-type': 'application/json' },
    });
    assertError(proto, 400, 'OTA_ERR_VALIDATION');
  });
});

describe('artifacts', () => {
  test('upload streams the bytes to the service; list and metadata read them back', async () => {
    const info = await inject(`/api/v1/artifacts/${sha256}`);
    assert.equal(info.statusCode, 200);
    assert.equal(info.json().size, BYTES.length);
    assert.deepEqual(info.json().hardwareIds, ['hw-a', 'hw-b']);
    const list = await inject('/api/v1/artifacts');
    assert.equal(list.statusCode, 200);
    assert.equal(list.json().items.length, 1);
  });

  test('signing keys: the public keys as a list (the real keyring is checked end to end by otalink artifact keys)', async () => {
    const res = await inject('/api/v1/signing-keys');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { items: [] });
  });

  test('upload refusals: media type, missing metadata, bad hardware id, size limit, hash mismatch', async () => {
    assertError(
      await upload('name=a&version=1&hardwareIds=h', BYTES, 'application/json'),
      415,
      'OTA_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    assertError(await upload('version=1&hardwareIds=h'), 400, 'OTA_ERR_VALIDATION', 'query.name');
    assertError(
      await upload('name=a&version=1&hardwareIds=h,bad%20id'),
      400,
      'OTA_ERR_VALIDATION',
      'query.hardwareIds',
    );
    assertError(await upload('name=a&version=1&hardwareIds=h,'), 400, 'OTA_ERR_VALIDATION', 'query.hardwareIds');
    assertError(await upload('name=a&version=1&hardwareIds=h', Buffer.alloc(5000)), 413, 'OTA_ERR_BODY_TOO_LARGE');
    assertError(
      await upload(`name=a&version=1&hardwareIds=h&sha256=${'0'.repeat(64)}`),
      400,
      'OTA_ERR_VALIDATION',
      'sha256',
    );
    assert.equal(service.artifacts.size, 1, 'no refused upload was stored');
  });

  test('the size limit holds without a Content-Length (chunked body)', async () => {
    const { Readable } = await import('node:stream');
    const res = await inject({
      method: 'POST',
      url: '/api/v1/artifacts?name=a&version=1&hardwareIds=h',
      payload: Readable.from([Buffer.alloc(3000), Buffer.alloc(3000)]),
      headers: { 'content-type': 'application/octet-stream' },
    });
    assertError(res, 413, 'OTA_ERR_BODY_TOO_LARGE');
  });

  test('unknown and malformed hashes', async () => {
    assertError(await inject(`/api/v1/artifacts/${'a'.repeat(64)}`), 404, 'OTA_ERR_NOT_FOUND');
    assertError(await inject('/api/v1/artifacts/XYZ'), 400, 'OTA_ERR_VALIDATION', 'params.sha256');
  });
});

describe('artifact download', () => {
  const url = () => service.signArtifactUrl(sha256, 60_000);
  const get = (headers: Record<string, string> = {}, method: InjectOptions['method'] = 'GET') =>
    inject({ method, url: url(), headers });

  test('whole file with the strong ETag and Accept-Ranges', async () => {
    const res = await get();
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, BYTES);
    assert.equal(res.headers.etag, `"${sha256}"`);
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['content-length'], String(BYTES.length));
  });

  test('ranges: first bytes, middle, open end, suffix', async () => {
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=400-499', 400, 499],
      ['bytes=990-', 990, 999],
      ['bytes=-10', 990, 999],
      ['bytes=995-5000', 995, 999],
    ];
    for (const [range, start, end] of cases) {
      const res = await get({ range });
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${BYTES.length}`, range);
      assert.equal(res.headers['content-length'], String(end - start + 1), range);
      assert.deepEqual(res.rawPayload, BYTES.subarray(start, end + 1), range);
    }
  });

  test('unsatisfiable range → 416 with the size; multiple ranges → the whole file', async () => {
    const res = await get({ range: 'bytes=1000-' });
    assertError(res, 416, 'OTA_ERR_RANGE_NOT_SATISFIABLE');
    assert.equal(res.headers['content-range'], `bytes */${BYTES.length}`);
    const multi = await get({ range: 'bytes=0-9,20-29' });
    assert.equal(multi.statusCode, 200);
    assert.equal(multi.rawPayload.length, BYTES.length);
  });

  test('If-None-Match → 304; If-Range with the ETag keeps the range, another one gets the whole file', async () => {
    const notModified = await get({ 'if-none-match': `"${sha256}"` });
    assert.equal(notModified.statusCode, 304);
    assert.equal(notModified.rawPayload.length, 0);
    assert.equal((await get({ 'if-none-match': '"other"' })).statusCode, 200);
    const same = await get({ range: 'bytes=10-19', 'if-range': `"${sha256}"` });
    assert.equal(same.statusCode, 206);
    assert.deepEqual(same.rawPayload, BYTES.subarray(10, 20));
    const changed = await get({ range: 'bytes=10-19', 'if-range': '"somethingelse"' });
    assert.equal(changed.statusCode, 200);
    assert.equal(changed.rawPayload.length, BYTES.length);
  });

  test('HEAD gives the headers and no body', async () => {
    const res = await get({}, 'HEAD');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BYTES.length));
    assert.equal(res.headers.etag, `"${sha256}"`);
    assert.equal(res.rawPayload.length, 0);
    const ranged = await get({ range: 'bytes=0-9' }, 'HEAD');
    assert.equal(ranged.statusCode, 206);
    assert.equal(ranged.headers['content-range'], `bytes 0-9/${BYTES.length}`);
  });

  test('expired, forged, missing and foreign signatures are 403 with a code', async () => {
    const expired = signArtifactPath(service.secret, sha256, service.now - 1000);
    assertError(await inject(expired), 403, 'OTA_ERR_URL_EXPIRED', 'exp');
    const forged = url().replace(/sig=([A-Za-z0-9_-])/, (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`);
    assertError(await inject(forged), 403, 'OTA_ERR_URL_SIGNATURE', 'sig');
    const longer = url().replace(/exp=(\d+)/, (_m, e: string) => `exp=${Number(e) + 3600}`);
    assertError(await inject(longer), 403, 'OTA_ERR_URL_SIGNATURE');
    assertError(await inject(`/artifacts/${sha256}`), 403, 'OTA_ERR_URL_SIGNATURE');
    const otherKey = signArtifactPath(Buffer.alloc(32, 9), sha256, service.now + 60_000);
    assertError(await inject(otherKey), 403, 'OTA_ERR_URL_SIGNATURE');
    const otherHash = url().replace(sha256, 'b'.repeat(64));
    assertError(await inject(otherHash), 403, 'OTA_ERR_URL_SIGNATURE');
  });

  test('a correctly signed URL for an unknown artifact is 404', async () => {
    const unknown = signArtifactPath(service.secret, 'c'.repeat(64), service.now + 60_000);
    assertError(await inject(unknown), 404, 'OTA_ERR_NOT_FOUND');
  });
});

describe('campaigns', () => {
  let id: string;

  test('create, list, read', async () => {
    const created = await inject({
      method: 'POST',
      url: '/api/v1/campaigns',
      payload: { name: 'spring', artifact: sha256, target: { vins: [VIN, VIN2] } },
    });
    assert.equal(created.statusCode, 201, created.body);
    id = created.json().id;
    assert.equal(created.json().state, 'DRAFT');
    assert.equal(created.json().counts.SUCCEEDED, 0);
    const list = await inject('/api/v1/campaigns');
    assert.deepEqual(
      list.json().items.map((c: { id: string }) => c.id),
      [id],
    );
    assert.equal((await inject(`/api/v1/campaigns/${id}`)).json().name, 'spring');
  });

  test('create refusals name the field', async () => {
    const post = (payload: unknown) => inject({ method: 'POST', url: '/api/v1/campaigns', payload: payload as object });
    assertError(await post({ artifact: sha256, target: { vins: [VIN] } }), 400, 'OTA_ERR_VALIDATION', 'body.name');
    assertError(
      await post({ name: 'x', artifact: 'nothex', target: { vins: [VIN] } }),
      400,
      'OTA_ERR_VALIDATION',
      'body.artifact',
    );
    assertError(await post({ name: 'x', artifact: sha256, target: { vins: [] } }), 400, 'OTA_ERR_VALIDATION');
    assertError(
      await post({ name: 'x', artifact: 'd'.repeat(64), target: { vins: [VIN] } }),
      400,
      'OTA_ERR_VALIDATION',
      'artifact',
    );
    assertError(
      await post({ name: 'x', artifact: sha256, target: { vins: [VIN] }, maxRetries: -1 }),
      400,
      'OTA_ERR_VALIDATION',
      'body.maxRetries',
    );
  });

  test('start, pause, resume, cancel; a command in the wrong state is 409', async () => {
    const post = (action: string) => inject({ method: 'POST', url: `/api/v1/campaigns/${id}/${action}` });
    assertError(await post('pause'), 409, 'OTA_ERR_INVALID_STATE');
    assert.equal((await post('start')).json().state, 'RUNNING');
    assert.equal((await post('pause')).json().state, 'PAUSED');
    assert.equal((await post('resume')).json().state, 'RUNNING');
    assert.equal((await post('cancel')).json().state, 'CANCELED');
    assertError(await post('start'), 409, 'OTA_ERR_INVALID_STATE');
    assertError(await inject({ method: 'POST', url: '/api/v1/campaigns/nope/start' }), 404, 'OTA_ERR_NOT_FOUND');
    assertError(
      await inject({ method: 'POST', url: `/api/v1/campaigns/${id}/explode` }),
      404,
      'OTA_ERR_ROUTE_NOT_FOUND',
    );
  });

  test('executions with status filter, limit and cursor; one vehicle history', async () => {
    const all = await inject(`/api/v1/campaigns/${id}/executions`);
    assert.equal(all.statusCode, 200);
    assert.equal(all.json().items.length, 2);
    const first = await inject(`/api/v1/campaigns/${id}/executions?limit=1`);
    assert.equal(first.json().items.length, 1);
    const cursor = first.json().nextCursor as string;
    assert.equal(typeof cursor, 'string');
    const second = await inject(`/api/v1/campaigns/${id}/executions?limit=1&cursor=${encodeURIComponent(cursor)}`);
    assert.notEqual(second.json().items[0].vin, first.json().items[0].vin);
    const queued = await inject(`/api/v1/campaigns/${id}/executions?status=QUEUED`);
    assert.equal(queued.json().items.length, 2);
    assert.equal((await inject(`/api/v1/campaigns/${id}/executions?status=SUCCEEDED`)).json().items.length, 0);
    assertError(
      await inject(`/api/v1/campaigns/${id}/executions?status=DONE`),
      400,
      'OTA_ERR_VALIDATION',
      'query.status',
    );
    const history = await inject(`/api/v1/campaigns/${id}/executions/${VIN}/history`);
    assert.equal(history.statusCode, 200);
    assert.equal(history.json().executions[0].vin, VIN);
    assert.deepEqual(history.json().transitions, []);
    assertError(await inject(`/api/v1/campaigns/${id}/executions/ZZZZZZZZZZZZZZZZZ/history`), 404, 'OTA_ERR_NOT_FOUND');
  });

  test('events for an unknown campaign are a JSON 404, not a stream', async () => {
    assertError(await inject('/api/v1/campaigns/nope/events'), 404, 'OTA_ERR_NOT_FOUND');
    // HEAD must not open a stream that never ends (it would hang this inject).
    assert.equal((await inject({ method: 'HEAD', url: `/api/v1/campaigns/${id}/events` })).statusCode, 404);
  });
});

describe('system', () => {
  test('healthz and stats', async () => {
    const health = await inject('/healthz');
    assert.equal(health.statusCode, 200);
    assert.deepEqual(health.json(), { status: 'ok' });
    const stats = await inject('/api/v1/stats');
    assert.equal(stats.statusCode, 200);
    assert.equal(stats.json().vehicles, 1);
  });

  test('unknown routes and methods are JSON 404', async () => {
    assertError(await inject('/api/v1/nothing'), 404, 'OTA_ERR_ROUTE_NOT_FOUND');
    assertError(await inject({ method: 'DELETE', url: '/api/v1/vehicles' }), 404, 'OTA_ERR_ROUTE_NOT_FOUND');
    assertError(await inject('/../../etc/passwd'), 404, 'OTA_ERR_ROUTE_NOT_FOUND');
    assertError(await inject('/api/v1/vehicles/%E0%A4%A'), 400, 'OTA_ERR_BAD_REQUEST');
    assertError(await inject('/artifacts/%zz?exp=1&sig=2'), 400, 'OTA_ERR_BAD_REQUEST');
  });

  test('an unexpected service failure is a 500 that does not leak its message', async () => {
    service.explode = 'bug';
    const res = await inject('/api/v1/campaigns/c1');
    assertError(res, 500, 'OTA_ERR_INTERNAL');
    assert.doesNotMatch(res.body, /SQLITE|secret/);
    service.explode = 'store';
    const store = await inject('/api/v1/campaigns/c1');
    assertError(store, 500, 'OTA_ERR_STORE');
    assert.doesNotMatch(store.body, /SQLITE|secret/);
    assert.equal((await inject('/healthz')).statusCode, 200, 'the app still answers');
  });

  test('the dashboard is served at / with its script and stylesheet, from this origin only', async () => {
    const page = await inject('/');
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /dashboard\.js/);
    assert.doesNotMatch(page.body, /(src|href)="(https?:)?\/\//, 'no external CDN');
    const script = await inject('/dashboard.js');
    assert.equal(script.statusCode, 200);
    assert.match(String(script.headers['content-type']), /javascript/);
    assert.equal((await inject('/dashboard.css')).statusCode, 200);
  });
});

describe('OpenAPI', () => {
  test('/openapi.json documents every route the app serves, with its schemas', async () => {
    const res = await inject('/openapi.json');
    assert.equal(res.statusCode, 200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(doc.openapi, /^3\./);
    const expected: Array<[string, string]> = [
      ['get', '/healthz'],
      ['post', '/api/v1/vehicles'],
      ['get', '/api/v1/vehicles'],
      ['get', '/api/v1/vehicles/{vin}'],
      ['post', '/api/v1/artifacts'],
      ['get', '/api/v1/artifacts'],
      ['get', '/api/v1/artifacts/{sha256}'],
      ['get', '/artifacts/{sha256}'],
      ['head', '/artifacts/{sha256}'],
      ['post', '/api/v1/campaigns'],
      ['get', '/api/v1/campaigns'],
      ['get', '/api/v1/campaigns/{id}'],
      ['post', '/api/v1/campaigns/{id}/start'],
      ['post', '/api/v1/campaigns/{id}/pause'],
      ['post', '/api/v1/campaigns/{id}/resume'],
      ['post', '/api/v1/campaigns/{id}/cancel'],
      ['get', '/api/v1/campaigns/{id}/executions'],
      ['get', '/api/v1/campaigns/{id}/executions/{vin}/history'],
      ['get', '/api/v1/campaigns/{id}/events'],
      ['get', '/api/v1/stats'],
      ['post', '/api/v1/tokens'],
      ['get', '/api/v1/tokens'],
      ['delete', '/api/v1/tokens/{id}'],
      ['post', '/api/v1/session'],
      ['get', '/api/v1/session'],
      ['delete', '/api/v1/session'],
    ];
    for (const [method, path] of expected) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} missing from the OpenAPI document`);
    }
    // And the other way round: every route the app registered (static files and the document itself are hidden).
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)),
    );
    const registered = routes.map((r) => r.replace(/:([A-Za-z0-9]+)/g, '{$1}'));
    assert.ok(registered.length >= expected.length);
    for (const route of registered) assert.ok(documented.has(route), `${route} is served but not documented`);
    assert.equal(documented.size, new Set(registered).size, [...documented].join('\n'));
    const post = doc.paths['/api/v1/vehicles']?.post as {
      requestBody?: { content: Record<string, { schema: { required?: string[] } }> };
    };
    assert.deepEqual(post.requestBody?.content['application/json']?.schema.required?.sort(), [
      'hardwareId',
      'model',
      'vin',
    ]);
  });
});
