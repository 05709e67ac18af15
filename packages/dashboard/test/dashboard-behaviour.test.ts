// The dashboard script run against a small fake DOM, fetch and EventSource (no browser on the test machine): it
// lists campaigns, follows the live ones over their event streams, draws bars by status, sends the commands, shows
// the fleet, and stops following a campaign once it is finished.
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

/** Runs dashboard.js once against fakes answering `answers` (keyed `METHOD url`); lets its first refresh finish. */
async function load(answers: Record<string, unknown>) {
  FakeEventSource.opened = [];
  const ids = ['link', 'summary', 'campaigns-empty', 'campaigns', 'legend', 'fleet-summary', 'versions', 'error'];
  const byId = new Map(ids.map((id) => [id, new FakeElement('div')]));
  const tbody = new FakeElement('tbody');
  const requests: Array<{ method: string; url: string }> = [];
  const context = {
    document: {
      createElement: (tag: string) => new FakeElement(tag),
      getElementById: (id: string) => byId.get(id),
      querySelector: (selector: string) => (selector === '#vehicles tbody' ? tbody : undefined),
    },
    fetch: async (url: string, options?: { method?: string }) => {
      const method = options?.method ?? 'GET';
      requests.push({ method, url });
      const body = answers[`${method} ${url}`];
      const failed = body === undefined || (typeof body === 'object' && body !== null && 'error' in body);
      return {
        ok: !failed,
        status: body === undefined ? 404 : failed ? 409 : 200,
        statusText: '',
        json: async () => body ?? {},
      };
    },
    EventSource: FakeEventSource,
    setInterval: () => 0,
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

  return { byId, tbody, requests };
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
