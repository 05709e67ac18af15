// @otalink/agent: the vehicle's TCU agent. A pure update state machine (machine.ts) and its adapters: MQTT
// (agent.ts), the resumable HTTPS downloader, the A/B slots, the journal and the in-process restart supervisor.
export {
  AGENT_VERSION,
  type Agent,
  type AgentCounters,
  type AgentEvents,
  type AgentExit,
  type AgentHookContext,
  type AgentOptions,
  createAgent,
} from './agent.js';
export { type DownloadOptions, type DownloadResult, download } from './downloader.js';
export {
  AgentError,
  COMPACT_BYTES,
  JOURNAL_FILE,
  Journal,
  type JournalOptions,
  LEGACY_JOURNAL_FILE,
  MAX_OPEN_JOURNALS,
  setMaxOpenJournals,
} from './journal.js';
export { Link } from './link.js';
export {
  type Action,
  type Command,
  type ExecutionRef,
  type MachineConfig,
  type MachineEnv,
  type MachineEvent,
  type MachineResult,
  preconditionProblem,
  step,
  type VehicleConditions,
} from './machine.js';
export { createTickerScheduler, type Scheduler, type TickerScheduler, timerScheduler } from './scheduler.js';
export { hashFile, type SlotMeta, SlotStore } from './slots.js';
export {
  type AgentState,
  type CurrentJob,
  type FinishedJob,
  initialState,
  installedVersionOf,
  type JobSpec,
  type Phase,
  type Report,
  type SlotName,
} from './state.js';
export { type AgentRunner, RESTART_EXIT_CODE, runAgent } from './supervisor.js';
