// A light simulated vehicle for the bench: one MQTT connection (persistent session, will), and on job.notify the
// protocol's work a TCU does, without disk or restarts: verify the signed manifest, download the artifact over
// HTTPS (a shared keep-alive pool), check its SHA-256, and report DOWNLOADING, VERIFYING, INSTALLING, ACTIVATING
// and SUCCEEDED with increasing seq. Real agents (@otalink/agent) are what test/e2e runs; at 10 k per machine their
// journals and per-vehicle TLS would measure the fleet, not the backend.
import { createHash } from 'node:crypto';
import type { Agent as HttpsAgent } from 'node:https';
import { get } from 'node:https';
import { MqttClient as Client, type MqttClient } from '@otalink/mqtt';
import {
  createMessage,
  encodeMessage,
  type JobNotify,
  type JobStatus,
  type OtaTopics,
  parseMessage,
  type TrustedKeys,
  verifyManifest,
} from '@otalink/ota';
import { verifyEd25519 } from '@otalink/ota/node';

export interface VehicleContext {
  brokerUrl: string;
  topics: OtaTopics;
  trustedKeys: TrustedKeys;
  hardwareId: string;
  installedVersion: string;
  httpsAgent: HttpsAgent;
  ca: string;
  /** Called once when this vehicle reports its final status. */
  finished(vin: string, status: JobStatus['status']): void;
}

type StatusBody = Omit<JobStatus, 'v' | 'msgId' | 'ts' | 'type'>;

function fetchSha256(url: string, ctx: VehicleContext): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: ctx.httpsAgent, ca: ctx.ca }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode}`));
        return;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      response.on('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

export class SimVehicle {
  readonly client: MqttClient;
  private readonly seen = new Set<string>();
  /** Per execution: the last report sent, resent when the backend notifies the same execution again. */
  private readonly executions = new Map<string, StatusBody | undefined>();

  constructor(
    readonly vin: string,
    private readonly ctx: VehicleContext,
  ) {
    const offline = createMessage('presence', { online: false }, { ts: Date.now() });
    this.client = new Client({
      url: ctx.brokerUrl,
      clientId: vin,
      // Thousands per process: no file store each (a descriptor and an fsync per batch), as the agent keeps none.
      store: false,
      clean: false,
      keepalive: 300,
      properties: { sessionExpiryInterval: 3600 },
      will: { topic: ctx.topics.presence(vin), payload: encodeMessage(offline), qos: 1, retain: true },
      reconnect: { initialDelayMs: 1000, maxDelayMs: 10_000 },
    });
    this.client.on('message', (m) => {
      const parsed = parseMessage(m.payload, { types: ['job.notify'] });
      if (!parsed.ok || this.seen.has(parsed.message.msgId)) return;
      this.seen.add(parsed.message.msgId);
      const notify = parsed.message as JobNotify;
      const key = `${notify.jobId}#${notify.executionNumber}`;
      // A renotify of an execution in hand is answered with the last report, as the agent does.
      if (this.executions.has(key)) {
        const last = this.executions.get(key);
        if (last !== undefined) void this.report(key, last);
        return;
      }
      this.executions.set(key, undefined);
      void this.run(key, notify);
    });
  }

  async start(): Promise<void> {
    await this.client.start();
    await this.client.subscribe(this.ctx.topics.command(this.vin), { qos: 1 });
    const online = createMessage(
      'presence',
      {
        online: true,
        inventory: {
          installedVersion: this.ctx.installedVersion,
          hardwareId: this.ctx.hardwareId,
          agentVersion: 'bench-0',
          slots: { active: 'A', A: { version: this.ctx.installedVersion }, B: {} },
        },
      },
      { ts: Date.now() },
    );
    await this.client.publish(this.ctx.topics.presence(this.vin), encodeMessage(online), { qos: 1, retain: true });
  }

  /** Resolves when the broker acknowledged it; a report cut off by shutdown is dropped, not thrown. */
  private report(key: string, body: StatusBody): Promise<void> {
    this.executions.set(key, body);
    const message = createMessage('job.status', body, { ts: Date.now() });
    return this.client.publish(this.ctx.topics.status(this.vin), encodeMessage(message), { qos: 1 }).then(
      () => undefined,
      () => undefined,
    );
  }

  private async run(key: string, notify: JobNotify): Promise<void> {
    const ref = { jobId: notify.jobId, executionNumber: notify.executionNumber };
    let seq = 0;
    const verdict = verifyManifest(notify.manifest, {
      trustedKeys: this.ctx.trustedKeys,
      verifySignature: verifyEd25519,
      hardwareId: this.ctx.hardwareId,
      installedVersion: this.ctx.installedVersion,
      now: Date.now(),
    });
    if (!verdict.ok) {
      await this.report(key, { ...ref, seq: ++seq, status: 'REJECTED', reason: verdict.error });
      this.ctx.finished(this.vin, 'REJECTED');
      return;
    }
    const manifest = verdict.manifest;
    void this.report(key, {
      ...ref,
      seq: ++seq,
      status: 'IN_PROGRESS',
      step: 'DOWNLOADING',
      progress: 0,
      bytesDone: 0,
      bytesTotal: manifest.size,
    });
    let result: { sha256: string; bytes: number };
    try {
      result = await fetchSha256(manifest.url, this.ctx);
    } catch (err) {
      await this.report(key, {
        ...ref,
        seq: ++seq,
        status: 'FAILED',
        reason: { code: 'AGENT_ERR_DOWNLOAD_FAILED', text: String(err) },
      });
      this.ctx.finished(this.vin, 'FAILED');
      return;
    }
    void this.report(key, { ...ref, seq: ++seq, status: 'IN_PROGRESS', step: 'VERIFYING', progress: 0 });
    if (result.sha256 !== manifest.sha256 || result.bytes !== manifest.size) {
      await this.report(key, {
        ...ref,
        seq: ++seq,
        status: 'REJECTED',
        reason: { code: 'OTA_ERR_HASH_MISMATCH', text: result.sha256 },
      });
      this.ctx.finished(this.vin, 'REJECTED');
      return;
    }
    void this.report(key, { ...ref, seq: ++seq, status: 'IN_PROGRESS', step: 'INSTALLING', progress: 0 });
    void this.report(key, { ...ref, seq: ++seq, status: 'IN_PROGRESS', step: 'ACTIVATING', progress: 0 });
    await this.report(key, { ...ref, seq: ++seq, status: 'SUCCEEDED', installedVersion: manifest.version });
    this.ctx.finished(this.vin, 'SUCCEEDED');
  }
}
