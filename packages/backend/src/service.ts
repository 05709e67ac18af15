// BackendService over the store, the artifact files, the keyring and the orchestrator: validation, paging and the
// steps of starting a campaign (resolve targets, sign the manifest, hand over to the orchestrator).
import { randomBytes } from 'node:crypto';
import {
  createCampaign as createRolloutState,
  DEFAULT_TIMER_POLICY,
  isSemver,
  isValidModel,
  isValidVin,
  type Manifest,
  planProblem,
  type VinMode,
} from '@otalink/ota';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  type ApiTokenCreate,
  type ApiTokenCreated,
  type ApiTokenInfo,
  type ArtifactBytes,
  type ArtifactFile,
  type ArtifactInfo,
  type ArtifactMetadata,
  ArtifactMetadataSchema,
  BackendError,
  type BackendService,
  type BackendStats,
  type CampaignCreate,
  CampaignCreateSchema,
  type CampaignListener,
  type CampaignTransitionRecord,
  type CampaignView,
  type ExecutionListQuery,
  type ExecutionView,
  type ListQuery,
  type Page,
  type SigningKey,
  type TransitionRecord,
  type Vehicle,
  type VehicleListQuery,
  type VehicleRegistration,
  VehicleRegistrationSchema,
} from './api.js';
import type { ArtifactFiles } from './artifacts/files.js';
import type { Keyring } from './artifacts/keys.js';
import { signArtifactUrl, verifyArtifactSignature } from './artifacts/signed-url.js';
import type { ApiTokens } from './auth/tokens.js';
import type { Clock } from './clock.js';
import type { Orchestrator } from './engine/orchestrator.js';
import { campaignView, DEFAULT_MANIFEST_TTL_MS, executionView } from './engine/views.js';
import type { BackendStore, StoredCampaign } from './store/types.js';

export interface ServiceDeps {
  store: BackendStore;
  files: ArtifactFiles;
  keyring: Keyring;
  engine: Orchestrator;
  clock: Clock;
  urlSecret: Uint8Array;
  publicBaseUrl: string;
  vinMode: VinMode;
  maxArtifactBytes: number;
  mqttConnected: () => boolean;
  tokens: ApiTokens;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

const checkers = new Map<TSchema, ReturnType<typeof TypeCompiler.Compile>>();
function validate<T>(schema: TSchema, value: unknown, what: string): T {
  let check = checkers.get(schema);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    checkers.set(schema, check);
  }
  if (check.Check(value)) return value as T;
  const first = check.Errors(value).First();
  if (first !== undefined) {
    const field = first.path.replace(/^\//, '') || what;
    throw new BackendError('OTA_ERR_VALIDATION', `${what}: ${first.path || '/'} ${first.message}`, { field });
  }
  return value as T;
}

function limitOf(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new BackendError('OTA_ERR_VALIDATION', `limit must be an integer within 1..${MAX_LIMIT}`, { field: 'limit' });
  }
  return limit;
}

const encodeCursor = (key: string) => Buffer.from(key, 'utf8').toString('base64url');
function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(cursor)) {
    throw new BackendError('OTA_ERR_VALIDATION', 'invalid cursor', { field: 'cursor' });
  }
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

function page<T>(items: T[], limit: number, keyOf: (item: T) => string): Page<T> {
  const last = items[items.length - 1];
  return items.length === limit && last !== undefined ? { items, nextCursor: encodeCursor(keyOf(last)) } : { items };
}

export class Service implements BackendService {
  constructor(private readonly d: ServiceDeps) {}

  // ------------------------------------------------------------------ vehicles

  async registerVehicle(registration: VehicleRegistration): Promise<Vehicle> {
    validate<VehicleRegistration>(VehicleRegistrationSchema, registration, 'vehicle');
    if (!isValidVin(registration.vin, this.d.vinMode)) {
      throw new BackendError(
        'OTA_ERR_VALIDATION',
        `invalid VIN ${JSON.stringify(registration.vin)} (${this.d.vinMode} mode)`,
        {
          field: 'vin',
        },
      );
    }
    if (!isValidModel(registration.model)) {
      throw new BackendError('OTA_ERR_VALIDATION', `invalid model ${JSON.stringify(registration.model)}`, {
        field: 'model',
      });
    }
    // Presence updates wait in the engine's buffer; land them first so this upsert does not overwrite them.
    await this.d.engine.flushNow();
    const existing = await this.d.store.getVehicle(registration.vin);
    const now = this.d.clock.now();
    const vehicle: Vehicle = {
      vin: registration.vin,
      model: registration.model,
      hardwareId: registration.hardwareId,
      attributes: registration.attributes ?? existing?.attributes ?? {},
      registeredAt: existing?.registeredAt ?? now,
      updatedAt: now,
      online: existing?.online ?? false,
    };
    if (registration.region !== undefined) vehicle.region = registration.region;
    const installed = registration.installedVersion ?? existing?.installedVersion;
    if (installed !== undefined) vehicle.installedVersion = installed;
    if (existing?.lastSeen !== undefined) vehicle.lastSeen = existing.lastSeen;
    if (existing?.inventory !== undefined) vehicle.inventory = existing.inventory;
    await this.d.engine.saveVehicle(vehicle);
    return vehicle;
  }

  async listVehicles(query: VehicleListQuery = {}): Promise<Page<Vehicle>> {
    const limit = limitOf(query.limit);
    await this.d.engine.flushNow();
    const q: Parameters<BackendStore['listVehicles']>[0] = { limit };
    const after = decodeCursor(query.cursor);
    if (after !== undefined) q.after = after;
    if (query.model !== undefined) q.model = query.model;
    if (query.region !== undefined) q.region = query.region;
    return page(await this.d.store.listVehicles(q), limit, (v) => v.vin);
  }

  async getVehicle(vin: string): Promise<Vehicle> {
    await this.d.engine.flushNow();
    const vehicle = await this.d.store.getVehicle(vin);
    if (vehicle === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no vehicle ${JSON.stringify(vin)}`);
    return vehicle;
  }

  // ------------------------------------------------------------------ artifacts

  async putArtifact(bytes: ArtifactBytes, metadata: ArtifactMetadata): Promise<ArtifactInfo> {
    validate<ArtifactMetadata>(ArtifactMetadataSchema, metadata, 'artifact');
    if (!isSemver(metadata.version)) {
      throw new BackendError('OTA_ERR_VALIDATION', `version ${JSON.stringify(metadata.version)} is not semver`, {
        field: 'version',
      });
    }
    const { sha256, size } = await this.d.files.put(bytes, this.d.maxArtifactBytes);
    const existing = await this.d.store.getArtifact(sha256);
    if (metadata.sha256 !== undefined && metadata.sha256 !== sha256) {
      if (existing === undefined) await this.d.files.remove(sha256);
      throw new BackendError('OTA_ERR_VALIDATION', `the bytes hash to ${sha256}, not ${metadata.sha256}`, {
        field: 'sha256',
      });
    }
    if (existing !== undefined) return existing;
    const info: ArtifactInfo = {
      sha256,
      size,
      name: metadata.name,
      version: metadata.version,
      hardwareIds: metadata.hardwareIds,
      createdAt: this.d.clock.now(),
    };
    if (metadata.contentType !== undefined) info.contentType = metadata.contentType;
    await this.d.store.commit({ artifacts: [info] });
    return info;
  }

  async listArtifacts(query: ListQuery = {}): Promise<Page<ArtifactInfo>> {
    const limit = limitOf(query.limit);
    const after = decodeCursor(query.cursor);
    const items = await this.d.store.listArtifacts(after === undefined ? { limit } : { limit, after });
    return page(items, limit, (a) => a.sha256);
  }

  async getArtifact(sha256: string): Promise<ArtifactInfo> {
    const info = await this.d.store.getArtifact(sha256);
    if (info === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no artifact ${sha256}`);
    return info;
  }

  async openArtifact(sha256: string): Promise<ArtifactFile> {
    const info = await this.getArtifact(sha256);
    const stored = await this.d.files.open(sha256);
    if (stored === undefined)
      throw new BackendError('OTA_ERR_NOT_FOUND', `the bytes of artifact ${sha256} are missing`);
    return {
      path: this.d.files.pathOf(sha256),
      size: stored.size,
      sha256,
      contentType: info.contentType ?? 'application/octet-stream',
      etag: `"${sha256}"`,
      ...(stored.bytes === undefined ? {} : { bytes: stored.bytes }),
    };
  }

  verifyArtifactUrl(sha256: string, exp: string | undefined, sig: string | undefined): boolean {
    return verifyArtifactSignature(this.d.urlSecret, sha256, exp, sig, this.d.clock.now()).ok;
  }

  signArtifactUrl(sha256: string, ttlMs: number): string {
    return signArtifactUrl(this.d.urlSecret, this.d.publicBaseUrl, sha256, this.d.clock.now() + ttlMs);
  }

  async listSigningKeys(): Promise<SigningKey[]> {
    return this.d.keyring.list();
  }

  async rotateKey(): Promise<SigningKey> {
    return this.d.keyring.rotate();
  }

  // ------------------------------------------------------------------ campaigns

  async createCampaign(input: CampaignCreate): Promise<CampaignView> {
    validate<CampaignCreate>(CampaignCreateSchema, input, 'campaign');
    if ('vins' in input.target) {
      const bad = input.target.vins.findIndex((vin) => !isValidVin(vin, this.d.vinMode));
      if (bad >= 0) {
        throw new BackendError('OTA_ERR_VALIDATION', `invalid VIN ${JSON.stringify(input.target.vins[bad])}`, {
          field: `target/vins/${bad}`,
        });
      }
    }
    if ((await this.d.store.getArtifact(input.artifact)) === undefined) {
      throw new BackendError('OTA_ERR_VALIDATION', `no artifact ${input.artifact}`, { field: 'artifact' });
    }
    const plan = {
      rollout: input.rollout ?? { kind: 'waves' as const, waves: [{ percent: 100, successThreshold: 0 }] },
      maxRetries: input.maxRetries ?? 0,
      ...(input.abort === undefined ? {} : { abort: input.abort }),
      ...(input.retryDelayMs === undefined ? {} : { retryDelayMs: input.retryDelayMs }),
    };
    const problem = planProblem(plan);
    if (problem !== undefined) throw new BackendError('OTA_ERR_VALIDATION', problem, { field: 'rollout' });
    const now = this.d.clock.now();
    const id = `c-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
    const timers: StoredCampaign['timers'] = {
      renotifyAfterMs: input.timers?.renotifyAfterMs ?? DEFAULT_TIMER_POLICY.renotifyAfterMs,
      renotifyBackoff: input.timers?.renotifyBackoff ?? DEFAULT_TIMER_POLICY.renotifyBackoff,
      maxRenotifyIntervalMs: input.timers?.maxRenotifyIntervalMs ?? DEFAULT_TIMER_POLICY.maxRenotifyIntervalMs,
      stepTimeoutMs: input.timers?.stepTimeoutMs ?? DEFAULT_TIMER_POLICY.stepTimeoutMs,
      inProgressTimeoutMs: input.timers?.inProgressTimeoutMs ?? DEFAULT_TIMER_POLICY.inProgressTimeoutMs,
    };
    if (input.timers?.startTimeoutMs !== undefined) timers.startTimeoutMs = input.timers.startTimeoutMs;
    const stored: StoredCampaign = {
      id,
      name: input.name,
      jobId: id,
      spec: structuredClone(input),
      rollout: createRolloutState(id, plan),
      timers,
      createdAt: now,
      targets: 0,
      released: 0,
    };
    await this.d.engine.saveDraft(stored);
    return campaignView(stored, await this.d.store.countByStatus(id));
  }

  async listCampaigns(query: ListQuery = {}): Promise<Page<CampaignView>> {
    const limit = limitOf(query.limit);
    const after = decodeCursor(query.cursor);
    await this.d.engine.flushNow();
    const rows = await this.d.store.listCampaigns(after === undefined ? { limit } : { limit, after });
    const items: CampaignView[] = [];
    for (const row of rows) items.push(await this.view(row.id, row));
    return page(items, limit, (c) => c.id);
  }

  async getCampaign(id: string): Promise<CampaignView> {
    return this.view(id);
  }

  private async view(id: string, row?: StoredCampaign): Promise<CampaignView> {
    const live = this.d.engine.liveCampaign(id);
    if (live !== undefined) return campaignView(live.stored, live.counts);
    const stored = row ?? (await this.stored(id));
    return campaignView(stored, await this.d.store.countByStatus(id));
  }

  private async stored(id: string): Promise<StoredCampaign> {
    const live = this.d.engine.liveCampaign(id);
    if (live !== undefined) return live.stored;
    const stored = await this.d.store.getCampaign(id);
    if (stored === undefined) throw new BackendError('OTA_ERR_NOT_FOUND', `no campaign ${JSON.stringify(id)}`);
    return stored;
  }

  async startCampaign(id: string): Promise<CampaignView> {
    return this.d.engine.withLock(id, async () => {
      const stored = await this.stored(id);
      const state = stored.rollout.state;
      if (state !== 'DRAFT' && state !== 'SCHEDULED') {
        throw new BackendError('OTA_ERR_INVALID_STATE', `start is not possible in ${state}`);
      }
      const artifact = await this.getArtifact(stored.spec.artifact);
      const targets = await this.resolveTargets(stored, artifact);
      const now = this.d.clock.now();
      const expiresAt = now + (stored.spec.manifestTtlMs ?? DEFAULT_MANIFEST_TTL_MS);
      const manifest: Omit<Manifest, 'keyId'> = {
        artifactId: artifact.sha256,
        name: artifact.name,
        version: artifact.version,
        hardwareIds: artifact.hardwareIds,
        size: artifact.size,
        sha256: artifact.sha256,
        url: signArtifactUrl(this.d.urlSecret, this.d.publicBaseUrl, artifact.sha256, expiresAt),
        issuedAt: now,
        expiresAt,
      };
      if (stored.spec.allowDowngrade === true) manifest.allowDowngrade = true;
      const signed = this.d.keyring.sign(manifest);
      await this.d.engine.start({ ...stored, manifest: signed }, targets);
      return this.view(id);
    });
  }

  private async resolveTargets(
    stored: StoredCampaign,
    artifact: ArtifactInfo,
  ): Promise<{ vin: string; model: string }[]> {
    const compatible = new Set(artifact.hardwareIds);
    const target = stored.spec.target;
    if ('vins' in target) {
      const unique = [...new Set(target.vins)];
      const found = new Map((await this.d.store.getVehicles(unique)).map((v) => [v.vin, v]));
      const out: { vin: string; model: string }[] = [];
      for (const [i, vin] of unique.entries()) {
        const vehicle = found.get(vin);
        if (vehicle === undefined) {
          throw new BackendError('OTA_ERR_VALIDATION', `vehicle ${vin} is not registered`, {
            field: `target/vins/${target.vins.indexOf(vin, i)}`,
          });
        }
        if (!compatible.has(vehicle.hardwareId)) {
          throw new BackendError(
            'OTA_ERR_VALIDATION',
            `vehicle ${vin} has hardware ${vehicle.hardwareId}, the artifact is for ${artifact.hardwareIds.join(', ')}`,
            { field: `target/vins/${target.vins.indexOf(vin)}` },
          );
        }
        out.push({ vin, model: vehicle.model });
      }
      return out;
    }
    const selected = (await this.d.store.selectVehicles(target.selector)).filter((v) => compatible.has(v.hardwareId));
    if (selected.length === 0) {
      throw new BackendError(
        'OTA_ERR_VALIDATION',
        'no registered vehicle with compatible hardware matches the selector',
        {
          field: 'target/selector',
        },
      );
    }
    return selected.map((v) => ({ vin: v.vin, model: v.model }));
  }

  async pauseCampaign(id: string, options: { executions?: boolean } = {}): Promise<CampaignView> {
    return this.d.engine.withLock(id, async () => {
      await this.d.engine.pause(await this.stored(id), options.executions === true);
      return this.view(id);
    });
  }

  async resumeCampaign(id: string): Promise<CampaignView> {
    return this.d.engine.withLock(id, async () => {
      await this.d.engine.resume(await this.stored(id));
      return this.view(id);
    });
  }

  async cancelCampaign(id: string): Promise<CampaignView> {
    return this.d.engine.withLock(id, async () => {
      await this.d.engine.cancel(await this.stored(id));
      return this.view(id);
    });
  }

  async listExecutions(campaignId: string, query: ExecutionListQuery = {}): Promise<Page<ExecutionView>> {
    const limit = limitOf(query.limit);
    await this.stored(campaignId);
    await this.d.engine.flushNow();
    const q: Parameters<BackendStore['listExecutions']>[1] = { limit };
    const after = decodeCursor(query.cursor);
    if (after !== undefined) q.after = after;
    if (query.status !== undefined) q.status = query.status;
    const rows = await this.d.store.listExecutions(campaignId, q);
    return page(rows.map(executionView), limit, (e) => e.vin);
  }

  async executionHistory(
    campaignId: string,
    vin: string,
  ): Promise<{ executions: ExecutionView[]; transitions: TransitionRecord[] }> {
    await this.stored(campaignId);
    await this.d.engine.flushNow();
    const executions = (await this.d.store.executionsOf(campaignId, vin)).map(executionView);
    if (executions.length === 0) {
      throw new BackendError('OTA_ERR_NOT_FOUND', `vehicle ${vin} has no execution in campaign ${campaignId}`);
    }
    return { executions, transitions: await this.d.store.transitionsOf(campaignId, vin) };
  }

  async campaignHistory(campaignId: string): Promise<CampaignTransitionRecord[]> {
    await this.stored(campaignId);
    await this.d.engine.flushNow();
    return this.d.store.campaignTransitions(campaignId);
  }

  async subscribeCampaign(campaignId: string, listener: CampaignListener): Promise<() => void> {
    await this.stored(campaignId);
    return this.d.engine.subscribe(campaignId, listener);
  }

  async stats(): Promise<BackendStats> {
    const s = this.d.engine.stats;
    return {
      mqttConnected: this.d.mqttConnected(),
      statusReceived: s.statusReceived,
      statusApplied: s.statusApplied,
      statusIgnored: { ...s.statusIgnored },
      invalidMessages: s.invalidMessages,
      presenceReceived: s.presenceReceived,
      syncAnswered: s.syncAnswered,
      commandsPublished: s.commandsPublished,
      ingestQueue: this.d.engine.queuedWrites,
      ingestBatches: s.ingestBatches,
      vehicles: await this.d.store.countVehicles(),
      campaignsRunning: this.d.engine.runningCampaigns,
      activeTimers: this.d.engine.activeTimers,
    };
  }

  // ------------------------------------------------------------------ API tokens

  createApiToken(input: ApiTokenCreate): Promise<ApiTokenCreated> {
    return this.d.tokens.create(input);
  }

  listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.d.tokens.list();
  }

  revokeApiToken(id: string): Promise<ApiTokenInfo> {
    return this.d.tokens.revoke(id);
  }

  authenticateApiToken(token: string): Promise<ApiTokenInfo | undefined> {
    return this.d.tokens.authenticate(token);
  }

  getApiToken(id: string): Promise<ApiTokenInfo | undefined> {
    return this.d.tokens.get(id);
  }
}
