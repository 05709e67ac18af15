// Every OTA message as a TypeBox schema (JSON Schema for the docs and the OpenAPI document, static types for both
// ends), and the one way in and out: parseMessage never throws, whatever arrives; encodeMessage refuses to send
// anything that the other end would refuse.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { OtaError, type OtaErrorCode } from './errors.js';
import { SignedManifestSchema } from './manifest.js';
import { ByteCount, compile, DurationMs, EpochMs, firstProblem, Id, Uuid } from './schema-common.js';
import { SEMVER_PATTERN } from './semver.js';

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** Default size cap for one message; a job.notify with a manifest is about 1 KiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;

const Envelope = {
  v: Type.Literal(PROTOCOL_VERSION),
  msgId: Uuid,
  ts: EpochMs,
};

const ExecutionRef = {
  jobId: Id,
  executionNumber: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
};

const Reason = Type.Object({
  /** Stable machine-readable code, OTA_ERR_* or an agent-specific AGENT_* code. */
  code: Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' }),
  text: Type.String({ maxLength: 1024 }),
});

export const STEPS = ['DOWNLOADING', 'VERIFYING', 'INSTALLING', 'ACTIVATING'] as const;
export type Step = (typeof STEPS)[number];
export const StepSchema = Type.Union(STEPS.map((s) => Type.Literal(s)));

/** The statuses a vehicle may report; the others (QUEUED, NOTIFIED, TIMED_OUT, CANCELED) are the backend's. */
export const REPORTABLE_STATUSES = ['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'ROLLED_BACK'] as const;
export type ReportableStatus = (typeof REPORTABLE_STATUSES)[number];

export const EXECUTION_STATUSES = [
  'QUEUED',
  'NOTIFIED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'CANCELED',
  'ROLLED_BACK',
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

const Deadlines = Type.Object({
  /** Do not start before (maintenance window opening), epoch ms. */
  notBefore: Type.Optional(EpochMs),
  /** Start (first IN_PROGRESS) by this time or report REJECTED with OTA_ERR_DEADLINE, epoch ms. */
  startBy: Type.Optional(EpochMs),
  /** The backend times an execution out when no progress report arrives within this. */
  stepTimeoutMs: Type.Optional(DurationMs),
  /** The backend times an execution out this long after it started. */
  inProgressTimeoutMs: Type.Optional(DurationMs),
});

const Preconditions = Type.Object({
  /** Vehicle must be parked (ignition off, gear in P). */
  parked: Type.Optional(Type.Boolean()),
  /** Minimum state of charge, percent. */
  minBatteryPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  /** The owner must consent on the vehicle before installing. */
  ownerConsent: Type.Optional(Type.Boolean()),
});

/** What a vehicle needs to run one execution; sent in job.notify and again in sync.result. */
const JobFields = {
  ...ExecutionRef,
  campaignId: Id,
  manifest: SignedManifestSchema,
  deadlines: Deadlines,
  /** When true, the vehicle stops after VERIFYING and installs only after a job.resume. */
  separateInstall: Type.Boolean(),
  preconditions: Preconditions,
};

export const JobNotifySchema = Type.Object({ ...Envelope, type: Type.Literal('job.notify'), ...JobFields });
export const JobCancelSchema = Type.Object({
  ...Envelope,
  type: Type.Literal('job.cancel'),
  ...ExecutionRef,
  /** Also stop an execution already in progress (at the next safe point; never during ACTIVATING). */
  force: Type.Boolean(),
});
export const JobPauseSchema = Type.Object({ ...Envelope, type: Type.Literal('job.pause'), ...ExecutionRef });
export const JobResumeSchema = Type.Object({ ...Envelope, type: Type.Literal('job.resume'), ...ExecutionRef });

export const JobStatusSchema = Type.Object({
  ...Envelope,
  type: Type.Literal('job.status'),
  ...ExecutionRef,
  /** Monotonic per execution, from 1; persisted by the vehicle across restarts. */
  seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  status: Type.Union(REPORTABLE_STATUSES.map((s) => Type.Literal(s))),
  /** Required with IN_PROGRESS. */
  step: Type.Optional(StepSchema),
  /** Progress of the current step, 0..100. */
  progress: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  bytesDone: Type.Optional(ByteCount),
  bytesTotal: Type.Optional(ByteCount),
  /** True while the vehicle waits (job.pause, separateInstall, or a precondition not yet met). */
  paused: Type.Optional(Type.Boolean()),
  /** Why: required in spirit with FAILED, REJECTED and ROLLED_BACK. */
  reason: Type.Optional(Reason),
  /** The version running after SUCCEEDED or ROLLED_BACK. */
  installedVersion: Type.Optional(Type.String({ pattern: SEMVER_PATTERN, maxLength: 256 })),
});

const ClientToken = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' });

export const SyncSchema = Type.Object({ ...Envelope, type: Type.Literal('sync'), clientToken: ClientToken });

const PendingExecution = Type.Object({
  ...JobFields,
  /** The backend's view: NOTIFIED or IN_PROGRESS. */
  status: Type.Union([Type.Literal('NOTIFIED'), Type.Literal('IN_PROGRESS')]),
  /** Highest seq the backend applied (0 if none): the vehicle continues above it. */
  lastSeq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  /** True when the execution is paused by the backend. */
  paused: Type.Boolean(),
});

export const SyncResultSchema = Type.Object({
  ...Envelope,
  type: Type.Literal('sync.result'),
  clientToken: ClientToken,
  /** Every execution the vehicle should be working on; anything it holds that is not listed is no longer wanted. */
  executions: Type.Array(PendingExecution, { maxItems: 64 }),
});

const Slot = Type.Object({
  version: Type.Optional(Type.String({ maxLength: 256 })),
});

export const PresenceSchema = Type.Object({
  ...Envelope,
  type: Type.Literal('presence'),
  online: Type.Boolean(),
  /** Present when online (the will message, sent by the broker, carries only online: false). */
  inventory: Type.Optional(
    Type.Object({
      installedVersion: Type.String({ maxLength: 256 }),
      hardwareId: Id,
      agentVersion: Type.String({ maxLength: 256 }),
      model: Type.Optional(Id),
      slots: Type.Object({
        active: Type.Union([Type.Literal('A'), Type.Literal('B')]),
        A: Slot,
        B: Slot,
      }),
    }),
  ),
});

const CountOf = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const StatusCounts = Type.Object({
  QUEUED: Type.Optional(CountOf),
  NOTIFIED: Type.Optional(CountOf),
  IN_PROGRESS: Type.Optional(CountOf),
  SUCCEEDED: Type.Optional(CountOf),
  FAILED: Type.Optional(CountOf),
  REJECTED: Type.Optional(CountOf),
  TIMED_OUT: Type.Optional(CountOf),
  CANCELED: Type.Optional(CountOf),
  ROLLED_BACK: Type.Optional(CountOf),
});

export const CAMPAIGN_STATES = ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELED', 'ABORTED'] as const;
export type CampaignStateName = (typeof CAMPAIGN_STATES)[number];

export const FleetStatusSchema = Type.Object({
  ...Envelope,
  type: Type.Literal('fleet.status'),
  model: Id,
  vehicles: CountOf,
  online: CountOf,
  /** Vehicles by installed version. */
  versions: Type.Record(Type.String({ maxLength: 256 }), CountOf),
  campaigns: Type.Array(
    Type.Object({
      campaignId: Id,
      state: Type.Union(CAMPAIGN_STATES.map((s) => Type.Literal(s))),
      /** Vehicles of this model by the state of their latest execution. */
      counts: StatusCounts,
    }),
    { maxItems: 256 },
  ),
});

export const MESSAGE_SCHEMAS = {
  'job.notify': JobNotifySchema,
  'job.cancel': JobCancelSchema,
  'job.pause': JobPauseSchema,
  'job.resume': JobResumeSchema,
  'job.status': JobStatusSchema,
  sync: SyncSchema,
  'sync.result': SyncResultSchema,
  presence: PresenceSchema,
  'fleet.status': FleetStatusSchema,
} as const;

export type MessageType = keyof typeof MESSAGE_SCHEMAS;
export const MESSAGE_TYPES = Object.keys(MESSAGE_SCHEMAS) as MessageType[];

export type JobNotify = Static<typeof JobNotifySchema>;
export type JobCancel = Static<typeof JobCancelSchema>;
export type JobPause = Static<typeof JobPauseSchema>;
export type JobResume = Static<typeof JobResumeSchema>;
export type JobStatus = Static<typeof JobStatusSchema>;
export type Sync = Static<typeof SyncSchema>;
export type SyncResult = Static<typeof SyncResultSchema>;
export type PendingExecutionEntry = Static<typeof PendingExecution>;
export type Presence = Static<typeof PresenceSchema>;
export type FleetStatus = Static<typeof FleetStatusSchema>;

export type MessageOf<T extends MessageType> = Static<(typeof MESSAGE_SCHEMAS)[T]>;
export type OtaMessage = { [T in MessageType]: MessageOf<T> }[MessageType];

/** Messages by the topic they travel on. */
export const COMMAND_TYPES = ['job.notify', 'job.cancel', 'job.pause', 'job.resume', 'sync.result'] as const;
export const STATUS_TYPES = ['job.status'] as const;
export const REQUEST_TYPES = ['sync'] as const;
export const PRESENCE_TYPES = ['presence'] as const;
export const FLEET_TYPES = ['fleet.status'] as const;

export type ParseErrorCode = Extract<
  OtaErrorCode,
  | 'OTA_ERR_INVALID_MESSAGE'
  | 'OTA_ERR_UNSUPPORTED_VERSION'
  | 'OTA_ERR_UNKNOWN_TYPE'
  | 'OTA_ERR_UNEXPECTED_TYPE'
  | 'OTA_ERR_MESSAGE_TOO_LARGE'
>;

export interface ParseError {
  code: ParseErrorCode;
  /** JSON Pointer of the offending field; '' for the whole message. */
  path: string;
  text: string;
  /** The msgId when the envelope got that far, so a reply or a log line can name the message. */
  msgId?: string;
}

export type ParseResult<M = OtaMessage> = { ok: true; message: M } | { ok: false; error: ParseError };

export interface ParseOptions<T extends MessageType = MessageType> {
  /** Size cap in bytes (UTF-8); default 64 KiB. */
  maxBytes?: number;
  /** Accept only these types (the ones the topic carries); others give OTA_ERR_UNEXPECTED_TYPE. */
  types?: readonly T[];
}

const checkers = new Map<MessageType, TypeCheck<TSchema>>();

function checkerFor(type: MessageType): TypeCheck<TSchema> {
  let check = checkers.get(type);
  if (check === undefined) {
    check = compile(MESSAGE_SCHEMAS[type]);
    checkers.set(type, check);
  }
  return check;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Decodes and validates one message. Never throws: oversized input, invalid UTF-8, invalid JSON, a non-object, an
 * unknown version or type and any schema error each come back as `{ ok: false, error }` naming the field path.
 * Unknown extra fields are kept and tolerated (forward compatibility within a protocol version).
 */
export function parseMessage<T extends MessageType = MessageType>(
  input: Uint8Array | string,
  options: ParseOptions<T> = {},
): ParseResult<MessageOf<T>> {
  try {
    return parseUnsafe(input, options) as ParseResult<MessageOf<T>>;
  } catch (e) {
    // Defence in depth: nothing above should throw, but a receiver must never crash on input.
    return fail('OTA_ERR_INVALID_MESSAGE', '', `unparseable message: ${(e as Error).message}`);
  }
}

function parseUnsafe(input: Uint8Array | string, options: ParseOptions): ParseResult {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  let text: string;
  if (typeof input === 'string') {
    // A UTF-16 code unit is at most 3 UTF-8 bytes; count exactly only when the cheap bound is inconclusive.
    if (input.length > maxBytes || (input.length * 3 > maxBytes && new TextEncoder().encode(input).length > maxBytes)) {
      return fail('OTA_ERR_MESSAGE_TOO_LARGE', '', `message larger than ${maxBytes} bytes`);
    }
    text = input;
  } else {
    if (input.length > maxBytes) {
      return fail('OTA_ERR_MESSAGE_TOO_LARGE', '', `message of ${input.length} bytes, limit ${maxBytes}`);
    }
    try {
      text = utf8.decode(input);
    } catch {
      return fail('OTA_ERR_INVALID_MESSAGE', '', 'message is not valid UTF-8');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail('OTA_ERR_INVALID_MESSAGE', '', `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('OTA_ERR_INVALID_MESSAGE', '', 'a message is a JSON object');
  }
  const record = value as Record<string, unknown>;
  const msgId = typeof record.msgId === 'string' && UUID.test(record.msgId) ? record.msgId : undefined;
  const v = record.v;
  if (v === undefined) return fail('OTA_ERR_INVALID_MESSAGE', '/v', 'missing protocol version v', msgId);
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    return fail('OTA_ERR_INVALID_MESSAGE', '/v', 'protocol version v must be an integer', msgId);
  }
  if (v !== PROTOCOL_VERSION) {
    return fail(
      'OTA_ERR_UNSUPPORTED_VERSION',
      '/v',
      `protocol version ${v} is not supported (this end speaks ${PROTOCOL_VERSION})`,
      msgId,
    );
  }
  const type = record.type;
  if (typeof type !== 'string') return fail('OTA_ERR_INVALID_MESSAGE', '/type', 'type must be a string', msgId);
  if (!Object.hasOwn(MESSAGE_SCHEMAS, type)) {
    return fail('OTA_ERR_UNKNOWN_TYPE', '/type', `unknown message type ${JSON.stringify(type.slice(0, 64))}`, msgId);
  }
  const messageType = type as MessageType;
  if (options.types !== undefined && !options.types.includes(messageType)) {
    return fail('OTA_ERR_UNEXPECTED_TYPE', '/type', `${type} is not expected here`, msgId);
  }
  const check = checkerFor(messageType);
  if (!check.Check(value)) {
    const problem = firstProblem(check, value) ?? { path: '', text: 'does not match the schema' };
    return fail('OTA_ERR_INVALID_MESSAGE', problem.path, `${problem.path || '/'}: ${problem.text}`, msgId);
  }
  const semantic = semanticProblem(value as OtaMessage);
  if (semantic !== undefined) {
    return fail('OTA_ERR_INVALID_MESSAGE', semantic.path, `${semantic.path}: ${semantic.text}`, msgId);
  }
  return { ok: true, message: value as OtaMessage };
}

/** Rules JSON Schema cannot say simply: they tie two fields together. */
function semanticProblem(message: OtaMessage): { path: string; text: string } | undefined {
  if (message.type === 'job.status') {
    if (message.status === 'IN_PROGRESS' && message.step === undefined) {
      return { path: '/step', text: 'IN_PROGRESS needs a step' };
    }
    if (message.bytesDone !== undefined && message.bytesTotal !== undefined && message.bytesDone > message.bytesTotal) {
      return { path: '/bytesDone', text: 'bytesDone exceeds bytesTotal' };
    }
  }
  if (message.type === 'presence' && message.online && message.inventory === undefined) {
    return { path: '/inventory', text: 'an online presence carries the inventory' };
  }
  return undefined;
}

function fail(code: ParseErrorCode, path: string, text: string, msgId?: string): ParseResult<never> {
  return { ok: false, error: msgId === undefined ? { code, path, text } : { code, path, text, msgId } };
}

/**
 * UTF-8 JSON of a message, after checking it against its schema (and the cross-field rules) so that nothing we send
 * is refused by the other end. Throws OtaError OTA_ERR_INVALID_MESSAGE: an invalid outgoing message is a bug.
 */
export function encodeMessage(message: OtaMessage): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(message));
  const back = parseMessage(bytes, { maxBytes: Number.MAX_SAFE_INTEGER });
  if (!back.ok) throw new OtaError('OTA_ERR_INVALID_MESSAGE', `refusing to encode: ${back.error.text}`);
  return bytes;
}

type Body<T extends MessageType> = Omit<MessageOf<T>, 'v' | 'msgId' | 'ts' | 'type'>;

/** Builds a message with a fresh envelope: v, a random UUID msgId (Web Crypto, present in Node and browsers), ts. */
export function createMessage<T extends MessageType>(
  type: T,
  body: Body<T>,
  envelope: { msgId?: string; ts: number },
): MessageOf<T> {
  return {
    v: PROTOCOL_VERSION,
    msgId: envelope.msgId ?? globalThis.crypto.randomUUID(),
    ts: envelope.ts,
    type,
    ...body,
  } as unknown as MessageOf<T>;
}
