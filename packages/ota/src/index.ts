// @otalink/ota: the OTA control protocol shared by the backend and the vehicle agent.
// Everything is pure except crypto-node.ts (Ed25519 and SHA-256 from node:crypto), re-exported at the end because the
// package has a single entry point; a browser bundle should import the pure modules only.

export type {
  AbortRule,
  Batch,
  BatchDecision,
  Campaign,
  CampaignEvent,
  CampaignPlan,
  CampaignState,
  CampaignTransition,
  CampaignUpdate,
  RolloutCounts,
  RolloutPolicy,
  Wave,
} from './campaign.js';
export {
  applyCampaignEvent,
  CAMPAIGN_TRANSITIONS,
  createCampaign,
  isCampaignTerminal,
  isDueToStart,
  planNextBatch,
  planProblem,
  waveSize,
} from './campaign.js';
export { canonicalJson, canonicalJsonBytes } from './canonical-json.js';
// Node-only (node:crypto).
export type { Ed25519KeyPair, Sha256Hasher } from './crypto-node.js';
export {
  createSha256,
  generateEd25519KeyPair,
  keyIdOf,
  publicKeyBytes,
  sha256Hex,
  signManifest,
  verifyEd25519,
} from './crypto-node.js';
export type { SeenMessageIdsOptions, SeenMessageIdsSnapshot } from './dedup.js';
export { SeenMessageIds } from './dedup.js';
export type { OtaErrorCode } from './errors.js';
export { OtaError } from './errors.js';
export type {
  Deadline,
  Execution,
  ExecutionUpdate,
  IgnoredCode,
  StatusReport,
  TimerPolicy,
  Transition,
  TransitionCause,
} from './execution.js';
export {
  applyStatus,
  cancel,
  createExecution,
  DEFAULT_TIMER_POLICY,
  fireDeadline,
  isTerminal,
  nextDeadline,
  notify,
  pause,
  RETRYABLE_STATUSES,
  resume,
  retryExecution,
  TERMINAL_STATUSES,
  timeout,
} from './execution.js';
export type {
  DownloadCheck,
  DownloadRefusalCode,
  Manifest,
  ManifestRefusalCode,
  ManifestVerdict,
  Refusal,
  SignatureVerifier,
  SignedManifest,
  TrustedKey,
  VerifyManifestOptions,
} from './manifest.js';
export {
  checkArtifact,
  checkDeclaredSize,
  ManifestSchema,
  manifestSigningBytes,
  SignedManifestSchema,
  TrustedKeys,
  verifyManifest,
} from './manifest.js';
export type {
  CampaignStateName,
  ExecutionStatus,
  FleetStatus,
  JobCancel,
  JobNotify,
  JobPause,
  JobResume,
  JobStatus,
  MessageOf,
  MessageType,
  OtaMessage,
  ParseError,
  ParseErrorCode,
  ParseOptions,
  ParseResult,
  PendingExecutionEntry,
  Presence,
  ReportableStatus,
  Step,
  Sync,
  SyncResult,
} from './messages.js';
export {
  CAMPAIGN_STATES,
  COMMAND_TYPES,
  createMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  EXECUTION_STATUSES,
  encodeMessage,
  FLEET_TYPES,
  MESSAGE_SCHEMAS,
  MESSAGE_TYPES,
  PRESENCE_TYPES,
  PROTOCOL_VERSION,
  parseMessage,
  REPORTABLE_STATUSES,
  REQUEST_TYPES,
  STATUS_TYPES,
  STEPS,
} from './messages.js';
export type { SemVer } from './semver.js';
export { compareSemver, isSemver, parseSemver } from './semver.js';
export type { ParsedTopic, TopicOptions, VehicleTopicKind, VinMode } from './topics.js';
export { DEFAULT_BACKEND_GROUP, DEFAULT_PREFIX, isValidModel, isValidVin, OtaTopics } from './topics.js';
