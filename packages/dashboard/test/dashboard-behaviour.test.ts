// The dashboard script run against a small fake DOM, fetch and EventSource (no browser on the test machine): it
// lists campaigns, follows the live ones over their event streams, draws bars by status, sends the commands, shows
// the fleet, and stops following a campaign once it is finished; and its login: a token exchanged for a session,
// the read-only view of a viewer, logout, and the way back to the form when the session ends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { dashboardDir } from '../src/index.js';

type Child = FakeElement | string;

class FakeElement {
  readonly tagName: string;
  children: Child[] = [];
  readonly attributes = new Map<string, string>();
  readonly listeners = new Map<string, Array<(e: unknown) => void>>();
  readonly style: Record<string, string> = {};
  className = '';
  hidden = false;
  disabled = false;

  constructor(tagName: string) {
    this.tagName = tagName.toUpperCase();
  }
  append(...nodes: Child[]): void {
    this.children.push(...nodes);
  }
  prepend(...nodes: Child[]): void {
    this.children.unshift(...nodes);
  }
  replaceChildren(...nodes: Child[]): void {
    this.children = [...nodes];
  }
  setAttribute(name: string, value: string): void {
    this.attributes.set(name, String(value));
  }
  addEventListener(type: string, fn: (e: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  click(): void {
    if (!this.disabled) for (const fn of this.listeners.get('click') ?? []) fn({});
  }
  get textContent(): string {
    return this.children.map((c) => (typeof c === 'string' ? c : c.textContent)).join('');
  }
  set textContent(text: string) {
    this.children = [text];
  }
  /** Every element below this one, depth first. */
  all(): FakeElement[] {
    return this.children.flatMap((c) => (typeof c === 'string' ? [] : [c, ...c.all()]));
  }
}

class FakeEventSource {
  static opened: FakeEventSource[] = [];
  readonly url: string;
  closed = false;
  readonly listeners = new Map<string, (e: { data: string }) => void>();
  constructor(url: string) {
    this.url = url;
    FakeEventSource.opened.push(this);
  }
  addEventListener(type: string, fn: (e: { data: string }) => void): void {
    this.listeners.set(type, fn);
  }
  close(): void {
    this.closed = true;
  }
  emit(type: string, data: unknown): void {
    this.listeners.get(type)?.({ data: JSON.stringify(data) });
  }
}

const ZERO = {
  QUEUED: 0,
  NOTIFIED: 0,
  IN_PROGRESS: 0,
  SUCCEEDED: 0,
  FAILED: 0,
  REJECTED: 0,
  TIMED_OUT: 0,
  CANCELED: 0,
  ROLLED_BACK: 0,
};

function campaign(id: string, state: string, counts: Partial<typeof ZERO> = {}) {
  return {
    id,
    name: `name-${id}`,
    state,
    targets: 4,
    released: 4,
    createdAt: 1,
    counts: { ...ZERO, ...counts },
    progress: {},
  };
}

const OPERATOR_SESSION = { token: { id: 'a'.repeat(16), name: 'ops', role: 'operator', createdAt: 1 }, via: 'session' };
const UNAUTHORIZED = { __status: 401, error: { code: 'OTA_ERR_UNAUTHORIZED', message: 'log in' } };

/**
 * Runs dashboard.js once against fakes answering `answers` (keyed `METHOD url`; an answer with `__status` is sent
 * with that status); lets its first refresh finish. Logged in as an operator unless `GET /api/v1/session` says else.
 */
async function load(answers: Record<string, unknown>) {
  FakeEventSource.opened = [];
  const ids = [
    'link',
    'summary',
    'campaigns-empty',
    'campaigns',
    'legend',
    'fleet-summary',
    'versions',
    'error',
    'login',
    'login-form',
    'login-error',
    'token',
    'app',
    'who',
    'logout',
  ];
  const byId = new Map(ids.map((id) => [id, new FakeElement('div')]));
  const tbody = new FakeElement('tbody');
  const requests: Array<{ method: string; url: string; body?: string }> = [];
  answers['GET /api/v1/session'] ??= OPERATOR_SESSION;
  const context = {
    document: {
      createElement: (tag: string) => new FakeElement(tag),
      getElementById: (id: string) => byId.get(id),
      querySelector: (selector: string) => (selector === '#vehicles tbody' ? tbody : undefined),
    },
    fetch: async (url: string, options?: { method?: string; body?: string }) => {
      const method = options?.method ?? 'GET';
      requests.push(options?.body === undefined ? { method, url } : { method, url, body: options.body });
      const body = answers[`${method} ${url}`];
      const failed = body === undefined || (typeof body === 'object' && body !== null && 'error' in body);
      const forced = (body as { __status?: number } | undefined)?.__status;
      return {
        ok: !failed,
        status: forced ?? (body === undefined ? 404 : failed ? 409 : 200),
        statusText: '',
        json: async () => body ?? {},
      };
    },
    EventSource: FakeEventSource,
    setInterval: () => 1,
    clearInterval: () => undefined,
    Date,
    JSON,
    Math,
    encodeURIComponent,
  };
  runInNewContext(readFileSync(join(dashboardDir, 'dashboard.js'), 'utf8'), context, { filename: 'dashboard.js' });
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  await settle();

  return { byId, tbody, requests, settle, answers };
}

test('the dashboard follows live campaigns, draws bars by status, sends commands and shows the fleet', async () => {
  const answers: Record<string, unknown> = {
    'GET /api/v1/campaigns?limit=1000': {
      items: [campaign('c1', 'RUNNING', { QUEUED: 4 }), campaign('c2', 'COMPLETED', { SUCCEEDED: 4 })],
    },
    'GET /api/v1/vehicles?limit=1000': {
      items: [
        { vin: 'V1', model: 'ID.4', hardwareId: 'tcu', installedVersion: '2.0.0', online: true, lastSeen: Date.now() },
        { vin: 'V2', model: 'ID.4', hardwareId: 'tcu', installedVersion: '1.0.0', online: false },
      ],
    },
    'GET /api/v1/stats': { mqttConnected: true, vehicles: 2, campaignsRunning: 1 },
    'POST /api/v1/campaigns/c1/pause': campaign('c1', 'PAUSED', { SUCCEEDED: 1, QUEUED: 3 }),
    'POST /api/v1/campaigns/c1/cancel': { error: { code: 'OTA_ERR_INVALID_STATE', message: 'no' } },
  };
  const { byId, tbody, requests } = await load(answers);
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  const list = byId.get('campaigns') as FakeElement;
  const cards = () => list.children as FakeElement[];
  assert.deepEqual(
    cards().map((c) => c.attributes.get('data-id')),
    ['c1', 'c2'],
  );
  // Only the unfinished campaign is followed.
  assert.deepEqual(
    FakeEventSource.opened.map((s) => s.url),
    ['/api/v1/campaigns/c1/events'],
  );
  const stream = FakeEventSource.opened[0] as FakeEventSource;
  stream.emit('snapshot', campaign('c1', 'RUNNING', { QUEUED: 2, IN_PROGRESS: 1, SUCCEEDED: 1 }));
  stream.emit('counts', {
    type: 'counts',
    campaignId: 'c1',
    state: 'RUNNING',
    targets: 4,
    released: 4,
    counts: { ...ZERO, SUCCEEDED: 3, FAILED: 1 },
  });
  const card = cards()[0] as FakeElement;
  const segments = card.all().filter((e) => e.tagName === 'SPAN' && e.style.width !== undefined);
  assert.deepEqual(
    segments.map((s) => [s.attributes.get('title'), s.style.width]),
    [
      ['SUCCEEDED: 3', '75%'],
      ['FAILED: 1', '25%'],
    ],
  );
  assert.match(card.textContent, /3\/4 succeeded/);

  // Buttons follow the state: a running campaign can be paused or canceled, not started or resumed.
  const buttons = () => (cards()[0] as FakeElement).all().filter((e) => e.tagName === 'BUTTON');
  assert.deepEqual(
    buttons().map((b) => [b.textContent, b.disabled]),
    [
      ['start', true],
      ['pause', false],
      ['resume', true],
      ['cancel', false],
    ],
  );
  buttons()[1]?.click();
  await settle();
  assert.deepEqual(requests.at(-1), { method: 'POST', url: '/api/v1/campaigns/c1/pause' });
  assert.match((cards()[0] as FakeElement).textContent, /PAUSED/);
  buttons()[3]?.click();
  await settle();
  const error = byId.get('error') as FakeElement;
  assert.equal(error.hidden, false);
  assert.match(error.textContent, /cancel c1: no \[OTA_ERR_INVALID_STATE\]/);

  // The fleet: counts, versions, one row per vehicle.
  assert.equal((byId.get('fleet-summary') as FakeElement).textContent, '2 vehicles, 1 online');
  assert.match((byId.get('versions') as FakeElement).textContent, /2\.0\.0: 1.*1\.0\.0: 1/);
  assert.equal(tbody.children.length, 2);
  assert.equal((byId.get('link') as FakeElement).textContent, 'MQTT connected');

  // A finished campaign is no longer followed.
  stream.emit('campaign.state', { type: 'campaign.state', campaignId: 'c1', from: 'RUNNING', to: 'COMPLETED' });
  assert.equal(stream.closed, true);
  assert.match((cards()[0] as FakeElement).textContent, /COMPLETED/);
});

test('at most four campaigns are followed over event streams; the rest are polled', async () => {
  const live = Array.from({ length: 6 }, (_, i) => ({ ...campaign(`c${i}`, 'RUNNING'), createdAt: i }));
  await load({
    'GET /api/v1/campaigns?limit=1000': { items: live },
    'GET /api/v1/vehicles?limit=1000': { items: [] },
    'GET /api/v1/stats': { mqttConnected: false, vehicles: 0, campaignsRunning: 6 },
  });
  // The newest first.
  assert.deepEqual(
    FakeEventSource.opened.map((s) => s.url),
    ['c5', 'c4', 'c3', 'c2'].map((id) => `/api/v1/campaigns/${id}/events`),
  );
});

test('login: a token is exchanged for a session, a viewer sees no commands, logout and an ended session', async () => {
  const answers: Record<string, unknown> = {
    'GET /api/v1/session': UNAUTHORIZED,
    'GET /api/v1/campaigns?limit=1000': { items: [campaign('c1', 'RUNNING', { QUEUED: 4 })] },
    'GET /api/v1/vehicles?limit=1000': { items: [] },
    'GET /api/v1/stats': { mqttConnected: true, vehicles: 0, campaignsRunning: 1 },
    'POST /api/v1/session': UNAUTHORIZED,
  };
  const { byId, requests, settle } = await load(answers);
  const get = (id: string) => byId.get(id) as FakeElement;
  // Not logged in: the form only, no API reads, no streams.
  assert.equal(get('login').hidden, false);
  assert.equal(get('app').hidden, true);
  assert.equal(get('login-error').hidden, true, 'no error before a first try');
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url}`),
    ['GET /api/v1/session'],
  );
  assert.equal(FakeEventSource.opened.length, 0);

  const submit = async (token: string) => {
    (get('token') as unknown as { value: string }).value = token;
    let prevented = false;
    for (const fn of get('login-form').listeners.get('submit') ?? []) fn({ preventDefault: () => (prevented = true) });
    await settle();
    assert.ok(prevented, 'the form does not navigate');
  };
  await submit('otk_wrong');
  assert.equal(get('login').hidden, false);
  assert.match(get('login-error').textContent, /unknown or revoked/);
  assert.deepEqual(requests.at(-1), {
    method: 'POST',
    url: '/api/v1/session',
    body: JSON.stringify({ token: 'otk_wrong' }),
  });

  // A viewer's token: the campaigns and their live stream, the buttons disabled.
  answers['POST /api/v1/session'] = { ...OPERATOR_SESSION, token: { ...OPERATOR_SESSION.token, role: 'viewer' } };
  await submit(' otk_viewer ');
  const posted = requests.filter((r) => r.method === 'POST').at(-1);
  assert.equal(JSON.parse(posted?.body ?? '{}').token, 'otk_viewer', 'sent trimmed');
  assert.equal(get('login').hidden, true);
  assert.equal(get('app').hidden, false);
  assert.equal(get('logout').hidden, false);
  assert.equal(get('who').textContent, 'ops (viewer)');
  assert.equal((get('token') as unknown as { value: string }).value, '', 'the token is not kept in the page');
  assert.deepEqual(
    FakeEventSource.opened.map((s) => s.url),
    ['/api/v1/campaigns/c1/events'],
  );
  const buttons = get('campaigns')
    .all()
    .filter((e) => e.tagName === 'BUTTON');
  assert.ok(buttons.length === 4 && buttons.every((b) => b.disabled));

  // Logout: the session is ended server-side, streams closed, back to the form.
  answers['DELETE /api/v1/session'] = {};
  for (const fn of get('logout').listeners.get('click') ?? []) fn({});
  await settle();
  assert.deepEqual(requests.at(-1), { method: 'DELETE', url: '/api/v1/session' });
  assert.equal(FakeEventSource.opened[0]?.closed, true);
  assert.equal(get('app').hidden, true);
  assert.equal(get('login').hidden, false);

  // Logged in again as an operator; then the session ends (revoked token): the next read shows the form.
  answers['POST /api/v1/session'] = OPERATOR_SESSION;
  await submit('otk_operator');
  assert.equal(get('app').hidden, false);
  const enabled = get('campaigns')
    .all()
    .filter((e) => e.tagName === 'BUTTON' && !e.disabled)
    .map((b) => b.textContent);
  assert.deepEqual(enabled, ['pause', 'cancel']);
  answers['POST /api/v1/campaigns/c1/pause'] = UNAUTHORIZED;
  get('campaigns')
    .all()
    .find((e) => e.tagName === 'BUTTON' && e.textContent === 'pause')
    ?.click();
  await settle();
  assert.equal(get('app').hidden, true);
  assert.match(get('login-error').textContent, /session has ended/);
});
