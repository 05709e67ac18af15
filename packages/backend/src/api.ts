// The backend's public contract: TypeBox schemas (JSON Schema for the OpenAPI document, static types for the code)
// of every REST body and response, the BackendService the HTTP layer calls, and BackendError with stable codes.
// The HTTP layer (src/http/) depends on this file only, never on the store or the orchestrator.

import { EXECUTION_STATUSES, STEPS } from '@otalink/ota';
import { type Static, Type } from '@sinclair/typebox';

// ---------------------------------------------------------------- building blocks

/** Identifiers (campaign, hardware, model): the OTA protocol's id alphabet. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$';
const Id = Type.String({ pattern: ID_PATTERN });
/** VINs: the loosest alphabet of the two VIN modes; the service checks the configured mode (strict ISO 3779 or simulation). */
export const VIN_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$';
const Vin = Type.String({ pattern: VIN_PATTERN });
export const SHA256_PATTERN = '^[0-9a-f]{64}$';
const Sha256 = Type.String({ pattern: SHA256_PATTERN, description: 'lower-case hex SHA-256' });
const SEMVER_LIKE = Type.String({ minLength: 1, maxLength: 256 });
const EpochMs = Type.Integer({ minimum: 0, description: 'epoch milliseconds' });
const DurationMs = Type.Integer({ minimum: 0, description: 'milliseconds' });
const Count = Type.Integer({ minimum: 0 });
const AttributeMap = Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ maxLength: 256 }), {
  description: 'free-form attributes used by campaign selectors',
});

export const ExecutionStatusSchema = Type.Union(EXECUTION_STATUSES.map((s) => Type.Literal(s)));
export const StepSchema = Type.Union(STEPS.map((s) => Type.Literal(s)));
export const CampaignStateSchema = Type.Union(
  ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELED', 'ABORTED'].map((s) => Type.Literal(s)),
);
const Reason = Type.Object({ code: Type.String(), text: Type.String() });

/** Executions by status; every status is present (0 when none). */
export const StatusCountsSchema = Type.Object(
  Object.fromEntries(EXECUTION_STATUSES.map((s) => [s, Count])) as Record<
    (typeof EXECUTION_STATUSES)[number],
    typeof Count
  >,
);
export type StatusCounts = Static<typeof StatusCountsSchema>;

/** A page of a list; pass nextCursor back as `cursor` for the next page (absent on the last page). */
export const PageSchema = <T extends ReturnType<typeof Type.Object>>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Optional(Type.String()) });
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

// ---------------------------------------------------------------- vehicles

export const VehicleRegistrationSchema = Type.Object({
  vin: Vin,
  model: Id,
  region: Type.Optional(Id),
  hardwareId: Id,
  installedVersion: Type.Optional(SEMVER_LIKE),
  attributes: Type.Optional(AttributeMap),
});
export type VehicleRegistration = Static<typeof VehicleRegistrationSchema>;

export const InventorySchema = Type.Object({
  installedVersion: Type.String(),
  hardwareId: Type.String(),
  agentVersion: Type.String(),
  model: Type.Optional(Type.String()),
  slots: Type.Object({
    active: Type.Union([Type.Literal('A'), Type.Literal('B')]),
    A: Type.Object({ version: Type.Optional(Type.String()) }),
    B: Type.Object({ version: Type.Optional(Type.String()) }),
  }),
});
export type Inventory = Static<typeof InventorySchema>;

export const VehicleSchema = Type.Object({
  vin: Vin,
  model: Id,
  region: Type.Optional(Id),
  hardwareId: Id,
  /** From the registration, then from the latest presence inventory or SUCCEEDED/ROLLED_BACK report. */
  installedVersion: Type.Optional(SEMVER_LIKE),
  attributes: AttributeMap,
  registeredAt: EpochMs,
  updatedAt: EpochMs,
  online: Type.Boolean(),
  /** When the latest presence message arrived. */
  lastSeen: Type.Optional(EpochMs),
  inventory: Type.Optional(InventorySchema),
});
export type Vehicle = Static<typeof VehicleSchema>;

export const VehicleListQuerySchema = Type.Object({
  model: Type.Optional(Id),
  region: Type.Optional(Id),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String()),
});
export type VehicleListQuery = Static<typeof VehicleListQuerySchema>;
export const VehiclePageSchema = PageSchema(VehicleSchema);

// ---------------------------------------------------------------- artifacts

export const ArtifactMetadataSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  /** Semantic version 2.0.0. */
  version: SEMVER_LIKE,
  hardwareIds: Type.Array(Id, { minItems: 1, maxItems: 256 }),
  contentType: Type.Optional(Type.String({ maxLength: 256 })),
  /** When given, the upload is refused (OTA_ERR_VALIDATION, field sha256) unless the bytes hash to it. */
  sha256: Type.Optional(Sha256),
});
export type ArtifactMetadata = Static<typeof ArtifactMetadataSchema>;

export const ArtifactInfoSchema = Type.Object({
  sha256: Sha256,
  size: Count,
  name: Type.String(),
  version: Type.String(),
  hardwareIds: Type.Array(Id),
  createdAt: EpochMs,
  contentType: Type.Optional(Type.String()),
});
export type ArtifactInfo = Static<typeof ArtifactInfoSchema>;
export const ArtifactPageSchema = PageSchema(ArtifactInfoSchema);

/** The bytes of an upload: a Buffer/Uint8Array or any (async) iterable of chunks, such as a Node Readable. */
export type ArtifactBytes = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Where the artifact's bytes are on disk, for Range serving; the file is immutable (content-addressed). */
export interface ArtifactFile {
  path: string;
  size: number;
  sha256: string;
  contentType: string;
  /** Strong ETag: the quoted SHA-256. */
  etag: string;
  /** The whole content, when the artifact is small enough to be served from memory. */
  bytes?: Uint8Array;
}

export const SigningKeySchema = Type.Object({
  keyId: Id,
  /** SPKI PEM of the Ed25519 public key. */
  publicKeyPem: Type.String(),
  /** Base64 of the 32-byte raw public key (what TrustedKeys holds). */
  publicKey: Type.String(),
  createdAt: EpochMs,
  /** The key new manifests are signed with; the others stay trusted until removed from the fleet. */
  active: Type.Boolean(),
});
export type SigningKey = Static<typeof SigningKeySchema>;

// ---------------------------------------------------------------- campaigns

export const WaveSchema = Type.Object({
  /** Cumulative share of the targets released once this wave starts; the last wave is 100. */
  percent: Type.Number({ exclusiveMinimum: 0, maximum: 100 }),
  /** Share of the released vehicles that must have SUCCEEDED before the next wave, 0..100. */
  successThreshold: Type.Number({ minimum: 0, maximum: 100 }),
});

export const RolloutPolicySchema = Type.Union([
  Type.Object({ kind: Type.Literal('waves'), waves: Type.Array(WaveSchema, { minItems: 1, maxItems: 100 }) }),
  Type.Object({
    kind: Type.Literal('exponential'),
    basePerMinute: Type.Integer({ minimum: 1 }),
    growthFactor: Type.Number({ minimum: 1 }),
    growAfterSuccesses: Type.Integer({ minimum: 1 }),
    maxPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
  }),
]);

export const AbortRuleSchema = Type.Object({
  /** Abort when more than this share of the finished vehicles failed ... */
  failurePercent: Type.Number({ minimum: 0, maximum: 100 }),
  /** ... once at least this many have finished. */
  minFinished: Type.Integer({ minimum: 1 }),
});

export const TimersSchema = Type.Object({
  renotifyAfterMs: Type.Optional(DurationMs),
  renotifyBackoff: Type.Optional(Type.Number({ minimum: 1 })),
  maxRenotifyIntervalMs: Type.Optional(DurationMs),
  /** NOTIFIED this long without a start → TIMED_OUT; off by default. */
  startTimeoutMs: Type.Optional(DurationMs),
  stepTimeoutMs: Type.Optional(DurationMs),
  inProgressTimeoutMs: Type.Optional(DurationMs),
});
export type Timers = Static<typeof TimersSchema>;

export const PreconditionsSchema = Type.Object({
  parked: Type.Optional(Type.Boolean()),
  minBatteryPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  ownerConsent: Type.Optional(Type.Boolean()),
});

export const SelectorSchema = Type.Object({
  model: Type.Optional(Id),
  region: Type.Optional(Id),
  hardwareId: Type.Optional(Id),
  /** Exact installed version. */
  installedVersion: Type.Optional(SEMVER_LIKE),
  /** Every listed attribute must match exactly. */
  attributes: Type.Optional(AttributeMap),
});
export type Selector = Static<typeof SelectorSchema>;

export const CampaignTargetSchema = Type.Union([
  Type.Object({ vins: Type.Array(Vin, { minItems: 1, maxItems: 1_000_000 }) }),
  Type.Object({ selector: SelectorSchema }),
]);
export type CampaignTarget = Static<typeof CampaignTargetSchema>;

export const CampaignCreateSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  /** SHA-256 of an uploaded artifact. */
  artifact: Sha256,
  target: CampaignTargetSchema,
  /** Default: one wave of 100 %. */
  rollout: Type.Optional(RolloutPolicySchema),
  abort: Type.Optional(AbortRuleSchema),
  /** FAILED and TIMED_OUT executions are retried up to this many times per vehicle; default 0. */
  maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  retryDelayMs: Type.Optional(DurationMs),
  timers: Type.Optional(TimersSchema),
  preconditions: Type.Optional(PreconditionsSchema),
  separateInstall: Type.Optional(Type.Boolean()),
  allowDowngrade: Type.Optional(Type.Boolean()),
  /** How long the signed manifest (and its download URL) stays valid after start; default 30 days. */
  manifestTtlMs: Type.Optional(Type.Integer({ minimum: 1000 })),
  /** Maintenance window passed to vehicles in job.notify deadlines. */
  notBefore: Type.Optional(EpochMs),
  startBy: Type.Optional(EpochMs),
});
export type CampaignCreate = Static<typeof CampaignCreateSchema>;

export const CampaignSchema = Type.Object({
  id: Id,
  name: Type.String(),
  /** The job id sent to vehicles (one per campaign). */
  jobId: Id,
  artifact: Sha256,
  target: CampaignTargetSchema,
  rollout: RolloutPolicySchema,
  abort: Type.Optional(AbortRuleSchema),
  maxRetries: Count,
  retryDelayMs: Type.Optional(DurationMs),
  /** The effective timer policy (defaults filled in; startTimeoutMs only when set). */
  timers: Type.Object({
    renotifyAfterMs: DurationMs,
    renotifyBackoff: Type.Number({ minimum: 1 }),
    maxRenotifyIntervalMs: DurationMs,
    startTimeoutMs: Type.Optional(DurationMs),
    stepTimeoutMs: DurationMs,
    inProgressTimeoutMs: DurationMs,
  }),
  preconditions: PreconditionsSchema,
  separateInstall: Type.Boolean(),
  allowDowngrade: Type.Boolean(),
  manifestTtlMs: DurationMs,
  notBefore: Type.Optional(EpochMs),
  startBy: Type.Optional(EpochMs),
  state: CampaignStateSchema,
  createdAt: EpochMs,
  startedAt: Type.Optional(EpochMs),
  finishedAt: Type.Optional(EpochMs),
  /** Vehicles targeted (resolved at start; 0 before). */
  targets: Count,
  /** Vehicles released so far (given a first execution). */
  released: Count,
  /** Vehicles by the status of their latest execution. */
  counts: StatusCountsSchema,
  /** Waves: the wave being released (0-based) and how many there are; exponential: the current rate. */
  progress: Type.Object({
    wave: Type.Optional(Count),
    waves: Type.Optional(Count),
    ratePerMinute: Type.Optional(Count),
    /** The rollout's last decision (continue, blocked, abort, complete, idle) and why. */
    decision: Type.Optional(Type.String()),
    text: Type.Optional(Type.String()),
  }),
  /** Expiry of the manifest signed at start. */
  manifestExpiresAt: Type.Optional(EpochMs),
  keyId: Type.Optional(Id),
});
export type CampaignView = Static<typeof CampaignSchema>;
export const CampaignPageSchema = PageSchema(CampaignSchema);

export const ListQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String()),
});
export type ListQuery = Static<typeof ListQuerySchema>;

// ---------------------------------------------------------------- executions and audit

export const ExecutionViewSchema = Type.Object({
  campaignId: Id,
  jobId: Id,
  vin: Vin,
  executionNumber: Type.Integer({ minimum: 1 }),
  status: ExecutionStatusSchema,
  step: Type.Optional(StepSchema),
  progress: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  bytesDone: Type.Optional(Count),
  bytesTotal: Type.Optional(Count),
  lastSeq: Count,
  /** Paused by the backend (job.pause sent). */
  paused: Type.Boolean(),
  /** The vehicle reports it is waiting (pause, separate install, precondition). */
  waiting: Type.Boolean(),
  reason: Type.Optional(Reason),
  installedVersion: Type.Optional(Type.String()),
  notifyCount: Count,
  queuedAt: EpochMs,
  startedAt: Type.Optional(EpochMs),
  finishedAt: Type.Optional(EpochMs),
  updatedAt: EpochMs,
});
export type ExecutionView = Static<typeof ExecutionViewSchema>;
export const ExecutionPageSchema = PageSchema(ExecutionViewSchema);

export const ExecutionListQuerySchema = Type.Object({
  status: Type.Optional(ExecutionStatusSchema),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String()),
});
export type ExecutionListQuery = Static<typeof ExecutionListQuerySchema>;

export const TransitionCauseSchema = Type.Union(
  [
    'notify',
    'renotify',
    'vehicle-status',
    'cancel',
    'pause',
    'resume',
    'start-timeout',
    'step-timeout',
    'in-progress-timeout',
  ].map((c) => Type.Literal(c)),
);

/** One entry of an execution's audit trail (UNECE R156: what was updated on which vehicle, when, with what result). */
export const TransitionRecordSchema = Type.Object({
  campaignId: Id,
  jobId: Id,
  vin: Vin,
  executionNumber: Type.Integer({ minimum: 1 }),
  at: EpochMs,
  from: ExecutionStatusSchema,
  to: ExecutionStatusSchema,
  fromStep: Type.Optional(StepSchema),
  toStep: Type.Optional(StepSchema),
  cause: TransitionCauseSchema,
  seq: Type.Optional(Count),
  reason: Type.Optional(Reason),
});
export type TransitionRecord = Static<typeof TransitionRecordSchema>;

/** One entry of a campaign's own audit trail. */
export const CampaignTransitionRecordSchema = Type.Object({
  campaignId: Id,
  at: EpochMs,
  from: CampaignStateSchema,
  to: CampaignStateSchema,
  cause: Type.Union(
    ['schedule', 'start', 'pause', 'resume', 'cancel', 'abort', 'complete'].map((c) => Type.Literal(c)),
  ),
  reason: Type.Optional(Type.String()),
});
export type CampaignTransitionRecord = Static<typeof CampaignTransitionRecordSchema>;

// ---------------------------------------------------------------- live events (SSE)

/** What subscribeCampaign delivers; H2 serialises each as one SSE `data:` line with `event: <type>`. */
export const CampaignEventSchema = Type.Union([
  Type.Object({
    type: Type.Literal('campaign.state'),
    campaignId: Id,
    at: EpochMs,
    from: CampaignStateSchema,
    to: CampaignStateSchema,
    cause: Type.String(),
    reason: Type.Optional(Type.String()),
  }),
  Type.Object({
    type: Type.Literal('execution'),
    campaignId: Id,
    at: EpochMs,
    vin: Vin,
    executionNumber: Type.Integer({ minimum: 1 }),
    status: ExecutionStatusSchema,
    step: Type.Optional(StepSchema),
    progress: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    bytesDone: Type.Optional(Count),
    bytesTotal: Type.Optional(Count),
    /** Present when the status or step changed (a transition); absent for a progress-only report. */
    cause: Type.Optional(TransitionCauseSchema),
    from: Type.Optional(ExecutionStatusSchema),
    reason: Type.Optional(Reason),
  }),
  Type.Object({
    type: Type.Literal('counts'),
    campaignId: Id,
    at: EpochMs,
    state: CampaignStateSchema,
    targets: Count,
    released: Count,
    counts: StatusCountsSchema,
  }),
]);
export type CampaignEvent = Static<typeof CampaignEventSchema>;
export type CampaignListener = (event: CampaignEvent) => void;

// ---------------------------------------------------------------- stats

export const BackendStatsSchema = Type.Object({
  mqttConnected: Type.Boolean(),
  statusReceived: Count,
  statusApplied: Count,
  /** Status messages ignored, by IgnoredCode (DUPLICATE, OUT_OF_ORDER, TERMINAL, UNKNOWN_EXECUTION, ...). */
  statusIgnored: Type.Record(Type.String(), Count),
  invalidMessages: Count,
  presenceReceived: Count,
  syncAnswered: Count,
  commandsPublished: Count,
  /** Status messages waiting for the next batch commit. */
  ingestQueue: Count,
  ingestBatches: Count,
  vehicles: Count,
  campaignsRunning: Count,
  activeTimers: Count,
});
export type BackendStats = Static<typeof BackendStatsSchema>;

// ---------------------------------------------------------------- API tokens

/** What a token may do: viewer reads (GET, event streams); operator also writes; admin also manages tokens. */
export const API_ROLES = ['viewer', 'operator', 'admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];
export const ApiRoleSchema = Type.Union(API_ROLES.map((r) => Type.Literal(r)));

/** A token's identifier: the public part of `otk_<id>.<secret>`, safe to log and to show in lists. */
export const TOKEN_ID_PATTERN = '^[0-9a-f]{16}$';

/** The longest a token may be made to last (ten years): longer is a typo, and no expiry is asked for by omission. */
export const MAX_TOKEN_LIFETIME_SECONDS = 10 * 365 * 24 * 3600;

export const ApiTokenCreateSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128, description: 'who or what uses it (shown in lists and logs)' }),
  role: ApiRoleSchema,
  expiresInSeconds: Type.Optional(
    Type.Integer({
      minimum: 60,
      maximum: MAX_TOKEN_LIFETIME_SECONDS,
      description: 'the token is refused (401) from this many seconds after its creation; omitted: it never expires',
    }),
  ),
});
export type ApiTokenCreate = Static<typeof ApiTokenCreateSchema>;

export const ApiTokenInfoSchema = Type.Object({
  id: Type.String({ pattern: TOKEN_ID_PATTERN }),
  name: Type.String(),
  role: ApiRoleSchema,
  createdAt: EpochMs,
  /** Set once revoked; a revoked token is refused (401) and stays listed for the record. */
  revokedAt: Type.Optional(EpochMs),
  /** From this instant the token is refused (401); it stays listed for the record. */
  expiresAt: Type.Optional(EpochMs),
});
export type ApiTokenInfo = Static<typeof ApiTokenInfoSchema>;

export const ApiTokenCreatedSchema = Type.Object({
  /** The secret itself, `otk_<id>.<secret>`: shown this once, only its hash is stored. */
  token: Type.String(),
  info: ApiTokenInfoSchema,
});
export type ApiTokenCreated = Static<typeof ApiTokenCreatedSchema>;

// ---------------------------------------------------------------- errors

export type BackendErrorCode =
  | 'OTA_ERR_NOT_FOUND'
  | 'OTA_ERR_CONFLICT'
  | 'OTA_ERR_INVALID_STATE'
  | 'OTA_ERR_VALIDATION'
  | 'OTA_ERR_STORE'
  | 'OTA_ERR_UNAVAILABLE'
  | 'OTA_ERR_CLOSED';

const STATUS_OF: Record<BackendErrorCode, number> = {
  OTA_ERR_NOT_FOUND: 404,
  OTA_ERR_CONFLICT: 409,
  OTA_ERR_INVALID_STATE: 409,
  OTA_ERR_VALIDATION: 400,
  OTA_ERR_STORE: 500,
  OTA_ERR_UNAVAILABLE: 503,
  OTA_ERR_CLOSED: 503,
};

export const ErrorBodySchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
});
export type ErrorBody = Static<typeof ErrorBodySchema>;

/** Every error the service throws on purpose; `status` is the HTTP status the REST layer answers with. */
export class BackendError extends Error {
  readonly code: BackendErrorCode;
  readonly status: number;
  /** For OTA_ERR_VALIDATION: the offending field (a JSON path such as `target/vins/3` or a name). */
  readonly field?: string;

  constructor(code: BackendErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackendError';
    this.code = code;
    this.status = STATUS_OF[code];
    if (options.field !== undefined) this.field = options.field;
  }

  toJSON(): ErrorBody {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

export function isBackendError(e: unknown): e is BackendError {
  return e instanceof BackendError;
}

// ---------------------------------------------------------------- the service

export interface BackendService {
  // vehicles
  /** Creates or updates (same VIN) a registration. OTA_ERR_VALIDATION for an invalid VIN in the configured mode. */
  registerVehicle(registration: VehicleRegistration): Promise<Vehicle>;
  listVehicles(query?: VehicleListQuery): Promise<Page<Vehicle>>;
  /** OTA_ERR_NOT_FOUND when unknown. */
  getVehicle(vin: string): Promise<Vehicle>;

  // artifacts
  /** Streams the bytes to a temp file while hashing, then renames to its SHA-256; same bytes twice → same info. */
  putArtifact(bytes: ArtifactBytes, metadata: ArtifactMetadata): Promise<ArtifactInfo>;
  listArtifacts(query?: ListQuery): Promise<Page<ArtifactInfo>>;
  getArtifact(sha256: string): Promise<ArtifactInfo>;
  /** The file for Range/ETag serving. OTA_ERR_NOT_FOUND when unknown. */
  openArtifact(sha256: string): Promise<ArtifactFile>;
  /** Checks `/artifacts/{sha256}?exp=…&sig=…` (exp in epoch seconds); false when expired or forged. */
  verifyArtifactUrl(sha256: string, exp: string | undefined, sig: string | undefined): boolean;
  /** A signed download URL under the configured public base URL, valid for ttlMs. */
  signArtifactUrl(sha256: string, ttlMs: number): string;
  /** The manifest signing keys (the active one and the ones still trusted). */
  listSigningKeys(): Promise<SigningKey[]>;
  /** Generates a new active signing key; older keys stay listed (trusted) for rotation. */
  rotateKey(): Promise<SigningKey>;

  // campaigns
  /** A campaign in DRAFT. OTA_ERR_VALIDATION (with field) for an inconsistent plan or an unknown artifact. */
  createCampaign(input: CampaignCreate): Promise<CampaignView>;
  listCampaigns(query?: ListQuery): Promise<Page<CampaignView>>;
  getCampaign(id: string): Promise<CampaignView>;
  /** Resolves the targets, signs the manifest and starts releasing. OTA_ERR_INVALID_STATE unless DRAFT/SCHEDULED. */
  startCampaign(id: string): Promise<CampaignView>;
  /**
   * Stops releasing vehicles. Executions already NOTIFIED / IN_PROGRESS continue (the protocol's rule) unless
   * `executions: true`, which also pauses each of them (job.pause; their timers stop).
   */
  pauseCampaign(id: string, options?: { executions?: boolean }): Promise<CampaignView>;
  /** Continues releasing; executions paused by the backend are resumed (job.resume). */
  resumeCampaign(id: string): Promise<CampaignView>;
  /** Cancels every execution not finished (job.cancel with force to vehicles that know about it). */
  cancelCampaign(id: string): Promise<CampaignView>;
  listExecutions(campaignId: string, query?: ExecutionListQuery): Promise<Page<ExecutionView>>;
  /** Every execution of this vehicle in the campaign (newest first) with its transitions, oldest first. */
  executionHistory(
    campaignId: string,
    vin: string,
  ): Promise<{ executions: ExecutionView[]; transitions: TransitionRecord[] }>;
  campaignHistory(campaignId: string): Promise<CampaignTransitionRecord[]>;
  /** Live events of one campaign; returns the unsubscribe function. OTA_ERR_NOT_FOUND for an unknown campaign. */
  subscribeCampaign(campaignId: string, listener: CampaignListener): Promise<() => void>;

  stats(): Promise<BackendStats>;

  // API tokens
  /** A new random token; the secret is in the answer only (the store keeps its SHA-256). */
  createApiToken(input: ApiTokenCreate): Promise<ApiTokenCreated>;
  /** Every token, revoked ones included, oldest first. */
  listApiTokens(): Promise<ApiTokenInfo[]>;
  /** OTA_ERR_NOT_FOUND when unknown; revoking twice keeps the first revocation time. */
  revokeApiToken(id: string): Promise<ApiTokenInfo>;
  /** The token's info when it is well-formed, known and not revoked; undefined otherwise (compared in constant time). */
  authenticateApiToken(token: string): Promise<ApiTokenInfo | undefined>;
  /** One token's info (sessions re-check it on every request); undefined when unknown. */
  getApiToken(id: string): Promise<ApiTokenInfo | undefined>;
}
