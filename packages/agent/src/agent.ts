// The agent's I/O shell: reads the journal, feeds the pure machine with MQTT commands and adapter results, writes
// the journal before any action runs (write-ahead), and runs the actions: MQTT reports, the download, verification,
// the A/B installation, the activation restart and the health check. One lifetime of the agent is one Agent
// object; an activation ends it with `exit.reason === 'restart'` and runAgent() (or a process supervisor, for
// `otalink agent`) starts the next one from the journal.
import { mkdir } from 'node:fs/promises';
import {
  type ClientOptions,
  type Message,
  MqttClient,
  type MqttClient as MqttClientType,
  type TransportFactory,
} from '@otalink/mqtt';
import {
  COMMAND_TYPES,
  createMessage,
  encodeMessage,
  type JobStatus,
  type Manifest,
  OtaTopics,
  type Presence,
  parseMessage,
  type TopicOptions,
  type TrustedKey,
  TrustedKeys,
} from '@otalink/ota';
import { verifyEd25519 } from '@otalink/ota/node';
import type { Logger } from 'pino';
import { download } from './downloader.js';
import { Journal } from './journal.js';
import type { Link } from './link.js';
import { type Action, type MachineConfig, type MachineEvent, step, type VehicleConditions } from './machine.js';
import { type Scheduler, timerScheduler } from './scheduler.js';
import { SlotStore } from './slots.js';
import { type AgentState, initialState, installedVersionOf, type SlotName } from './state.js';

export const AGENT_VERSION = '0.1.0';
const SESSION_EXPIRY_SECONDS = 30 * 24 * 3600;

export interface AgentHookContext {
  vin: string;
  jobId: string;
  executionNumber: number;
  slot: SlotName;
  manifest: Manifest;
}

export interface AgentOptions {
  /** The vehicle's VIN: MQTT client id and topic level. */
  vin: string;
  /** Journal, download and slots live here; one directory per vehicle. */
  stateDir: string;
  hardwareId: string;
  model?: string;
  /** The factory-installed version in slot A, used only when the state directory is new. */
  installedVersion?: string;
  agentVersion?: string;
  /** The keys manifests may be signed with (several, for rotation). */
  trustedKeys: TrustedKeys | Iterable<TrustedKey>;
  /**
   * The broker: URL plus our client's options (tls: { ca, cert, key } for mutual TLS, or username/password).
   * clientId, clean, will and the session expiry are set by the agent.
   */
  mqtt: ClientOptions & { url: string };
  topics?: TopicOptions;
  /** Artifact downloads. */
  download?: {
    /** CA certificates (PEM) that the artifact server's certificate must chain to. */
    ca?: string | string[];
    allowHttp?: boolean;
    maxAttempts?: number;
    initialDelayMs?: number;
    maxDelayMs?: number;
    bytesPerSecond?: number;
  };
  /** The vehicle's condition for preconditions; a function is read each time they are checked. */
  vehicle?: VehicleConditions | (() => VehicleConditions);
  /** Tuning of the update machine (progress rate, precondition wait, queue size...). */
  machine?: Omit<MachineConfig, 'hardwareId' | 'trustedKeys' | 'verifySignature' | 'allowHttp'>;
  hooks?: {
    /** Runs after the move into the slot; throw to fail the installation (FAILED AGENT_ERR_INSTALL_FAILED). */
    install?(context: AgentHookContext): Promise<void> | void;
    /** The health check of the new version after the restart; default: the slot holds the manifest's artifact. */
    healthCheck?(context: AgentHookContext): Promise<{ ok: boolean; text?: string }> | { ok: boolean; text?: string };
  };
  /** fsync journal, slot meta and completed downloads (default true). */
  fsync?: boolean;
  now?: () => number;
  scheduler?: Scheduler;
  /** A cuttable link (simulation); default: the ordinary transports. */
  link?: Link;
  logger?: Logger;
  newMsgId?: () => string;
}

export type AgentExit = { reason: 'restart'; slot: SlotName } | { reason: 'closed' } | { reason: 'killed' };

export interface AgentCounters {
  messagesIn: number;
  messagesOut: number;
  reports: number;
}

export interface AgentEvents {
  /** Every job.status handed to MQTT. */
  report?(report: JobStatus): void;
  /** The journal state after each step. */
  state?(state: AgentState): void;
  /** Every MQTT message received on the command topic, and every one handed to the client to publish. */
  message?(direction: 'in' | 'out'): void;
}

export interface Agent {
  readonly vin: string;
  readonly state: AgentState;
  readonly counters: AgentCounters;
  readonly client: MqttClientType;
  /** Settles when this lifetime ends: an activation restart, close() or kill(). */
  readonly exited: Promise<AgentExit>;
  /** Clean shutdown: presence offline, flush, disconnect. Journal already durable. */
  close(): Promise<void>;
  /** A crash: the socket drops without DISCONNECT (the broker publishes the will), nothing more is written. */
  kill(): Promise<void>;
  /** Feed an event as the vehicle would (for example a tick after the vehicle parked). */
  poke(): void;
}

/** Starts one lifetime of the agent. Resolves once the journal is read and the first connection is underway. */
export async function createAgent(options: AgentOptions, events: AgentEvents = {}): Promise<Agent> {
  const shell = new AgentShell(options, events);
  await shell.start();
  return shell;
}

class AgentShell implements Agent {
  readonly vin: string;
  state: AgentState;
  readonly counters: AgentCounters = { messagesIn: 0, messagesOut: 0, reports: 0 };
  client: MqttClient;
  readonly exited: Promise<AgentExit>;
  private resolveExit!: (exit: AgentExit) => void;
  private readonly topics: OtaTopics;
  private readonly journal: Journal;
  private readonly slots: SlotStore;
  private readonly config: MachineConfig;
  private readonly now: () => number;
  private readonly scheduler: Scheduler;
  private readonly log: Logger | undefined;
  private readonly queue: MachineEvent[] = [];
  private draining = false;
  private stopped = false;
  private subscribed = false;
  private downloadAbort: AbortController | undefined;
  private downloadRun: Promise<void> | undefined;
  /**
   * The slot store's work in flight (verify, install, discard). A process that dies stops it; an in-process kill
   * cannot, so kill() waits for it: a lifetime that went on moving files after the next one started (removing the
   * meta the next one had just written) made the next one's health check fail.
   */
  private readonly slotWork = new Set<Promise<unknown>>();
  private cancelWake: (() => void) | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private restartSlot: SlotName | undefined;
  private lastProgressPercent = -1;
  private lastEtag: string | undefined;

  constructor(
    private readonly options: AgentOptions,
    private readonly events: AgentEvents,
  ) {
    this.vin = options.vin;
    this.topics = new OtaTopics(options.topics);
    this.now = options.now ?? Date.now;
    this.scheduler = options.scheduler ?? timerScheduler;
    this.log = options.logger?.child({ vin: options.vin });
    const fsync = options.fsync ?? true;
    this.journal = new Journal(options.stateDir, { fsync });
    this.slots = new SlotStore(options.stateDir, fsync);
    const keys =
      options.trustedKeys instanceof TrustedKeys ? options.trustedKeys : new TrustedKeys(options.trustedKeys);
    this.config = {
      ...options.machine,
      hardwareId: options.hardwareId,
      trustedKeys: keys,
      verifySignature: verifyEd25519,
      allowHttp: options.download?.allowHttp ?? false,
    };
    this.state = initialState(options.installedVersion);
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    this.client = this.makeClient();
  }

  async start(): Promise<void> {
    const saved = await this.journal.read();
    // Only a new vehicle needs its directory made: a restart (every activation) skips the call.
    if (saved === undefined) await mkdir(this.options.stateDir, { recursive: true });
    else this.state = saved;
    this.dispatch({ type: 'booted' });
    // A vehicle that boots without network still runs its update; reports wait in the client's queue.
    this.startClient(0);
  }

  private makeClient(): MqttClient {
    const offline = createMessage('presence', { online: false }, { ts: this.now() });
    const transport: TransportFactory | undefined = this.options.link?.transport;
    const mqtt = this.options.mqtt;
    const client = new MqttClient({
      reconnect: { initialDelayMs: 1000, maxDelayMs: 60_000 },
      ...mqtt,
      // No client store unless given one: the journal keeps the vehicle's state, and a report lost with the
      // process is sent again after the next sync.result (see startClient).
      store: mqtt.store ?? false,
      ...(transport === undefined ? {} : { transport }),
      clientId: this.vin,
      clean: false,
      properties: { ...mqtt.properties, sessionExpiryInterval: SESSION_EXPIRY_SECONDS },
      will: { topic: this.topics.presence(this.vin), payload: encodeMessage(offline), qos: 1, retain: true },
    });
    client.on('connected', () => this.onConnected());
    client.on('message', (message) => this.onMessage(message));
    client.on('error', (error) => this.log?.debug({ err: error }, 'mqtt client error'));
    return client;
  }

  /**
   * The client's start() gives up when its first attempt fails (later drops go through its own reconnect), so a
   * vehicle that boots out of coverage retries here with backoff and full jitter, with a fresh client each time.
   * Reports queued in the failed client are not lost for good: the next sync.result shows the backend's lastSeq
   * and the machine resends what it missed.
   */
  private startClient(attempt: number): void {
    const client = this.client;
    client.start().catch((error: unknown) => {
      if (this.stopped || client !== this.client) return;
      this.log?.debug({ err: error, attempt }, 'connection failed; retrying');
      const delay = Math.random() * Math.min(60_000, 1000 * 2 ** attempt);
      this.cancelConnectRetry = this.scheduler.at(this.now() + delay, () => {
        if (this.stopped) return;
        this.subscribed = false;
        this.client = this.makeClient();
        this.startClient(attempt + 1);
      });
    });
  }

  private cancelConnectRetry: (() => void) | undefined;

  poke(): void {
    this.dispatch({ type: 'tick' });
  }

  async close(): Promise<void> {
    if (this.stopped) return this.exited.then(() => undefined);
    await this.drainIdle();
    await this.shutdown({ reason: 'closed' });
  }

  async kill(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopTimersAndWork();
    await this.client.end({ force: true }).catch(() => undefined);
    await this.settleWork();
    this.resolveExit({ reason: 'killed' });
  }

  // ---- MQTT ----

  private onConnected(): void {
    if (this.stopped) return;
    if (!this.subscribed) {
      this.subscribed = true;
      this.client.subscribe(this.topics.command(this.vin), { qos: 1 }).catch((error: unknown) => {
        this.subscribed = false;
        this.log?.warn({ err: error }, 'subscribe failed');
      });
    }
    this.publishPresence();
    this.dispatch({ type: 'connected' });
  }

  private onMessage(message: Message): void {
    if (this.stopped || message.topic !== this.topics.command(this.vin)) return;
    this.counters.messagesIn += 1;
    this.events.message?.('in');
    const parsed = parseMessage(message.payload, { types: COMMAND_TYPES });
    if (parsed.ok) {
      this.dispatch({ type: 'command', message: parsed.message });
      return;
    }
    this.log?.warn({ error: parsed.error }, 'invalid command ignored');
    const ref = readableNotify(message.payload);
    if (ref !== undefined) {
      this.dispatch({
        type: 'invalidNotify',
        ref,
        code: parsed.error.code,
        text: parsed.error.text,
        ...(parsed.error.msgId === undefined ? {} : { msgId: parsed.error.msgId }),
      });
    }
  }

  private publish(topic: string, bytes: Uint8Array, retain = false): void {
    if (this.stopped) return;
    this.counters.messagesOut += 1;
    this.events.message?.('out');
    this.client.publish(topic, bytes, { qos: 1, retain }).catch((error: unknown) => {
      if (!this.stopped) this.log?.warn({ err: error, topic }, 'publish failed');
    });
  }

  private publishPresence(): void {
    const slots = this.state.slots;
    const presence: Presence = createMessage(
      'presence',
      {
        online: true,
        inventory: {
          installedVersion: installedVersionOf(slots) ?? '0.0.0',
          hardwareId: this.options.hardwareId,
          agentVersion: this.options.agentVersion ?? AGENT_VERSION,
          ...(this.options.model === undefined ? {} : { model: this.options.model }),
          slots: { active: slots.active, A: { ...slots.A }, B: { ...slots.B } },
        },
      },
      { ts: this.now() },
    );
    this.publish(this.topics.presence(this.vin), encodeMessage(presence), true);
  }

  // ---- the event loop ----

  private dispatch(event: MachineEvent): void {
    if (this.stopped) return;
    this.queue.push(event);
    if (!this.draining) void this.drain();
  }

  private idleWaiters: Array<() => void> = [];

  private drainIdle(): Promise<void> {
    if (!this.draining) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let event = this.queue.shift(); event !== undefined && !this.stopped; event = this.queue.shift()) {
        const result = step(this.state, event, {
          now: this.now(),
          config: this.config,
          vehicle: this.vehicle(),
          newMsgId: this.options.newMsgId ?? (() => globalThis.crypto.randomUUID()),
        });
        this.state = result.state;
        if (result.persist) await this.journal.write(this.state);
        if (this.stopped) return;
        this.events.state?.(this.state);
        for (const action of result.actions) this.run(action);
        if (this.restartSlot !== undefined) {
          const slot = this.restartSlot;
          await this.shutdown({ reason: 'restart', slot });
          return;
        }
      }
    } catch (error) {
      // The journal could not be written: stop rather than act on state that would not survive a restart.
      this.log?.error({ err: error }, 'agent stopped: journal write failed');
      await this.shutdown({ reason: 'killed' });
    } finally {
      this.draining = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private vehicle(): VehicleConditions {
    const v = this.options.vehicle;
    if (v === undefined) return { parked: true, batteryPercent: 100, ownerConsent: true };
    return typeof v === 'function' ? v() : v;
  }

  private run(action: Action): void {
    switch (action.type) {
      case 'report': {
        const message = createMessage('job.status', action.report, {
          msgId: action.report.msgId,
          ts: action.report.ts,
        });
        this.counters.reports += 1;
        this.events.report?.(message);
        this.publish(this.topics.status(this.vin), encodeMessage(message));
        return;
      }
      case 'sync': {
        const message = createMessage('sync', { clientToken: action.clientToken }, { ts: this.now() });
        this.publish(this.topics.request(this.vin), encodeMessage(message));
        return;
      }
      case 'presence':
        this.publishPresence();
        return;
      case 'download':
        this.startDownload(action);
        return;
      case 'stopDownload':
        this.stopDownload();
        return;
      case 'verify':
        this.background(async () => {
          let check: Awaited<ReturnType<SlotStore['verifyDownload']>>;
          try {
            check = await this.slotStep(this.slots.verifyDownload(action.manifest));
          } catch (error) {
            // Without this the machine would wait in VERIFYING for a result that never comes.
            return {
              type: 'verifyFailed',
              code: 'AGENT_ERR_VERIFY_FAILED',
              text: `cannot verify the download: ${(error as Error).message}`.slice(0, 1024),
              jobId: action.jobId,
              executionNumber: action.executionNumber,
            };
          }
          return check.ok
            ? { type: 'verifyResult', ok: true, jobId: action.jobId, executionNumber: action.executionNumber }
            : {
                type: 'verifyResult',
                ok: false,
                code: check.error.code,
                text: check.error.text,
                jobId: action.jobId,
                executionNumber: action.executionNumber,
              };
        });
        return;
      case 'install':
        this.background(async () => {
          const ref = { jobId: action.jobId, executionNumber: action.executionNumber };
          try {
            await this.slotStep(this.slots.install(action.slot, action.manifest));
            await this.options.hooks?.install?.({
              vin: this.vin,
              ...ref,
              slot: action.slot,
              manifest: action.manifest,
            });
            return { type: 'installResult', ok: true, ...ref };
          } catch (error) {
            return { type: 'installResult', ok: false, text: (error as Error).message.slice(0, 1024), ...ref };
          }
        });
        return;
      case 'discard':
        this.stopDownload();
        this.background(async () => {
          await this.slotStep(this.slots.discardDownload());
          if (action.slot !== undefined) await this.slotStep(this.slots.discardSlot(action.slot));
          return undefined;
        });
        return;
      case 'restart':
        this.restartSlot = action.slot;
        return;
      case 'healthCheck':
        this.background(async () => {
          const ref = { jobId: action.jobId, executionNumber: action.executionNumber };
          const context = { vin: this.vin, ...ref, slot: action.slot, manifest: action.manifest };
          try {
            const hook = this.options.hooks?.healthCheck;
            const result =
              hook === undefined ? await this.slots.checkSlot(action.slot, action.manifest) : await hook(context);
            return {
              type: 'healthResult',
              ok: result.ok,
              ...ref,
              ...(result.text === undefined ? {} : { text: result.text }),
            };
          } catch (error) {
            return { type: 'healthResult', ok: false, text: (error as Error).message.slice(0, 1024), ...ref };
          }
        });
        return;
      case 'wakeAt':
        if (action.at >= this.wakeAt) return;
        this.cancelWake?.();
        this.wakeAt = action.at;
        this.cancelWake = this.scheduler.at(action.at, () => {
          this.wakeAt = Number.POSITIVE_INFINITY;
          this.cancelWake = undefined;
          this.dispatch({ type: 'tick' });
        });
        return;
    }
  }

  /** Tracks one step of the slot store until it settles (see slotWork). */
  private slotStep<T>(step: Promise<T>): Promise<T> {
    this.slotWork.add(step);
    const forget = (): void => {
      this.slotWork.delete(step);
    };
    step.then(forget, forget);
    return step;
  }

  private background(work: () => Promise<MachineEvent | undefined>): void {
    work().then(
      (event) => {
        if (event !== undefined) this.dispatch(event);
      },
      (error: unknown) => this.log?.error({ err: error }, 'agent adapter failed'),
    );
  }

  private startDownload(action: Extract<Action, { type: 'download' }>): void {
    this.stopDownload();
    const abort = new AbortController();
    this.downloadAbort = abort;
    this.lastProgressPercent = -1;
    this.lastEtag = action.etag;
    const ref = { jobId: action.jobId, executionNumber: action.executionNumber };
    const d = this.options.download ?? {};
    const run = download({
      url: action.url,
      path: this.slots.downloadPath,
      size: action.size,
      ...(action.etag === undefined ? {} : { etag: action.etag }),
      ...(d.ca === undefined ? {} : { ca: d.ca }),
      allowHttp: d.allowHttp ?? false,
      ...(d.maxAttempts === undefined ? {} : { maxAttempts: d.maxAttempts }),
      ...(d.initialDelayMs === undefined ? {} : { initialDelayMs: d.initialDelayMs }),
      ...(d.maxDelayMs === undefined ? {} : { maxDelayMs: d.maxDelayMs }),
      ...(d.bytesPerSecond === undefined ? {} : { bytesPerSecond: d.bytesPerSecond }),
      ...(this.options.link === undefined ? {} : { link: this.options.link }),
      fsync: this.options.fsync ?? true,
      signal: abort.signal,
      // Whether a download started over or resumed (after a cut link or a restart) is worth a line in the log.
      onResponse: (status, offset) =>
        this.log?.info(
          { jobId: action.jobId, status, offset, size: action.size },
          offset > 0 ? 'download resumes' : 'download starts',
        ),
      onProgress: (bytesDone, etag) => {
        // The machine decides what to report; it only needs to hear about whole-percent steps and ETag changes.
        const pct = action.size === 0 ? 100 : Math.floor((bytesDone * 100) / action.size);
        if (pct === this.lastProgressPercent && etag === this.lastEtag) return;
        this.lastProgressPercent = pct;
        this.lastEtag = etag;
        this.dispatch({ type: 'downloadProgress', bytesDone, ...ref, ...(etag === undefined ? {} : { etag }) });
      },
    }).then((result) => {
      if (this.downloadAbort === abort) this.downloadAbort = undefined;
      if (abort.signal.aborted) return;
      if (result.ok) this.dispatch({ type: 'downloadDone', bytesDone: result.bytes, ...ref });
      else this.dispatch({ type: 'downloadFailed', code: result.code, text: result.text, ...ref });
    });
    this.downloadRun = run.catch((error: unknown) => this.log?.error({ err: error }, 'download crashed'));
  }

  private stopDownload(): void {
    this.downloadAbort?.abort();
    this.downloadAbort = undefined;
  }

  private stopTimersAndWork(): void {
    this.stopDownload();
    this.cancelWake?.();
    this.cancelWake = undefined;
    this.cancelConnectRetry?.();
    this.cancelConnectRetry = undefined;
  }

  /** Ends this lifetime. A restart and a close say goodbye cleanly (offline presence, flush, DISCONNECT). */
  private async shutdown(exit: AgentExit): Promise<void> {
    if (this.stopped) return;
    this.stopTimersAndWork();
    if (exit.reason !== 'killed' && this.client.state === 'connected') {
      const offline = createMessage('presence', { online: false }, { ts: this.now() });
      this.publish(this.topics.presence(this.vin), encodeMessage(offline), true);
    }
    this.stopped = true;
    await this.client
      .end(exit.reason === 'killed' || this.client.state !== 'connected' ? { force: true } : { timeoutMs: 10_000 })
      .catch(() => undefined);
    await this.settleWork();
    this.resolveExit(exit);
  }

  /** The last of a stopped lifetime: its download and slot work settle, then its journal closes. */
  private async settleWork(): Promise<void> {
    await this.downloadRun;
    await Promise.allSettled(this.slotWork);
    await this.journal.close();
  }
}

/** The jobId and executionNumber of an unparseable job.notify, when they can still be read. */
function readableNotify(payload: Uint8Array): { jobId: string; executionNumber: number } | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    const { type, jobId, executionNumber } = value;
    if (type !== 'job.notify' || typeof jobId !== 'string' || typeof executionNumber !== 'number') return undefined;
    if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(jobId) || !Number.isInteger(executionNumber)) return undefined;
    if (executionNumber < 1) return undefined;
    return { jobId, executionNumber };
  } catch {
    return undefined;
  }
}
