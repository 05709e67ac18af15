// The two clients behind one small interface, so every scenario is written once and runs the same way for both.
// Ours windows itself (Receive Maximum / maxInflight) and queues the rest; MQTT.js does not honour Receive
// Maximum, so the scenarios bound its outstanding publishes from outside to the same window.
import mqtt from 'mqtt';
import { connect as connectOurs, type MqttClient } from '../../packages/mqtt/src/client/index.js';

export type LibName = 'otalink' | 'mqttjs';

export interface ConnectSpec {
  host: string;
  port: number;
  version: 4 | 5;
  /** Our cap on unacknowledged QoS 1/2 publishes (ours: maxInflight; MQTT.js: bounded by the scenario). */
  window: number;
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  /** Reconnect quickly (drain scenario); otherwise no reconnect. */
  reconnectMs?: number;
  /** Ours: the default file store in this directory (needs clientId); otherwise none, as MQTT.js keeps memory. */
  storeDir?: string;
}

export interface BenchClient {
  publish(topic: string, payload: Uint8Array, qos: 0 | 1 | 2): Promise<unknown>;
  subscribe(filter: string, qos: 0 | 1 | 2): Promise<void>;
  onMessage(listener: () => void): void;
  onOffline(listener: () => void): void;
  /** A CONNACK arrived (MQTT.js emits 'connect' only after replaying its store, so this hooks the packet itself). */
  onConnack(listener: () => void): void;
  /** A DISCONNECT from the server or a client error, as text, if one happened. */
  failure(): string | undefined;
  /** Forget failures so far (the refused reconnect attempts while the broker was down). */
  resetFailure(): void;
  /** Receive Maximum the server announced, when the library exposes it. */
  serverReceiveMaximum(): number | undefined;
  end(force: boolean): Promise<void>;
}

export interface Lib {
  name: LibName;
  version: string;
  /** True when the client keeps its own window, so the scenario may hand it every message at once. */
  selfWindowed: boolean;
  connect(spec: ConnectSpec): Promise<BenchClient>;
  /** The library's own client object and nothing else (idle-memory case: no wrapper, no listeners of ours). */
  connectIdle(spec: ConnectSpec): Promise<unknown>;
  endIdle(client: unknown): Promise<void>;
}

export const ours: Lib = {
  name: 'otalink',
  version: '0.1.0',
  selfWindowed: true,
  connectIdle: (spec) =>
    connectOurs({
      host: spec.host,
      port: spec.port,
      protocolVersion: spec.version,
      maxInflight: spec.window,
      keepalive: spec.keepalive ?? 60,
      reconnect: false,
    }),
  endIdle: (client) => (client as MqttClient).end({ force: true }),
  async connect(spec) {
    const client: MqttClient = await connectOurs({
      host: spec.host,
      port: spec.port,
      protocolVersion: spec.version,
      maxInflight: spec.window,
      clientId: spec.clientId,
      // Session memory only, as MQTT.js keeps its in-flight messages by default, unless the case measures the
      // default file store.
      ...(spec.storeDir === undefined ? { store: false as const } : { storeDir: spec.storeDir }),
      clean: spec.clean ?? true,
      keepalive: spec.keepalive ?? 60,
      reconnect:
        spec.reconnectMs === undefined
          ? false
          : { initialDelayMs: spec.reconnectMs, maxDelayMs: spec.reconnectMs, jitter: 'none' },
    });
    let failure: string | undefined;
    client.on('disconnect', (p) => {
      failure ??= `DISCONNECT 0x${(p.reasonCode ?? 0).toString(16)}`;
    });
    client.on('error', (e) => {
      failure ??= e.message;
    });
    return {
      publish: (topic, payload, qos) => client.publish(topic, payload, { qos }),
      subscribe: async (filter, qos) => {
        await client.subscribe(filter, { qos });
      },
      onMessage: (listener) => {
        client.on('message', listener);
      },
      onOffline: (listener) => {
        client.on('offline', listener);
      },
      onConnack: (listener) => {
        client.on('connected', listener);
      },
      failure: () => failure,
      resetFailure: () => {
        failure = undefined;
      },
      serverReceiveMaximum: () => client.serverLimits.receiveMaximum,
      end: (force) => client.end({ force }),
    };
  },
};

export const mqttjs: Lib = {
  name: 'mqttjs',
  version: mqttVersion(),
  selfWindowed: false,
  connectIdle: (spec) =>
    mqtt.connectAsync({
      host: spec.host,
      port: spec.port,
      protocol: 'mqtt',
      protocolVersion: spec.version,
      keepalive: spec.keepalive ?? 60,
      reconnectPeriod: 0,
    }),
  endIdle: async (client) => {
    await (client as mqtt.MqttClient).endAsync(true);
  },
  async connect(spec) {
    const client = await mqtt.connectAsync({
      host: spec.host,
      port: spec.port,
      protocol: 'mqtt',
      protocolVersion: spec.version,
      clientId: spec.clientId,
      clean: spec.clean ?? true,
      keepalive: spec.keepalive ?? 60,
      reconnectPeriod: spec.reconnectMs ?? 0,
    });
    let failure: string | undefined;
    client.on('disconnect', (p) => {
      failure ??= `DISCONNECT 0x${(p.reasonCode ?? 0).toString(16)}`;
    });
    client.on('error', (e) => {
      failure ??= e.message;
    });
    return {
      publish: (topic, payload, qos) =>
        client.publishAsync(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.length), { qos }),
      subscribe: async (filter, qos) => {
        await client.subscribeAsync(filter, { qos });
      },
      onMessage: (listener) => {
        client.on('message', listener);
      },
      onOffline: (listener) => {
        client.on('offline', listener);
      },
      onConnack: (listener) => {
        client.on('packetreceive', (packet) => {
          if (packet.cmd === 'connack') listener();
        });
      },
      failure: () => failure,
      resetFailure: () => {
        failure = undefined;
      },
      serverReceiveMaximum: () => undefined,
      end: async (force) => {
        await client.endAsync(force);
      },
    };
  },
};

function mqttVersion(): string {
  return (mqtt as unknown as { MQTTJS_VERSION?: string }).MQTTJS_VERSION ?? 'unknown';
}
