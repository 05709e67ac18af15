// API authentication over the HTTP app (fastify inject, in-memory service with the real token logic): who may call
// what, the 401/403 shapes, revocation, the dashboard's session cookie and what stays open without a token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildBackendApp } from '../src/http/app.js';
import { FakeBackend } from './http-support.js';

const VIN = 'WVWZZZ1JZXW000001';
const REGISTRATION = { vin: VIN, model: 'model-x', hardwareId: 'hw-a' };

let service: FakeBackend;
let app: FastifyInstance;
let admin: { authorization: string };
let sha256: string;

function assertError(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code, res.body);
  assert.equal(typeof body.error.message, 'string');
}

/** The session cookie's `name=value` from a login answer. */
function cookieOf(res: LightMyRequestResponse): string {
  const header = String(res.headers['set-cookie']);
  const pair = header.split(';')[0] ?? '';
  assert.match(pair, /^otalink_session=[A-Za-z0-9_-]{43}$/);
  return pair;
}

before(async () => {
  service = new FakeBackend();
  ({ app } = await buildBackendApp({ service }));
  admin = (await service.bearer('admin')).headers;
  const up = await app.inject({
    method: 'POST',
    url: '/api/v1/artifacts?name=fw&version=1.0.0&hardwareIds=hw-a',
    payload: Buffer.from('firmware'),
    headers: { ...admin, 'content-type': 'application/octet-stream' },
  });
  assert.equal(up.statusCode, 201, up.body);
  sha256 = up.json().sha256;
});

after(async () => {
  await app.close();
  service.close();
});

describe('bearer tokens', () => {
  test('no token: 401 OTA_ERR_UNAUTHORIZED with WWW-Authenticate, for reads and writes', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/vehicles'],
      ['GET', '/api/v1/campaigns'],
      ['GET', '/api/v1/stats'],
      ['POST', '/api/v1/campaigns/c1/cancel'],
      ['GET', '/api/v1/tokens'],
    ] as const) {
      const res = await app.inject({ method, url });
      assertError(res, 401, 'OTA_ERR_UNAUTHORIZED');
      assert.match(String(res.headers['www-authenticate']), /^Bearer /);
    }
  });

  test('a refused upload is refused before its body is stored', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/artifacts?name=evil&version=6.6.6&hardwareIds=hw-a',
      payload: Buffer.from('not firmware'),
      headers: { 'content-type': 'application/octet-stream' },
    });
    assertError(res, 401, 'OTA_ERR_UNAUTHORIZED');
    assert.equal(service.artifacts.size, 1);
  });

  test('bad tokens: 401 (malformed, unknown id, right id with a wrong secret, wrong scheme)', async () => {
    const { token } = await service.bearer('admin');
    const id = token.slice(4, 20);
    const wrongSecret = `otk_${id}.${'A'.repeat(43)}`;
    const unknownId = `otk_${'0'.repeat(16)}.${token.slice(21)}`;
    for (const authorization of [
      'Bearer nonsense',
      `Bearer ${wrongSecret}`,
      `Bearer ${unknownId}`,
      `Bearer ${token}x`,
      `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`,
      'Bearer',
    ]) {
      const res = await app.inject({ url: '/api/v1/vehicles', headers: { authorization } });
      assertError(res, 401, 'OTA_ERR_UNAUTHORIZED');
    }
    const good = await app.inject({ url: '/api/v1/vehicles', headers: { authorization: `bearer  ${token}` } });
    assert.equal(good.statusCode, 200, 'the scheme is case-insensitive');
  });

  test('viewer reads but may not write: 403 OTA_ERR_FORBIDDEN and nothing changes', async () => {
    const viewer = (await service.bearer('viewer')).headers;
    assert.equal((await app.inject({ url: '/api/v1/vehicles', headers: viewer })).statusCode, 200);
    assert.equal((await app.inject({ url: `/api/v1/artifacts/${sha256}`, headers: viewer })).statusCode, 200);
    const write = await app.inject({ method: 'POST', url: '/api/v1/vehicles', payload: REGISTRATION, headers: viewer });
    assertError(write, 403, 'OTA_ERR_FORBIDDEN');
    assert.match(write.json().error.message, /viewer.*needs operator/);
    assert.equal(service.vehicles.size, 0);
    const campaign = await app.inject({
      method: 'POST',
      url: '/api/v1/campaigns',
      payload: { name: 'x', artifact: sha256, target: { vins: [VIN] } },
      headers: viewer,
    });
    assertError(campaign, 403, 'OTA_ERR_FORBIDDEN');
    assert.equal(service.campaigns.size, 0);
  });

  test('operator writes but may not manage tokens; admin may', async () => {
    const operator = (await service.bearer('operator')).headers;
    const reg = await app.inject({ method: 'POST', url: '/api/v1/vehicles', payload: REGISTRATION, headers: operator });
    assert.equal(reg.statusCode, 201, reg.body);
    assertError(await app.inject({ url: '/api/v1/tokens', headers: operator }), 403, 'OTA_ERR_FORBIDDEN');
    const create = await app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'ci', role: 'viewer' },
      headers: operator,
    });
    assertError(create, 403, 'OTA_ERR_FORBIDDEN');
    assert.equal((await app.inject({ url: '/api/v1/tokens', headers: admin })).statusCode, 200);
  });

  test('tokens: create shows the secret once, list never, revoke refuses it from then on', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'ci pipeline', role: 'operator' },
      headers: admin,
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.headers['cache-control'], 'no-store');
    const { token, info } = created.json() as { token: string; info: { id: string; role: string } };
    assert.match(token, /^otk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    assert.equal(info.role, 'operator');
    const bearer = { authorization: `Bearer ${token}` };
    assert.equal((await app.inject({ url: '/api/v1/campaigns', headers: bearer })).statusCode, 200);

    const list = await app.inject({ url: '/api/v1/tokens', headers: admin });
    assert.ok(!list.body.includes(token.slice(21)), 'the list holds no secret');
    assert.ok(!list.body.includes('secretHash'), 'nor its hash');
    assert.ok(list.json().items.some((t: { id: string }) => t.id === info.id));
    assert.ok(![...service.tokenRecords.values()].some((r) => JSON.stringify(r).includes(token.slice(21))));

    const revoked = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${info.id}`, headers: admin });
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal(typeof revoked.json().revokedAt, 'number');
    assertError(await app.inject({ url: '/api/v1/campaigns', headers: bearer }), 401, 'OTA_ERR_UNAUTHORIZED');
    const again = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${info.id}`, headers: admin });
    assert.equal(again.json().revokedAt, revoked.json().revokedAt, 'revoking twice keeps the first time');
    const unknown = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${'f'.repeat(16)}`, headers: admin });
    assertError(unknown, 404, 'OTA_ERR_NOT_FOUND');
    const badRole = await app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'x', role: 'root' },
      headers: admin,
    });
    assertError(badRole, 400, 'OTA_ERR_VALIDATION');
  });
});

test('a token created with expiresInSeconds is refused from then on, as a bearer and through its session', async () => {
  let clock = 5_000_000;
  const fake = new FakeBackend();
  fake.now = clock;
  const { app: timed } = await buildBackendApp({ service: fake, now: () => clock });
  try {
    const admin = (await fake.bearer('admin')).headers;
    const bad = await timed.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'too short', role: 'viewer', expiresInSeconds: 59 },
      headers: admin,
    });
    assertError(bad, 400, 'OTA_ERR_VALIDATION');
    assert.equal(bad.json().error.field, 'body.expiresInSeconds');
    const res = await timed.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'ci job', role: 'viewer', expiresInSeconds: 600 },
      headers: admin,
    });
    assert.equal(res.statusCode, 201, res.body);
    const { token, info } = res.json() as { token: string; info: { expiresAt?: number } };
    assert.equal(info.expiresAt, clock + 600_000);
    const bearer = { authorization: `Bearer ${token}` };
    const cookie = cookieOf(await timed.inject({ method: 'POST', url: '/api/v1/session', payload: { token } }));
    assert.equal((await timed.inject({ url: '/api/v1/vehicles', headers: bearer })).statusCode, 200);
    assert.equal((await timed.inject({ url: '/api/v1/vehicles', headers: { cookie } })).statusCode, 200);
    clock += 600_000;
    fake.now = clock;
    assertError(await timed.inject({ url: '/api/v1/vehicles', headers: bearer }), 401, 'OTA_ERR_UNAUTHORIZED');
    assertError(await timed.inject({ url: '/api/v1/vehicles', headers: { cookie } }), 401, 'OTA_ERR_UNAUTHORIZED');
    const listed = (await timed.inject({ url: '/api/v1/tokens', headers: admin })).json() as {
      items: Array<{ name: string; expiresAt?: number }>;
    };
    assert.equal(listed.items.find((t) => t.name === 'ci job')?.expiresAt, clock, 'still listed, for the record');
  } finally {
    await timed.close();
    fake.close();
  }
});

describe('open without a token', () => {
  test('health, OpenAPI, the dashboard page and signed artifact downloads', async () => {
    assert.equal((await app.inject('/healthz')).statusCode, 200);
    assert.equal((await app.inject('/openapi.json')).statusCode, 200);
    assert.equal((await app.inject('/')).statusCode, 200);
    assert.equal((await app.inject('/dashboard.js')).statusCode, 200);
    assert.equal((await app.inject('/api/v1/signing-keys')).statusCode, 200, 'public keys, for provisioning');
    const download = await app.inject(service.signArtifactUrl(sha256, 60_000));
    assert.equal(download.statusCode, 200);
    assert.equal(download.body, 'firmware');
    assertError(await app.inject(`/artifacts/${sha256}`), 403, 'OTA_ERR_URL_SIGNATURE');
  });

  test('the OpenAPI document declares the schemes, the open routes and the roles', async () => {
    const doc = (await app.inject('/openapi.json')).json() as {
      components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string }> };
      security: unknown[];
      paths: Record<string, Record<string, { security?: unknown[]; description?: string }>>;
    };
    assert.equal(doc.components.securitySchemes.bearerAuth?.scheme, 'bearer');
    assert.equal(doc.components.securitySchemes.sessionCookie?.in, 'cookie');
    assert.deepEqual(doc.security, [{ bearerAuth: [] }, { sessionCookie: [] }]);
    assert.deepEqual(doc.paths['/healthz']?.get?.security, []);
    assert.deepEqual(doc.paths['/artifacts/{sha256}']?.get?.security, []);
    assert.deepEqual(doc.paths['/api/v1/session']?.post?.security, []);
    assert.match(String(doc.paths['/api/v1/vehicles']?.get?.description), /role `viewer`/);
    assert.match(String(doc.paths['/api/v1/campaigns/{id}/cancel']?.post?.description), /role `operator`/);
    assert.match(String(doc.paths['/api/v1/tokens']?.post?.description), /role `admin`/);
  });
});

describe('dashboard sessions', () => {
  async function login(token: string): Promise<LightMyRequestResponse> {
    return app.inject({ method: 'POST', url: '/api/v1/session', payload: { token } });
  }

  test('login sets an HttpOnly SameSite=Strict cookie that the API accepts; logout ends it', async () => {
    const { token } = await service.bearer('operator');
    const res = await login(token);
    assert.equal(res.statusCode, 200, res.body);
    const setCookie = String(res.headers['set-cookie']);
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Strict/);
    assert.match(setCookie, /; Path=\//);
    assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP (inject): no Secure flag');
    assert.ok(!setCookie.includes(token), 'the cookie is not the token');
    const cookie = cookieOf(res);
    const me = await app.inject({ url: '/api/v1/session', headers: { cookie } });
    assert.equal(me.statusCode, 200, me.body);
    assert.equal(me.json().via, 'session');
    assert.equal(me.json().token.role, 'operator');
    assert.equal((await app.inject({ url: '/api/v1/campaigns', headers: { cookie } })).statusCode, 200);
    const sameSite = await app.inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: REGISTRATION,
      headers: { cookie, origin: 'http://localhost:80', host: 'localhost:80' },
    });
    assert.equal(sameSite.statusCode, 201, sameSite.body);

    const out = await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie } });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers['set-cookie']), /^otalink_session=; .*Max-Age=0/);
    assertError(await app.inject({ url: '/api/v1/campaigns', headers: { cookie } }), 401, 'OTA_ERR_UNAUTHORIZED');
  });

  test('a bad token does not log in; a revoked token ends its sessions', async () => {
    assertError(await login('otk_0000000000000000.nope'), 401, 'OTA_ERR_UNAUTHORIZED');
    assertError(await app.inject({ url: '/api/v1/session' }), 401, 'OTA_ERR_UNAUTHORIZED');
    const { token } = await service.bearer('viewer');
    const cookie = cookieOf(await login(token));
    assert.equal((await app.inject({ url: '/api/v1/vehicles', headers: { cookie } })).statusCode, 200);
    const id = token.slice(4, 20);
    await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: admin });
    assertError(await app.inject({ url: '/api/v1/vehicles', headers: { cookie } }), 401, 'OTA_ERR_UNAUTHORIZED');
    const forged = `otalink_session=${'A'.repeat(43)}`;
    assertError(
      await app.inject({ url: '/api/v1/vehicles', headers: { cookie: forged } }),
      401,
      'OTA_ERR_UNAUTHORIZED',
    );
  });

  test('a session keeps its role, and cross-site writes with the cookie are refused', async () => {
    const viewerCookie = cookieOf(await login((await service.bearer('viewer')).token));
    const write = await app.inject({
      method: 'POST',
      url: '/api/v1/campaigns/c1/cancel',
      headers: { cookie: viewerCookie },
    });
    assertError(write, 403, 'OTA_ERR_FORBIDDEN');
    const adminCookie = cookieOf(await login((await service.bearer('admin')).token));
    const crossSite = await app.inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: { ...REGISTRATION, vin: 'WVWZZZ1JZXW000009' },
      headers: { cookie: adminCookie, origin: 'https://evil.example', host: 'localhost:80' },
    });
    assertError(crossSite, 403, 'OTA_ERR_FORBIDDEN');
    const fetchSite = await app.inject({
      method: 'POST',
      url: '/api/v1/vehicles',
      payload: { ...REGISTRATION, vin: 'WVWZZZ1JZXW000009' },
      headers: { cookie: adminCookie, 'sec-fetch-site': 'cross-site' },
    });
    assertError(fetchSite, 403, 'OTA_ERR_FORBIDDEN');
    assert.ok(!service.vehicles.has('WVWZZZ1JZXW000009'));
  });

  test('sessions expire', async () => {
    let clock = 1_000_000;
    const fake = new FakeBackend();
    const { app: short } = await buildBackendApp({ service: fake, sessionTtlMs: 60_000, now: () => clock });
    try {
      const { token } = await fake.bearer('viewer');
      const res = await short.inject({ method: 'POST', url: '/api/v1/session', payload: { token } });
      const cookie = cookieOf(res);
      assert.match(String(res.headers['set-cookie']), /Max-Age=60/);
      assert.equal((await short.inject({ url: '/api/v1/vehicles', headers: { cookie } })).statusCode, 200);
      clock += 60_001;
      assertError(await short.inject({ url: '/api/v1/vehicles', headers: { cookie } }), 401, 'OTA_ERR_UNAUTHORIZED');
    } finally {
      await short.close();
      fake.close();
    }
  });
});

test('auth: false opens the API, explicitly, with a warning', async () => {
  const fake = new FakeBackend();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const { app: open } = await buildBackendApp({ service: fake, auth: false });
  try {
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(
      warnings.some((w) => /authentication is OFF/.test(w)),
      warnings.join('\n'),
    );
    assert.equal((await open.inject('/api/v1/vehicles')).statusCode, 200);
  } finally {
    process.off('warning', onWarning);
    await open.close();
    fake.close();
  }
});
