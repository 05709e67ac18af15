// Test support: the test plays the OEM backend over MQTT, with the real execution state machine from @otalink/ota:
// it sends signed job.notify, answers sync with sync.result, applies job.status reports (seq rules included) and
// keeps the retained presence it sees.
import { connect, type MqttClient } from '@otalink/mqtt';
import {
  applyStatus,
  cancel as cancelExecution,
  createExecution,
  createMessage,
  type Execution,
  encodeMessage,
  isTerminal,
  type JobNotify,
  type JobStatus,
  notify as notifyExecution,
  OtaTopics,
  type PendingExecutionEntry,
  type Presence,
  parseMessage,
  pause as pauseExecution,
  resume as resumeExecution,
} from '@otalink/ota';

export type JobFields = Omit<JobNotify, 'v' | 'msgId' | 'ts' | 'type'>;

interface Held {
  execution: Execution;
  fields: JobFields;
}

export class TestBackend {
  readonly topics = new OtaTopics({ vinMode: 'simulation' });
  readonly statuses = new Map<string, JobStatus[]>();
  readonly presence = new Map<string, Presence>();
  readonly syncs = new Map<string, number>();
  readonly ignored: string[] = [];
  private readonly held = new Map<string, Map<string, Held>>();
  private waiters: Array<() => void> = [];
  /** Sync requests are not answered while false (a backend that is down or slow). */
  answerSyncs = true;
  messagesIn = 0;

  private constructor(readonly client: MqttClient) {
    client.on('message', (m) => this.onMessage(m.topic, m.payload));
  }

  static async start(url: string, protocolVersion: 4 | 5 = 5): Promise<TestBackend> {
    const client = await connect(url, {
      clientId: `test-backend-${Math.random().toString(36).slice(2)}`,
      protocolVersion,
    });
    const backend = new TestBackend(client);
    const t = backend.topics;
    await client.subscribe([t.vehicleFilter('status'), t.vehicleFilter('request'), t.presenceSubscription()], {
      qos: 1,
    });
    return backend;
  }

  execution(vin: string, jobId: string, executionNumber = 1): Execution | undefined {
    return this.held.get(vin)?.get(`${jobId}#${executionNumber}`)?.execution;
  }

  /** Releases the job to the vehicle: NOTIFIED and a job.notify on its command topic. */
  async notify(vin: string, fields: JobFields): Promise<JobNotify> {
    const key = `${fields.jobId}#${fields.executionNumber}`;
    let vehicle = this.held.get(vin);
    if (vehicle === undefined) {
      vehicle = new Map();
      this.held.set(vin, vehicle);
    }
    const existing = vehicle.get(key);
    const execution =
      existing?.execution ??
      createExecution(
        { jobId: fields.jobId, executionNumber: fields.executionNumber, vin, campaignId: fields.campaignId },
        Date.now(),
      );
    const update = notifyExecution(execution, Date.now());
    vehicle.set(key, { execution: update.execution, fields });
    const message = createMessage('job.notify', fields, { ts: Date.now() });
    await this.send(vin, encodeMessage(message));
    return message;
  }

  async cancel(vin: string, jobId: string, executionNumber: number, force: boolean): Promise<void> {
    const held = this.held.get(vin)?.get(`${jobId}#${executionNumber}`);
    if (held !== undefined) held.execution = cancelExecution(held.execution, { force }, Date.now()).execution;
    const message = createMessage('job.cancel', { jobId, executionNumber, force }, { ts: Date.now() });
    await this.send(vin, encodeMessage(message));
  }

  async pause(vin: string, jobId: string, executionNumber = 1): Promise<void> {
    const held = this.held.get(vin)?.get(`${jobId}#${executionNumber}`);
    if (held !== undefined) held.execution = pauseExecution(held.execution, Date.now()).execution;
    await this.send(vin, encodeMessage(createMessage('job.pause', { jobId, executionNumber }, { ts: Date.now() })));
  }

  async resume(vin: string, jobId: string, executionNumber = 1): Promise<void> {
    const held = this.held.get(vin)?.get(`${jobId}#${executionNumber}`);
    if (held !== undefined) held.execution = resumeExecution(held.execution, Date.now()).execution;
    await this.send(vin, encodeMessage(createMessage('job.resume', { jobId, executionNumber }, { ts: Date.now() })));
  }

  /** Resolves when `predicate` holds, checked after every message; rejects after `timeoutMs`. */
  /** `what` may be a function: called at the timeout, it can say what state things were left in. */
  async waitFor(
    predicate: () => boolean,
    timeoutMs = 20_000,
    what: string | (() => string) = 'condition',
  ): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  statusLine(vin: string): string[] {
    return (this.statuses.get(vin) ?? []).map((s) =>
      [s.status, s.step, s.paused ? 'paused' : '', s.reason?.code ?? ''].filter(Boolean).join(' '),
    );
  }

  close(): Promise<void> {
    return this.client.end();
  }

  private async send(vin: string, bytes: Uint8Array): Promise<void> {
    await this.client.publish(this.topics.command(vin), bytes, { qos: 1 });
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    this.messagesIn += 1;
    const parsed = this.topics.parse(topic);
    if (parsed === undefined || parsed.kind === 'fleet-status' || parsed.kind === 'command') return;
    const vin = parsed.vin;
    if (parsed.kind === 'presence') {
      if (payload.length === 0) return;
      const message = parseMessage(payload, { types: ['presence'] });
      if (message.ok) this.presence.set(vin, message.message);
    } else if (parsed.kind === 'status') {
      const message = parseMessage(payload, { types: ['job.status'] });
      if (!message.ok) {
        this.ignored.push(`${vin}: ${message.error.text}`);
        return;
      }
      const status = message.message;
      const list = this.statuses.get(vin) ?? [];
      list.push(status);
      this.statuses.set(vin, list);
      const held = this.held.get(vin)?.get(`${status.jobId}#${status.executionNumber}`);
      if (held !== undefined) {
        const update = applyStatus(held.execution, status, Date.now());
        held.execution = update.execution;
        if (!update.applied) this.ignored.push(`${vin} seq ${status.seq}: ${update.ignored}`);
      }
    } else if (parsed.kind === 'request') {
      const message = parseMessage(payload, { types: ['sync'] });
      if (!message.ok) return;
      this.syncs.set(vin, (this.syncs.get(vin) ?? 0) + 1);
      if (this.answerSyncs) void this.answerSync(vin, message.message.clientToken);
    }
    for (const waiter of [...this.waiters]) waiter();
  }

  private async answerSync(vin: string, clientToken: string): Promise<void> {
    const executions: PendingExecutionEntry[] = [];
    for (const { execution, fields } of this.held.get(vin)?.values() ?? []) {
      if (isTerminal(execution.status) || (execution.status !== 'NOTIFIED' && execution.status !== 'IN_PROGRESS')) {
        continue;
      }
      executions.push({
        ...fields,
        status: execution.status,
        lastSeq: execution.lastSeq,
        paused: execution.paused,
      });
    }
    const result = createMessage('sync.result', { clientToken, executions }, { ts: Date.now() });
    await this.send(vin, encodeMessage(result)).catch(() => undefined);
  }
}
