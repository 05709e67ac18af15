// The backend's MQTT side, over our own client: a persistent session (clean false, long session expiry) so the
// broker queues status while the backend is down; shared subscriptions so several instances split the ingest;
// presence unshared so every instance keeps the whole table. Every message is parsed with the types its topic
// carries; a bad one is counted, logged and dropped, never thrown.
//
// Acknowledgement: the client runs with manualAck, and a message is acknowledged only once what it changed is
// committed (or at once when it changes nothing: a duplicate, an invalid message). A crash before the commit leaves
// it unacknowledged, so the broker delivers it again to the persistent session. Besides, on restart the backend
// re-sends job.notify for every execution in flight (a command lost with the old process), and a vehicle answers a
// known execution with its latest status; the seq rule makes every such resend harmless.
import { type ClientOptions, connect, type Message, type MqttClient } from '@otalink/mqtt';
import {
  encodeMessage,
  type FleetStatus,
  type OtaMessage,
  type OtaTopics,
  PRESENCE_TYPES,
  parseMessage,
  REQUEST_TYPES,
  STATUS_TYPES,
} from '@otalink/ota';
import type { CommandSink, Orchestrator } from '../engine/orchestrator.js';
import type { Logger } from '../logger.js';

export interface BridgeOptions {
  /** A URL (mqtt://127.0.0.1:1883) or client options; clean, clientId and session expiry are set by the bridge. */
  mqtt: string | ClientOptions;
  topics: OtaTopics;
  logger: Logger;
  /** Stable across restarts so the broker keeps the session. */
  clientId: string;
  /** Session expiry (MQTT 5), seconds; default 7 days. */
  sessionExpirySeconds?: number;
}

/** Seconds the broker keeps a command for an offline vehicle at most when the manifest gives no expiry. */
const MAX_EXPIRY_SECONDS = 0xffff_ffff;

export class MqttBridge implements CommandSink {
  private client: MqttClient | undefined;
  private engine: Orchestrator | undefined;
  /** Commands produced before the connection is up (the restart resync runs before connect). */
  private early: { topic: string; payload: Uint8Array; retain: boolean; expiresAt?: number }[] = [];
  private closed = false;
  private invalidLogged = 0;

  constructor(private readonly options: BridgeOptions) {}

  get connected(): boolean {
    return this.client?.state === 'connected';
  }

  attach(engine: Orchestrator): void {
    this.engine = engine;
  }

  async start(): Promise<void> {
    const base: ClientOptions =
      typeof this.options.mqtt === 'string' ? { url: this.options.mqtt } : { ...this.options.mqtt };
    const client = await connect({
      ...base,
      // No client store unless given one: the database holds the campaigns, and on restart the orchestrator
      // re-sends job.notify for every execution in flight (above).
      store: base.store ?? false,
      clientId: this.options.clientId,
      clean: false,
      manualAck: true,
      properties: {
        ...base.properties,
        sessionExpiryInterval: this.options.sessionExpirySeconds ?? 7 * 24 * 3600,
      },
    });
    this.client = client;
    client.on('message', (message) => this.onMessage(message));
    client.on('error', (err) => this.options.logger.warn({ err }, 'mqtt client error'));
    client.on('offline', (reason) => this.options.logger.warn({ reason: reason.message }, 'mqtt offline'));
    client.on('connected', () => this.options.logger.info({}, 'mqtt connected'));
    const topics = this.options.topics;
    const subscription = await client.subscribe(
      [topics.backendStatusSubscription(), topics.backendRequestSubscription(), topics.presenceSubscription()],
      { qos: 1 },
    );
    const refused = subscription.reasonCodes.findIndex((code) => code >= 0x80);
    if (refused >= 0) {
      this.options.logger.error(
        { filter: subscription.filters[refused], reasonCode: subscription.reasonCodes[refused] },
        'the broker refused a backend subscription',
      );
    }
    const early = this.early;
    this.early = [];
    for (const m of early) this.publish(m.topic, m.payload, m.retain, m.expiresAt);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client?.end({ timeoutMs: 5000 }).catch(() => undefined);
  }

  send(vin: string, message: OtaMessage, options?: { expiresAt?: number }): void {
    this.publish(this.options.topics.command(vin), encodeMessage(message), false, options?.expiresAt);
  }

  publishFleet(model: string, message: FleetStatus): void {
    this.publish(this.options.topics.fleetStatus(model), encodeMessage(message), true);
  }

  private publish(topic: string, payload: Uint8Array, retain: boolean, expiresAt?: number): void {
    if (this.closed) return;
    const client = this.client;
    if (client === undefined) {
      this.early.push(expiresAt === undefined ? { topic, payload, retain } : { topic, payload, retain, expiresAt });
      return;
    }
    const properties =
      expiresAt === undefined
        ? undefined
        : {
            messageExpiryInterval: Math.min(
              MAX_EXPIRY_SECONDS,
              Math.max(1, Math.ceil((expiresAt - Date.now()) / 1000)),
            ),
          };
    client.publish(topic, payload, { qos: 1, retain, properties }).catch((err: unknown) => {
      if (!this.closed) this.options.logger.warn({ topic, err }, 'publish failed');
    });
  }

  private onMessage(message: Message): void {
    const engine = this.engine;
    if (engine === undefined) return;
    const ack = () => message.ack();
    try {
      const parsed = this.options.topics.parse(message.topic);
      if (parsed === undefined || parsed.kind === 'fleet-status' || parsed.kind === 'command') {
        ack();
      } else if (parsed.kind === 'presence') {
        // An empty retained payload clears the retained presence: nothing to record.
        const result =
          message.payload.length === 0 ? undefined : parseMessage(message.payload, { types: PRESENCE_TYPES });
        if (result === undefined) ack();
        else if (!result.ok) this.invalid(message.topic, result.error, ack);
        else engine.ingestPresence(parsed.vin, result.message, ack);
      } else if (parsed.kind === 'status') {
        const result = parseMessage(message.payload, { types: STATUS_TYPES });
        if (!result.ok) this.invalid(message.topic, result.error, ack);
        else engine.ingestStatus(parsed.vin, result.message, ack);
      } else {
        const result = parseMessage(message.payload, { types: REQUEST_TYPES });
        if (!result.ok) this.invalid(message.topic, result.error, ack);
        else engine.sync(parsed.vin, result.message.clientToken, ack);
      }
    } catch (err) {
      // Defence in depth: one message must never take the ingest down (nor stay unacknowledged forever).
      this.options.logger.error({ topic: message.topic, err }, 'handling a message failed');
      ack();
    }
  }

  private invalid(topic: string, error: { code: string; path: string; text: string }, ack: () => void): void {
    ack();
    this.engine?.countInvalid();
    // A misbehaving vehicle can send many; log the first ones, then one in a thousand.
    this.invalidLogged++;
    if (this.invalidLogged <= 100 || this.invalidLogged % 1000 === 0) {
      this.options.logger.warn(
        { topic, code: error.code, path: error.path, text: error.text },
        'invalid message dropped',
      );
    }
  }
}
