// The persistence contract of the backend. Every method is async so a networked store (PostgreSQL) implements the
// same interface as the embedded SQLite one; every write goes through commit() with a batch, applied atomically,
// which is both the unit of crash safety and the way status ingest amortises fsyncs.
import type { Execution, Campaign as RolloutState, SignedManifest } from '@otalink/ota';
import type {
  ApiTokenInfo,
  ArtifactInfo,
  CampaignCreate,
  CampaignTransitionRecord,
  Inventory,
  Selector,
  StatusCounts,
  Timers,
  TransitionRecord,
  Vehicle,
} from '../api.js';

/** A campaign as stored: its definition with defaults applied, its state and rollout bookkeeping, and its manifest. */
export interface StoredCampaign {
  id: string;
  name: string;
  jobId: string;
  /** The create request as given (target, rollout, options), for the record. */
  spec: CampaignCreate;
  /** The rollout state machine's value (state, plan, wave, rate window, startedAt, finishedAt). */
  rollout: RolloutState;
  timers: Required<Omit<Timers, 'startTimeoutMs'>> & { startTimeoutMs?: number };
  createdAt: number;
  /** Vehicles targeted (resolved at start). */
  targets: number;
  /** Vehicles given a first execution. */
  released: number;
  manifest?: SignedManifest;
  decision?: string;
  decisionText?: string;
}

/** An execution as stored: the OTA package's Execution and when it last changed. */
export interface StoredExecution extends Execution {
  updatedAt: number;
}

export interface PresenceUpdate {
  vin: string;
  online: boolean;
  lastSeen: number;
  inventory?: Inventory;
  /** Registration fields for a vehicle seen for the first time (auto-registration from its presence). */
  register?: { model: string; hardwareId: string };
}

export interface TargetRow {
  vin: string;
  model: string;
  released: boolean;
}

export interface SigningKeyRecord {
  keyId: string;
  /** 32-byte raw public key, base64. */
  publicKey: string;
  publicKeyPem: string;
  createdAt: number;
  active: boolean;
}

/** An API token as stored: its public info and the SHA-256 (hex) of its secret part, never the secret. */
export interface ApiTokenRecord extends ApiTokenInfo {
  secretHash: string;
}

/** Everything one commit writes, atomically. Order of application: the order of the fields below. */
export interface StoreBatch {
  vehicles?: Vehicle[];
  presence?: PresenceUpdate[];
  /** installedVersion learned from a SUCCEEDED / ROLLED_BACK report. */
  installedVersions?: { vin: string; version: string; at: number }[];
  artifacts?: ArtifactInfo[];
  signingKeys?: SigningKeyRecord[];
  campaigns?: StoredCampaign[];
  campaignTransitions?: CampaignTransitionRecord[];
  /** Appended in the given order (rollout order). */
  targets?: { campaignId: string; targets: { vin: string; model: string }[] }[];
  released?: { campaignId: string; vins: string[] }[];
  /** Upserted by (campaignId, vin, executionNumber); the highest number per (campaign, vin) is the latest. */
  executions?: StoredExecution[];
  transitions?: TransitionRecord[];
  seenMessageIds?: { msgId: string; at: number }[];
  /** Upserted by id (a revocation is the same record with revokedAt set). */
  apiTokens?: ApiTokenRecord[];
}

export interface KeysetQuery {
  limit: number;
  /** Exclusive: the last key of the previous page. */
  after?: string;
}

export interface BackendStore {
  /** Applies the whole batch or nothing. Throws BackendError OTA_ERR_STORE. */
  commit(batch: StoreBatch): Promise<void>;

  getVehicle(vin: string): Promise<Vehicle | undefined>;
  /** By VIN order. */
  listVehicles(query: KeysetQuery & { model?: string; region?: string }): Promise<Vehicle[]>;
  /** The registered vehicles among these VINs (in no particular order). */
  getVehicles(vins: readonly string[]): Promise<Vehicle[]>;
  /** Every vehicle matching the selector, by VIN order. */
  selectVehicles(selector: Selector): Promise<Vehicle[]>;
  countVehicles(): Promise<number>;
  /** Per-model fleet numbers for fleet.status. */
  fleetSummary(model: string): Promise<{ vehicles: number; online: number; versions: Record<string, number> }>;

  getArtifact(sha256: string): Promise<ArtifactInfo | undefined>;
  /** Newest first; `after` is the previous page's last sha256. */
  listArtifacts(query: KeysetQuery): Promise<ArtifactInfo[]>;

  /** In the order they were added. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;

  getCampaign(id: string): Promise<StoredCampaign | undefined>;
  /** Newest first; `after` is the previous page's last id. */
  listCampaigns(query: KeysetQuery): Promise<StoredCampaign[]>;
  campaignsInStates(states: readonly string[]): Promise<StoredCampaign[]>;
  campaignTransitions(campaignId: string): Promise<CampaignTransitionRecord[]>;
  /** In rollout order. */
  listTargets(campaignId: string): Promise<TargetRow[]>;

  /** The latest execution of every released vehicle of the campaign. */
  latestExecutions(campaignId: string): Promise<StoredExecution[]>;
  /** Latest executions by VIN order, optionally only one status. */
  listExecutions(campaignId: string, query: KeysetQuery & { status?: string }): Promise<StoredExecution[]>;
  /** Every execution of one vehicle in one campaign, newest first. */
  executionsOf(campaignId: string, vin: string): Promise<StoredExecution[]>;
  /** Oldest first. */
  transitionsOf(campaignId: string, vin: string): Promise<TransitionRecord[]>;
  /** Latest executions by status; with model, only that model's vehicles. */
  countByStatus(campaignId: string, model?: string): Promise<StatusCounts>;

  hasSeenMessageId(msgId: string): Promise<boolean>;
  /** Forgets ids remembered before this time; returns how many. */
  pruneSeenMessageIds(before: number): Promise<number>;

  getApiToken(id: string): Promise<ApiTokenRecord | undefined>;
  /** Oldest first, revoked ones included. */
  listApiTokens(): Promise<ApiTokenRecord[]>;

  close(): Promise<void>;
}
