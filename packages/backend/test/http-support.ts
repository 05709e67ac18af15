// Test support for the HTTP layer: an in-memory BackendService (artifacts on disk in a temp dir, signed URLs with
// the real signer) so the routes can be tested before and apart from the engine, and a self-signed certificate.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXECUTION_STATUSES } from '@otalink/ota';
import {
  type ApiRole,
  type ApiTokenCreate,
  type ApiTokenCreated,
  type ApiTokenInfo,
  type ArtifactBytes,
  type ArtifactFile,
  type ArtifactInfo,
  type ArtifactMetadata,
  BackendError,
  type BackendService,
  type BackendStats,
  type CampaignCreate,
  type CampaignEvent,
  type CampaignListener,
  type CampaignView,
  type ExecutionListQuery,
  type ExecutionView,
  type ListQuery,
  type Page,
  type SigningKey,
  type StatusCounts,
  type TransitionRecord,
  type Vehicle,
  type VehicleListQuery,
  type VehicleRegistration,
} from '../src/api.js';
import { signArtifactPath, verifyArtifactSignature } from '../src/artifacts/signed-url.js';
import { ApiTokens } from '../src/auth/tokens.js';
import type { ApiTokenRecord } from '../src/store/types.js';

function page<T>(all: T[], query: { limit?: number; cursor?: string } | undefined): Page<T> {
  const start = query?.cursor === undefined ? 0 : Number(query.cursor);
  const limit = query?.limit ?? 100;
  const items = all.slice(start, start + limit);
  return start + limit < all.length ? { items, nextCursor: String(start + limit) } : { items };
}

function zeroCounts(): StatusCounts {
  return Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

async function collect(bytes: ArtifactBytes): Promise<Buffer> {
  if (bytes instanceof Uint8Array) return Buffer.from(bytes);
  const chunks: Buffer[] = [];
  for await (const chunk of bytes as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** An in-memory BackendService with the engine's observable behaviour, for route tests. */
export class FakeBackend implements BackendService {
  readonly dir = mkdtempSync(join(tmpdir(), 'otalink-http-'));
  readonly secret = Buffer.alloc(32, 7);
  now = Date.now();
  readonly vehicles = new Map<string, Vehicle>();
  readonly artifacts = new Map<string, ArtifactInfo>();
  readonly campaigns = new Map<string, CampaignView>();
  readonly executions = new Map<string, ExecutionView[]>();
  readonly listeners = new Map<string, Set<CampaignListener>>();
  readonly tokenRecords = new Map<string, ApiTokenRecord>();
  /** The real token logic over an in-memory map. */
  readonly tokens = new ApiTokens(
    {
      commit: async (batch) => {
        for (const t of batch.apiTokens ?? []) this.tokenRecords.set(t.id, t);
      },
      getApiToken: async (id) => this.tokenRecords.get(id),
      listApiTokens: async () => [...this.tokenRecords.values()],
    },
    () => this.now,
  );
  /** Set to make the next call fail: with a plain Error (a bug) or with the engine's OTA_ERR_STORE. */
  explode: false | 'bug' | 'store' = false;

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  #boom(): void {
    const kind = this.explode;
    this.explode = false;
    if (kind === 'bug') throw new Error('SQLITE_CORRUPT: /secret/path/db.sqlite');
    if (kind === 'store') throw new BackendError('OTA_ERR_STORE', 'SQLITE_FULL writing /secret/path/db.sqlite');
  }

  async registerVehicle(r: VehicleRegistration): Promise<Vehicle> {
    this.#boom();
    if (r.vin.length !== 17)
      throw new BackendError('OTA_ERR_VALIDATION', 'VIN must be 17 characters', { field: 'vin' });
    const vehicle: Vehicle = {
      vin: r.vin,
      model: r.model,
      hardwareId: r.hardwareId,
      attributes: r.attributes ?? {},
      registeredAt: this.now,
      updatedAt: this.now,
      online: false,
      ...(r.region === undefined ? {} : { region: r.region }),
      ...(r.installedVersion === undefined ? {} : { installedVersion: r.installedVersion }),
    };
    this.vehicles.set(r.vin, vehicle);
    return vehicle;
  }

  async listVehicles(query?: VehicleListQuery): Promise<Page<Vehicle>> {
    const all = [...this.vehicles.values()].filter((v) => query?.model === undefined || v.model === query.model);
    return page(all, query);
  }

  async getVehicle(vin: string): Promise<Vehicle> {
    const v = this.vehicles.get(vin);
    if (v === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no vehicle ${vin}`);
    return v;
  }

  async putArtifact(bytes: ArtifactBytes, metadata: ArtifactMetadata): Promise<ArtifactInfo> {
    const body = await collect(bytes);
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (metadata.sha256 !== undefined && metadata.sha256 !== sha256) {
      throw new BackendError('OTA_ERR_VALIDATION', 'bytes do not hash to sha256', { field: 'sha256' });
    }
    writeFileSync(join(this.dir, sha256), body);
    const info: ArtifactInfo = {
      sha256,
      size: body.length,
      name: metadata.name,
      version: metadata.version,
      hardwareIds: metadata.hardwareIds,
      createdAt: this.now,
      ...(metadata.contentType === undefined ? {} : { contentType: metadata.contentType }),
    };
    this.artifacts.set(sha256, info);
    return info;
  }

  async listArtifacts(query?: ListQuery): Promise<Page<ArtifactInfo>> {
    return page([...this.artifacts.values()].reverse(), query); // newest first, as the real store
  }

  async getArtifact(sha256: string): Promise<ArtifactInfo> {
    const a = this.artifacts.get(sha256);
    if (a === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no artifact ${sha256}`);
    return a;
  }

  async openArtifact(sha256: string): Promise<ArtifactFile> {
    const a = await this.getArtifact(sha256);
    return {
      path: join(this.dir, sha256),
      size: a.size,
      sha256,
      contentType: 'application/octet-stream',
      etag: `"${sha256}"`,
    };
  }

  verifyArtifactUrl(sha256: string, exp: string | undefined, sig: string | undefined): boolean {
    return verifyArtifactSignature(this.secret, sha256, exp, sig, this.now).ok;
  }

  signArtifactUrl(sha256: string, ttlMs: number): string {
    return signArtifactPath(this.secret, sha256, this.now + ttlMs);
  }

  async listSigningKeys(): Promise<SigningKey[]> {
    return [];
  }

  async rotateKey(): Promise<SigningKey> {
    throw new BackendError('OTA_ERR_UNAVAILABLE', 'no keys in the fake');
  }

  async createCampaign(input: CampaignCreate): Promise<CampaignView> {
    if (!this.artifacts.has(input.artifact)) {
      throw new BackendError('OTA_ERR_VALIDATION', 'unknown artifact', { field: 'artifact' });
    }
    const id = `c${this.campaigns.size + 1}`;
    const vins = 'vins' in input.target ? input.target.vins : [];
    const campaign: CampaignView = {
      id,
      name: input.name,
      jobId: `job-${id}`,
      artifact: input.artifact,
      target: input.target,
      rollout: input.rollout ?? { kind: 'waves', waves: [{ percent: 100, successThreshold: 0 }] },
      maxRetries: input.maxRetries ?? 0,
      timers: {
        renotifyAfterMs: 60_000,
        renotifyBackoff: 2,
        maxRenotifyIntervalMs: 600_000,
        startTimeoutMs: 0,
        stepTimeoutMs: 0,
        inProgressTimeoutMs: 0,
      },
      preconditions: {},
      separateInstall: false,
      allowDowngrade: false,
      manifestTtlMs: 30 * 86_400_000,
      state: 'DRAFT',
      createdAt: this.now,
      targets: vins.length,
      released: 0,
      counts: zeroCounts(),
      progress: {},
    };
    this.campaigns.set(id, campaign);
    this.executions.set(
      id,
      vins.map((vin) => ({
        campaignId: id,
        jobId: campaign.jobId,
        vin,
        executionNumber: 1,
        status: 'QUEUED',
        lastSeq: 0,
        paused: false,
        waiting: false,
        notifyCount: 0,
        queuedAt: this.now,
        updatedAt: this.now,
      })),
    );
    return campaign;
  }

  async listCampaigns(query?: ListQuery): Promise<Page<CampaignView>> {
    // Newest first, as the real store lists them.
    return page([...this.campaigns.values()].reverse(), query);
  }

  async getCampaign(id: string): Promise<CampaignView> {
    this.#boom();
    const c = this.campaigns.get(id);
    if (c === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no campaign ${id}`);
    return c;
  }

  #transition(id: string, from: CampaignView['state'][], to: CampaignView['state'], cause: string): CampaignView {
    const c = this.campaigns.get(id);
    if (c === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no campaign ${id}`);
    if (!from.includes(c.state)) throw new BackendError('OTA_ERR_INVALID_STATE', `campaign ${id} is ${c.state}`);
    const next: CampaignView = { ...c, state: to };
    this.campaigns.set(id, next);
    this.emit({ type: 'campaign.state', campaignId: id, at: this.now, from: c.state, to, cause });
    return next;
  }

  async startCampaign(id: string): Promise<CampaignView> {
    return this.#transition(id, ['DRAFT', 'SCHEDULED'], 'RUNNING', 'start');
  }
  async pauseCampaign(id: string): Promise<CampaignView> {
    return this.#transition(id, ['RUNNING'], 'PAUSED', 'pause');
  }
  async resumeCampaign(id: string): Promise<CampaignView> {
    return this.#transition(id, ['PAUSED'], 'RUNNING', 'resume');
  }
  async cancelCampaign(id: string): Promise<CampaignView> {
    return this.#transition(id, ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED'], 'CANCELED', 'cancel');
  }

  async listExecutions(campaignId: string, query?: ExecutionListQuery): Promise<Page<ExecutionView>> {
    await this.getCampaign(campaignId);
    const all = (this.executions.get(campaignId) ?? []).filter(
      (e) => query?.status === undefined || e.status === query.status,
    );
    return page(all, query);
  }

  async executionHistory(
    campaignId: string,
    vin: string,
  ): Promise<{ executions: ExecutionView[]; transitions: TransitionRecord[] }> {
    await this.getCampaign(campaignId);
    const executions = (this.executions.get(campaignId) ?? []).filter((e) => e.vin === vin);
    if (executions.length === 0) throw new BackendError('OTA_ERR_NOT_FOUND', `${vin} is not in ${campaignId}`);
    return { executions, transitions: [] };
  }

  async campaignHistory(): Promise<[]> {
    return [];
  }

  async subscribeCampaign(campaignId: string, listener: CampaignListener): Promise<() => void> {
    await this.getCampaign(campaignId);
    let set = this.listeners.get(campaignId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(campaignId, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  emit(event: CampaignEvent): void {
    for (const listener of this.listeners.get(event.campaignId) ?? []) listener(event);
  }

  /** Moves one vehicle's execution to `status` and emits the execution and counts events the engine would. */
  report(campaignId: string, vin: string, status: ExecutionView['status']): void {
    const list = this.executions.get(campaignId) ?? [];
    const execution = list.find((e) => e.vin === vin);
    const campaign = this.campaigns.get(campaignId);
    if (execution === undefined || campaign === undefined) throw new Error(`no execution ${campaignId}/${vin}`);
    const from = execution.status;
    execution.status = status;
    const counts = zeroCounts();
    for (const e of list) counts[e.status] += 1;
    const finished = list.every((e) =>
      ['SUCCEEDED', 'FAILED', 'CANCELED', 'REJECTED', 'ROLLED_BACK'].includes(e.status),
    );
    const next: CampaignView = {
      ...campaign,
      counts,
      released: list.length,
      state: finished ? 'COMPLETED' : campaign.state,
    };
    this.campaigns.set(campaignId, next);
    this.emit({
      type: 'execution',
      campaignId,
      at: this.now,
      vin,
      executionNumber: 1,
      status,
      from,
      cause: 'vehicle-status',
    });
    this.emit({
      type: 'counts',
      campaignId,
      at: this.now,
      state: next.state,
      targets: next.targets,
      released: next.released,
      counts,
    });
    if (finished && campaign.state !== 'COMPLETED') {
      this.emit({
        type: 'campaign.state',
        campaignId,
        at: this.now,
        from: campaign.state,
        to: 'COMPLETED',
        cause: 'complete',
      });
    }
  }

  createApiToken(input: ApiTokenCreate): Promise<ApiTokenCreated> {
    return this.tokens.create(input);
  }
  listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.tokens.list();
  }
  revokeApiToken(id: string): Promise<ApiTokenInfo> {
    return this.tokens.revoke(id);
  }
  authenticateApiToken(token: string): Promise<ApiTokenInfo | undefined> {
    return this.tokens.authenticate(token);
  }
  getApiToken(id: string): Promise<ApiTokenInfo | undefined> {
    return this.tokens.get(id);
  }

  /** A new token of this role and the header that carries it. */
  async bearer(role: ApiRole = 'admin'): Promise<{ token: string; headers: { authorization: string } }> {
    const { token } = await this.tokens.create({ name: `test ${role}`, role });
    return { token, headers: { authorization: `Bearer ${token}` } };
  }

  async stats(): Promise<BackendStats> {
    return {
      mqttConnected: false,
      statusReceived: 0,
      statusApplied: 0,
      statusIgnored: {},
      invalidMessages: 0,
      presenceReceived: 0,
      syncAnswered: 0,
      commandsPublished: 0,
      ingestQueue: 0,
      ingestBatches: 0,
      vehicles: this.vehicles.size,
      campaignsRunning: [...this.campaigns.values()].filter((c) => c.state === 'RUNNING').length,
      activeTimers: 0,
    };
  }
}

/**
 * A self-signed certificate for 127.0.0.1 made with the openssl CLI, or undefined when openssl is missing. P-256 by
 * default; RSA where a test wants the server's side of a handshake to cost more than the client's.
 */
export function selfSignedCert(key: 'ec' | 'rsa' = 'ec'): { cert: string; key: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'otalink-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        ...(key === 'ec' ? ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['rsa:2048']),
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Fetched {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export function fetchUrl(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer; ca?: string } = {},
) {
  return new Promise<Fetched>((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      target,
      { method: options.method ?? 'GET', headers: options.headers, ca: options.ca, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Opens an SSE stream and hands back its parsed events as they come. */
export function openEvents(url: string, ca?: string, headers: Record<string, string> = {}) {
  const events: Array<{ event: string; data: unknown }> = [];
  const comments: string[] = [];
  let waiters: Array<() => void> = [];
  let response: IncomingMessage | undefined;
  let ended = false;
  const opened = new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpsRequest(new URL(url), { ca, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      response = res;
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffer += text;
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const lines = block.split('\n');
          for (const line of lines) if (line.startsWith(':')) comments.push(line.slice(1).trim());
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
          const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) });
        }
        for (const wake of waiters) wake();
        waiters = [];
      });
      res.on('end', () => {
        ended = true;
        for (const wake of waiters) wake();
      });
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
  const until = async (ready: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!ready()) {
      if (ended) throw new Error(`stream ended while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  return {
    events,
    comments,
    opened,
    until,
    get ended() {
      return ended;
    },
    destroy: () => response?.destroy(),
  };
}
