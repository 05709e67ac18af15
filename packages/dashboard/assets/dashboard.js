// otalink dashboard: campaigns with live progress from each campaign's server-sent events, the fleet's vehicles,
// and the campaign commands. Plain browser JavaScript, same origin as the REST API, no dependencies.
// Authentication: the page asks for an API token once and exchanges it at POST /api/v1/session for an HttpOnly
// session cookie, which fetch and EventSource (that cannot set headers) both send; the token is never stored here.

const API = '/api/v1';
const STATUSES = [
  'SUCCEEDED',
  'IN_PROGRESS',
  'NOTIFIED',
  'QUEUED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'ROLLED_BACK',
  'CANCELED',
];
const TERMINAL = new Set(['COMPLETED', 'CANCELED', 'ABORTED']);
const ACTIONS = {
  start: ['DRAFT', 'SCHEDULED'],
  pause: ['RUNNING'],
  resume: ['PAUSED'],
  cancel: ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED'],
};

/** Campaigns by id, as the last snapshot or REST read left them, with live counts folded in. */
const campaigns = new Map();
/** One EventSource per campaign that can still change, for the newest few of them. */
const streams = new Map();
/** Browsers allow about six HTTP/1.1 connections per origin; the API calls need some of them. The campaigns past
 *  this many are refreshed by the periodic poll instead of a stream. */
const MAX_STREAMS = 4;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes ?? {})) {
    if (key === 'className') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const footer = document.getElementById('error');
  footer.textContent = message;
  footer.hidden = message === '';
}

/** Thrown on a 401: the session ended (expired, logged out elsewhere, token revoked); back to the login form. */
class LoggedOut extends Error {}

async function api(path, options) {
  const res = await fetch(`${API}${path}`, { credentials: 'same-origin', ...options });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = body.error ?? { code: `HTTP_${res.status}`, message: res.statusText };
    if (res.status === 401) throw new LoggedOut(`${error.message} [${error.code}]`);
    throw new Error(`${error.message} [${error.code}]`);
  }
  return body;
}

async function listAll(path) {
  const items = [];
  let cursor;
  for (let page = 0; page < 50; page++) {
    const query = cursor === undefined ? '?limit=1000' : `?limit=1000&cursor=${encodeURIComponent(cursor)}`;
    const body = await api(`${path}${query}`);
    items.push(...body.items);
    cursor = body.nextCursor;
    if (cursor === undefined) break;
  }
  return items;
}

// ------------------------------------------------------------------ campaigns

function renderCampaign(campaign) {
  const total = Math.max(campaign.targets, 1);
  const bar = el('div', { className: 'bar', role: 'img', 'aria-label': `progress of ${campaign.name}` });
  const counts = el('div', { className: 'counts' });
  for (const status of STATUSES) {
    const n = campaign.counts?.[status] ?? 0;
    if (n === 0) continue;
    const segment = el('span', { title: `${status}: ${n}` });
    segment.style.width = `${(100 * n) / total}%`;
    segment.style.background = `var(--${status})`;
    bar.append(segment);
    counts.append(el('span', {}, swatch(status), `${status.toLowerCase().replace('_', ' ')} ${n}`));
  }
  const succeeded = campaign.counts?.SUCCEEDED ?? 0;
  counts.prepend(el('span', {}, `${succeeded}/${campaign.targets} succeeded · ${campaign.released} released`));
  const actions = el('div', { className: 'actions' });
  for (const [action, states] of Object.entries(ACTIONS)) {
    const button = el('button', { type: 'button', onclick: () => command(campaign.id, action) }, action);
    button.disabled = !states.includes(campaign.state) || !canWrite();
    if (!canWrite()) button.setAttribute('title', 'a viewer token cannot change campaigns');
    actions.append(button);
  }
  const live = streams.has(campaign.id) ? ' · live' : '';
  return el(
    'div',
    { className: 'campaign', 'data-id': campaign.id },
    el(
      'div',
      { className: 'top' },
      el('span', { className: 'name' }, campaign.name),
      el('span', { className: `state ${campaign.state}` }, campaign.state),
      el('span', { className: 'muted' }, `${campaign.id}${live}`),
      actions,
    ),
    bar,
    counts,
  );
}

function swatch(status) {
  const box = el('span', { className: 'swatch' });
  box.style.background = `var(--${status})`;
  return box;
}

function renderCampaigns() {
  const list = [...campaigns.values()].sort((a, b) => b.createdAt - a.createdAt);
  document.getElementById('campaigns').replaceChildren(...list.map(renderCampaign));
  document.getElementById('campaigns-empty').hidden = list.length > 0;
}

function renderLegend() {
  const legend = document.getElementById('legend');
  legend.replaceChildren(...STATUSES.map((s) => el('span', {}, swatch(s), s.toLowerCase().replace('_', ' '))));
}

function follow(id) {
  if (streams.has(id) || streams.size >= MAX_STREAMS) return;
  const source = new EventSource(`${API}/campaigns/${encodeURIComponent(id)}/events`);
  streams.set(id, source);
  const update = (patch) => {
    const current = campaigns.get(id);
    if (current === undefined) return;
    const next = { ...current, ...patch };
    campaigns.set(id, next);
    if (TERMINAL.has(next.state)) unfollow(id);
    renderCampaigns();
  };
  source.addEventListener('snapshot', (e) => {
    const snapshot = JSON.parse(e.data);
    campaigns.set(id, snapshot);
    update({});
  });
  source.addEventListener('counts', (e) => {
    const { state, targets, released, counts } = JSON.parse(e.data);
    update({ state, targets, released, counts });
  });
  source.addEventListener('campaign.state', (e) => update({ state: JSON.parse(e.data).to }));
  // EventSource reconnects by itself and the server sends a fresh snapshot; nothing to do on error.
}

function unfollow(id) {
  streams.get(id)?.close();
  streams.delete(id);
}

async function refreshCampaigns() {
  const list = await listAll('/campaigns');
  list.sort((a, b) => b.createdAt - a.createdAt);
  for (const campaign of list) {
    if (!streams.has(campaign.id)) campaigns.set(campaign.id, campaign);
    if (!TERMINAL.has(campaign.state)) follow(campaign.id);
  }
  renderCampaigns();
}

async function command(id, action) {
  try {
    const campaign = await api(`/campaigns/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
    campaigns.set(id, campaign);
    if (!TERMINAL.has(campaign.state)) follow(id);
    else unfollow(id);
    renderCampaigns();
    showError('');
  } catch (error) {
    if (error instanceof LoggedOut) showLogin('The session has ended: log in again.');
    else showError(`${action} ${id}: ${error.message}`);
  }
}

// ------------------------------------------------------------------ fleet

function ago(ms) {
  if (ms === undefined) return '—';
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

async function refreshFleet() {
  const vehicles = await listAll('/vehicles');
  const online = vehicles.filter((v) => v.online).length;
  document.getElementById('fleet-summary').textContent = `${vehicles.length} vehicles, ${online} online`;
  const versions = new Map();
  for (const v of vehicles) {
    const version = v.installedVersion ?? 'unknown';
    versions.set(version, (versions.get(version) ?? 0) + 1);
  }
  document
    .getElementById('versions')
    .replaceChildren(
      ...[...versions.entries()].sort((a, b) => b[1] - a[1]).map(([version, n]) => el('span', {}, `${version}: ${n}`)),
    );
  const rows = vehicles
    .slice(0, 500)
    .map((v) =>
      el(
        'tr',
        {},
        el('td', {}, v.vin),
        el('td', {}, v.model),
        el('td', {}, v.hardwareId),
        el('td', {}, v.installedVersion ?? '—'),
        el('td', {}, el('span', { className: v.online ? 'dot on' : 'dot', title: v.online ? 'online' : 'offline' })),
        el('td', {}, ago(v.lastSeen)),
      ),
    );
  document.querySelector('#vehicles tbody').replaceChildren(...rows);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

async function refreshStats() {
  const stats = await api('/stats');
  const link = document.getElementById('link');
  link.hidden = false;
  link.textContent = stats.mqttConnected ? 'MQTT connected' : 'MQTT down';
  link.className = stats.mqttConnected ? 'pill ok' : 'pill down';
  document.getElementById('summary').textContent =
    `${plural(stats.vehicles, 'vehicle')} · ${plural(stats.campaignsRunning, 'campaign')} running`;
}

async function tick() {
  if (session === undefined) return;
  try {
    await Promise.all([refreshCampaigns(), refreshFleet(), refreshStats()]);
    showError('');
  } catch (error) {
    if (error instanceof LoggedOut) showLogin('The session has ended: log in again.');
    else showError(`cannot reach the backend: ${error.message}`);
  }
}

// ------------------------------------------------------------------ session

/** Who is logged in: `{ token: { id, name, role }, via }` from /api/v1/session, or undefined. */
let session;
let timer;

function canWrite() {
  return session !== undefined && session.token.role !== 'viewer';
}

function showApp(who) {
  session = who;
  document.getElementById('login').hidden = true;
  document.getElementById('app').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = `${who.token.name} (${who.token.role})`;
  tick();
  if (timer === undefined) timer = setInterval(tick, 5000);
}

function showLogin(message) {
  session = undefined;
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
  for (const id of [...streams.keys()]) unfollow(id);
  campaigns.clear();
  document.getElementById('app').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  // The pill tells the backend's MQTT link, which a logged-out page cannot read: hide it rather than leave it stale.
  document.getElementById('link').hidden = true;
  document.getElementById('login').hidden = false;
  const error = document.getElementById('login-error');
  error.textContent = message ?? '';
  error.hidden = message === undefined || message === '';
  showError('');
}

async function login(event) {
  event.preventDefault();
  const input = document.getElementById('token');
  try {
    const who = await api('/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: input.value.trim() }),
    });
    input.value = '';
    showApp(who);
  } catch (error) {
    showLogin(error instanceof LoggedOut ? 'That token is unknown or revoked.' : `Cannot log in: ${error.message}`);
  }
}

async function logout() {
  try {
    await fetch(`${API}/session`, { method: 'DELETE', credentials: 'same-origin' });
  } finally {
    showLogin('Logged out.');
  }
}

async function boot() {
  renderLegend();
  document.getElementById('login-form').addEventListener('submit', login);
  document.getElementById('logout').addEventListener('click', logout);
  try {
    showApp(await api('/session'));
  } catch (error) {
    showLogin(error instanceof LoggedOut ? undefined : `Cannot reach the backend: ${error.message}`);
  }
}

boot();
