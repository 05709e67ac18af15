// createBroker: options in, a broker out with listen/close, stats, embedded publish and client events.
import type { EventEmitter } from 'node:events';
import { MAX_PACKET_SIZE, type PublishProperties, type QoS } from '@otalink/mqtt/codec';
import { topicNameProblem, validateTopicName } from '@otalink/mqtt/topic';
import { pino } from 'pino';
import { type ByteStream, Connection, type TransportInfo } from './connection.js';
import { BrokerCore, type BrokerEvents, type ResolvedOptions } from './core.js';
import { BrokerError } from './errors.js';
import { type ListenerHandle, startListener } from './listeners/index.js';
import { type MetricsServer, processMetrics, startMetricsServer, storeMetrics } from './metrics/index.js';
import {
  type AuthUpdate,
  type AuthUpdateResult,
  type BrokerOptions,
  defaultLimits,
  type ListenerOptions,
  type ListenerProtocol,
} from './options.js';
import { updateAuth } from './reauthorize.js';
import { type BrokerStats, createStats } from './stats.js';
import { LogStore } from './store/log.js';
import { MemoryStore } from './store/memory.js';
import type { BrokerStore } from './store/types.js';
import { publishSys } from './sys.js';

export interface PublishOptions {
  topic: string;
  payload: Uint8Array | string;
  qos?: QoS;
  retain?: boolean;
  properties?: Omit<PublishProperties, 'topicAlias' | 'subscriptionIdentifiers'>;
}

export interface Broker {
  /** Starts every listener; rejects with BROKER_ERR_LISTEN if one cannot bind (the others are closed again). */
  listen(): Promise<void>;
  /** Where the listeners are bound, with the actual port when 0 was asked for. */
  addresses(): Array<{ protocol: ListenerProtocol; host: string; port: number }>;
  /** Graceful: stop accepting, DISCONNECT 0x8B to 5.0 clients, flush, close. */
  close(): Promise<void>;
  readonly stats: BrokerStats;
  /**
   * Publishes as the broker itself (no ACL, no No Local origin). Returns the number of recipients. With a durable
   * store nothing of it is durable yet on return (a QoS 2 message reaches nobody before its records are, even across
   * failed writes): `store.whenWritten()` resolves once it is.
   */
  publish(message: PublishOptions): number;
  /** clientConnected, clientDisconnected, message. */
  readonly events: EventEmitter<BrokerEvents>;
  /** Ids of the connected clients. */
  clients(): string[];
  /**
   * Replaces authentication and authorization while running (`otalink broker` does on SIGHUP): revoked clients are
   * disconnected with 0x87, subscriptions the new `authorize` refuses are removed from connected clients at once and
   * from offline sessions when they are resumed.
   */
  updateAuth(update: AuthUpdate): AuthUpdateResult;
  /**
   * Renewed certificates for the running TLS listeners (`otalink broker` on SIGHUP): `listeners` is the listener list
   * as configured, matched by position; each mqtts/wss listener takes its certificate, key and client CA for new
   * handshakes, and connections already made stay. Whether a client certificate is required cannot change without
   * a restart. Returns how many listeners took new ones; throws BROKER_ERR_INVALID_OPTION, changing nothing, when a
   * listener's protocol differs or a certificate cannot be used.
   */
  updateTls(listeners: readonly ListenerOptions[]): number;
  /** Where Prometheus /metrics is served, when `options.metrics` asked for it. */
  metricsAddress(): { host: string; port: number } | undefined;
  /** The store sessions and retained messages live in (a LogStore with `dataDir`). */
  readonly store: BrokerStore;
}

/** Sockets beyond the connection limit still waiting for a CONNECT to refuse; past this many they are cut at once. */
const MAX_REFUSING = 1000;
/** How long close() waits for connections to end after DISCONNECT 0x8B before it destroys what is left. */
const CLOSE_LIMIT_MS = 5000;

export function createBroker(options: BrokerOptions = {}): Broker {
  const limits = { ...defaultLimits, ...options.limits };
  for (const [key, value] of Object.entries(limits)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
      throw new BrokerError('BROKER_ERR_INVALID_OPTION', `limits.${key} must be a non-negative number`);
    }
  }
  if (limits.receiveMaximum < 1 || limits.receiveMaximum > 0xffff) {
    throw new BrokerError('BROKER_ERR_INVALID_OPTION', 'limits.receiveMaximum must be 1..65535');
  }
  // Both go out in every 5.0 CONNACK: a value its field cannot carry would fail each CONNECT once accepted.
  if (limits.topicAliasMaximum > 0xffff) {
    throw new BrokerError('BROKER_ERR_INVALID_OPTION', 'limits.topicAliasMaximum must be 0..65535');
  }
  if (limits.maxPacketSize < 1 || limits.maxPacketSize > MAX_PACKET_SIZE) {
    throw new BrokerError('BROKER_ERR_INVALID_OPTION', `limits.maxPacketSize must be 1..${MAX_PACKET_SIZE}`);
  }
  const resolved: ResolvedOptions = {
    limits,
    allowAnonymous: options.allowAnonymous ?? false,
    clientIdFromUsername: options.clientIdFromUsername ?? false,
    authenticate: options.authenticate,
    authorize: options.authorize,
    enhancedAuth: new Map((options.enhancedAuth ?? []).map((a) => [a.method, a])),
    logger: options.logger ?? pino({ level: 'info' }, pino.destination(2)),
  };
  const stats = createStats();
  const ownStore = options.store === undefined;
  const store: BrokerStore =
    options.store ??
    (options.dataDir === undefined
      ? new MemoryStore()
      : new LogStore({ dir: options.dataDir, logger: resolved.logger, ...options.storeOptions }));
  const core = new BrokerCore(resolved, stats, store);
  const listenerOptions = options.listeners ?? [{ protocol: 'mqtt', port: 1883 }];
  const handles: ListenerHandle[] = [];
  let sysTimer: NodeJS.Timeout | undefined;
  let metricsServer: MetricsServer | undefined;
  let refusing = 0;
  let state: 'new' | 'listening' | 'closed' = 'new';
  // A function, so TypeScript does not keep `state` narrowed across the awaits in listen().
  const isClosed = (): boolean => state === 'closed';

  const onStream = (stream: ByteStream, info: TransportInfo): void => {
    if (core.closing) {
      stream.destroy();
      return;
    }
    stats.connectionsTotal++;
    const overLimit = stats.connectionsCurrent >= limits.maxConnections;
    if (overLimit && refusing >= MAX_REFUSING) {
      stats.connectionsRejected++;
      stream.destroy();
      return;
    }
    stats.connectionsCurrent++;
    const connection = new Connection(core, stream, info, overLimit);
    core.connections.add(connection);
    if (overLimit) {
      refusing++;
      stream.once('close', () => refusing--);
    }
  };

  const broker: Broker = {
    stats,
    events: core.events,

    async listen() {
      if (state !== 'new') throw new BrokerError('BROKER_ERR_CLOSED', 'listen() may be called once');
      state = 'listening';
      // What the store kept is back before the first client can connect.
      const started = Date.now();
      const contents = await store.load();
      core.restore(contents, Date.now());
      core.refreshStoreStats();
      if (store.durable) {
        resolved.logger.info(
          { dataDir: options.dataDir, ms: Date.now() - started, sessions: stats.sessionsCurrent, ...store.size() },
          'store loaded',
        );
      }
      // From here the sessions' queues and in-flight windows live in the broker alone; the store reads them there.
      store.attachLive({ entries: (clientId) => core.sessions.get(clientId)?.liveEntries() });
      // close() may run while listen() awaits: start nothing (no timers, no listeners) after it.
      if (isClosed()) return;
      try {
        for (const listener of listenerOptions) {
          const handle = await startListener(listener, onStream, limits.connectTimeoutMs, limits.maxPacketSize);
          handles.push(handle);
          if (isClosed()) {
            await handle.close();
            return;
          }
        }
        if (options.metrics !== undefined) {
          const extra = () => {
            core.refreshStoreStats();
            return [...storeMetrics(stats), ...processMetrics()];
          };
          metricsServer = await startMetricsServer({ ...options.metrics, extra }, () => stats);
          if (isClosed()) await metricsServer.close();
        }
      } catch (error) {
        await Promise.all(handles.map((h) => h.close()));
        handles.length = 0;
        if (ownStore) await store.close();
        throw error;
      }
      if (isClosed()) return;
      core.ticker.start();
      const interval = options.sysIntervalSeconds ?? 10;
      if (interval > 0) {
        publishSys(core);
        sysTimer = setInterval(() => publishSys(core), interval * 1000);
      }
      resolved.logger.info({ listeners: broker.addresses() }, 'broker listening');
    },

    addresses() {
      return handles.map((h) => ({ protocol: h.protocol, host: h.host, port: h.port }));
    },

    async close() {
      if (state === 'closed') return;
      state = 'closed';
      core.closing = true;
      if (sysTimer !== undefined) clearInterval(sysTimer);
      core.ticker.stop();
      // New connections are refused from here on (onStream). The listeners close once the connections have: a
      // WebSocket listener's close ends its clients' sockets, which cut the DISCONNECT 0x8B and the close frame.
      const connections = [...core.connections];
      const gone = connections.map(
        (connection) =>
          new Promise<void>((resolve) => {
            if (connection.state === 'closed') return resolve();
            connection.socket.once('close', () => resolve());
            connection.close(0x8b, 'server shutting down');
          }),
      );
      // Each connection has its own close grace; this bounds the whole shutdown should a stream never report 'close'.
      const stragglers = setTimeout(() => {
        const open = connections.filter((c) => c.state !== 'closed');
        resolved.logger.warn(
          { code: 'BROKER_ERR_CLOSE_TIMEOUT', connections: open.length },
          'shutdown: connections still open, destroying them',
        );
        for (const connection of open) connection.destroy();
      }, CLOSE_LIMIT_MS);
      await Promise.race([
        Promise.all(gone),
        new Promise<void>((resolve) => setTimeout(resolve, CLOSE_LIMIT_MS + 1000).unref()),
      ]);
      clearTimeout(stragglers);
      const closing = handles.map((h) => h.close());
      if (metricsServer !== undefined) closing.push(metricsServer.close());
      // Sessions in a store of our own that forgets them end here: a will waiting for its delay goes now, as it
      // would when its session ended ([MQTT-3.1.2-8]), if only to the `message` event. A durable store, or one the
      // embedding application keeps, has them wait for a restart.
      if (ownStore && !store.durable) core.flushPendingWills();
      await Promise.all(closing);
      await store.flush().catch((error: unknown) => {
        resolved.logger.error({ code: 'BROKER_ERR_STORE', err: error }, 'store: last writes failed at shutdown');
      });
      if (ownStore) await store.close();
      resolved.logger.info('broker closed');
    },

    publish(message) {
      if (state === 'closed') throw new BrokerError('BROKER_ERR_CLOSED', 'the broker is closed');
      try {
        validateTopicName(message.topic);
      } catch (error) {
        throw new BrokerError('BROKER_ERR_INVALID_MESSAGE', `cannot publish to "${message.topic}"`, { cause: error });
      }
      const responseTopic = message.properties?.responseTopic;
      if (responseTopic !== undefined && topicNameProblem(responseTopic) !== undefined) {
        // [MQTT-3.3.2-14]: it goes to every subscriber as it is.
        throw new BrokerError('BROKER_ERR_INVALID_MESSAGE', `invalid response topic "${responseTopic}"`);
      }
      const qos = message.qos ?? 0;
      if (qos !== 0 && qos !== 1 && qos !== 2) {
        throw new BrokerError('BROKER_ERR_INVALID_MESSAGE', `QoS must be 0, 1 or 2, got ${String(qos)}`);
      }
      // The type leaves out a topic alias and subscription identifiers; a JavaScript caller's would reach every
      // subscriber as they are, an alias it never set among them [MQTT-3.1.2-27].
      const {
        messageExpiryInterval,
        topicAlias: _alias,
        subscriptionIdentifiers: _ids,
        ...properties
      }: PublishProperties = message.properties ?? {};
      const payload = typeof message.payload === 'string' ? new TextEncoder().encode(message.payload) : message.payload;
      return core.publish({
        topic: message.topic,
        payload: payload.slice(),
        qos,
        retain: message.retain ?? false,
        properties: Object.keys(properties).length > 0 ? properties : undefined,
        expiresAt: messageExpiryInterval === undefined ? 0 : Date.now() + messageExpiryInterval * 1000,
        origin: undefined,
      });
    },

    clients() {
      return core.clientIds();
    },

    updateAuth(update) {
      return updateAuth(core, update);
    },

    updateTls(listeners) {
      // Every context is built (and checked) before any is swapped in: a bad certificate leaves every listener as it was.
      const swaps: Array<() => void> = [];
      handles.forEach((handle, i) => {
        const next = listeners[i];
        if (next === undefined || next.protocol !== handle.protocol) {
          throw new BrokerError(
            'BROKER_ERR_INVALID_OPTION',
            `listener ${i + 1} (${handle.protocol}, port ${handle.port}) is no longer in the configuration as it was: restart to change listeners`,
          );
        }
        if (handle.prepareTls !== undefined) swaps.push(handle.prepareTls(next));
      });
      for (const swap of swaps) swap();
      return swaps.length;
    },

    store,

    metricsAddress() {
      return metricsServer === undefined ? undefined : { host: metricsServer.host, port: metricsServer.port };
    },
  };
  return broker;
}
