// @otalink/ota: the OTA control protocol shared by the backend and the vehicle agent.
// Everything here is pure (browser, small device, fake clock). Ed25519 and SHA-256 from node:crypto live in
// crypto-node.ts, reached as `@otalink/ota/node`, so a browser bundle of this entry never pulls in node:crypto.

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
