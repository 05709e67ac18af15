// createBackend: wires the store, artifact files, keyring, orchestrator and MQTT bridge into one BackendService.
// start() opens everything and resumes running campaigns from the store; close() flushes and closes in reverse.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ClientOptions } from '@otalink/mqtt';
import { OtaTopics, type VinMode } from '@otalink/ota';
import { BackendError, type BackendService } from './api.js';
import { ArtifactFiles } from './artifacts/files.js';
import { Keyring } from './artifacts/keys.js';
import { loadOrCreateUrlSecret } from './artifacts/signed-url.js';
import { ADMIN_TOKEN_FILE, ensureBootstrapToken } from './auth/bootstrap.js';
import { ApiTokens } from './auth/tokens.js';
import { type Clock, systemClock } from './clock.js';
import { type DownloadListener, startDownloadListener } from './downloads/listener.js';
import { type CommandSink, Orchestrator } from './engine/orchestrator.js';
import { defaultLogger, type Logger } from './logger.js';
import { MqttBridge } from './mqtt/bridge.js';
import { Service } from './service.js';
import { openPostgresStore } from './store/postgres.js';
import { openSqliteStore } from './store/sqlite.js';
import type { BackendStore } from './store/types.js';

export interface BackendOptions {
  /** Holds backend.db, artifacts/ and keys/ (created when missing). */
  dataDir: string;
  /** The broker: a URL such as mqtt://127.0.0.1:1883 or client options. Omitted: no MQTT (commandSink or nothing). */
  mqtt?: string | ClientOptions;
  /** Topic prefix; default `ota`. */
  prefix?: string;
  /** Share name of the shared subscriptions; default `otalink-backend`. */
  backendGroup?: string;
  /** `strict` (default) or `simulation` (test ids such as SIM-000042). */
  vinMode?: VinMode;
  /**
   * Origin of the artifact download URLs in manifests, e.g. https://127.0.0.1:8443. Default: the download
   * listener's URL; required without one.
   */
  publicBaseUrl?: string;
  /**
   * Serve artifact downloads from a worker thread with its own listener (give it the API's TLS key and certificate),
   * so the TLS handshakes of a fleet starting its downloads at once do not hold the API's event loop. Started by
   * start(), stopped by close(); restarted when it dies. Without it, downloads go wherever publicBaseUrl points
   * (the API's own /artifacts route, a CDN...).
   */
  downloads?: DownloadListenerSettings;
  clock?: Clock;
  logger?: Logger;
  /** A store made by the embedder; default SQLite at `<dataDir>/backend.db`, or PostgreSQL with `databaseUrl`. */
  store?: BackendStore;
  /**
   * postgres://user:password@host:port/database: vehicles, campaigns, executions and tokens live there instead of
   * in SQLite. Artifact files, the signing keys and the URL secret stay in `dataDir`.
   */
  databaseUrl?: string;
  /** Client id of the backend's persistent session; default derived from the data directory. */
  mqttClientId?: string;
  /** Instead of MQTT: where commands go (tests, in-process simulations). */
  commandSink?: CommandSink;
  /** Uploads above this are refused; default 4 GiB. */
  maxArtifactBytes?: number;
  /** At most one fleet.status per model per this interval; default 1000 ms. */
  fleetIntervalMs?: number;
  /** Register unknown vehicles from their online presence; default true. */
  autoRegister?: boolean;
  /**
   * Where the first admin token goes when the store has no API token (mode 0600); default
   * `<dataDir>/admin-token`; false: create none (the embedder creates tokens through the service).
   */
  adminTokenFile?: string | false;
}

export interface DownloadListenerSettings {
  /** PEM certificate chain and key; without them the download listener speaks plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** Port; 0 picks a free one (default 0). */
  port?: number;
}

export interface Backend {
  readonly service: BackendService;
  /** The engine, for in-process ingest (tests, the simulator) and flushNow(). Available after start(). */
  readonly engine: Orchestrator;
  readonly topics: OtaTopics;
  /** The bootstrap admin token's file (it may not exist: no token was created, or it was deleted). */
  readonly adminTokenFile: string | undefined;
  /** The download worker's listener (options.downloads), once started. */
  readonly downloads: DownloadListener | undefined;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createBackend(options: BackendOptions): Backend {
  const dataDir = resolve(options.dataDir);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? defaultLogger();
  const vinMode = options.vinMode ?? 'strict';
  const topics = new OtaTopics({
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.backendGroup === undefined ? {} : { backendGroup: options.backendGroup }),
    vinMode,
  });
  let service: Service | undefined;
  let engine: Orchestrator | undefined;
  let store: BackendStore | undefined;
  let bridge: MqttBridge | undefined;
  let downloads: DownloadListener | undefined;
  let state: 'idle' | 'starting' | 'started' | 'closed' = 'idle';
  const adminTokenFile =
    options.adminTokenFile === false ? undefined : resolve(options.adminTokenFile ?? join(dataDir, ADMIN_TOKEN_FILE));

  const notStarted = () => new BackendError('OTA_ERR_UNAVAILABLE', 'the backend is not started');
  // Every call goes to the service once started; before that, a clear refusal instead of a crash.
  const proxy = new Proxy({} as BackendService, {
    get(_target, name) {
      if (service === undefined) {
        return () => {
          throw notStarted();
        };
      }
      const value = (service as unknown as Record<string | symbol, unknown>)[name];
      return typeof value === 'function' ? value.bind(service) : value;
    },
  });

  async function start(): Promise<void> {
    if (state !== 'idle') throw new BackendError('OTA_ERR_INVALID_STATE', `start() in state ${state}`);
    if (options.publicBaseUrl === undefined && options.downloads === undefined) {
      throw new BackendError('OTA_ERR_VALIDATION', 'publicBaseUrl is required without a download listener', {
        field: 'publicBaseUrl',
      });
    }
    state = 'starting';
    try {
      try {
        mkdirSync(dataDir, { recursive: true });
      } catch (e) {
        throw new BackendError(
          'OTA_ERR_STORE',
          `cannot create the data directory ${dataDir}: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
      store =
        options.store ??
        (options.databaseUrl === undefined
          ? openSqliteStore({ path: join(dataDir, 'backend.db') })
          : await openPostgresStore({ url: options.databaseUrl }));
      const artifactDir = join(dataDir, 'artifacts');
      const files = new ArtifactFiles(artifactDir, { onRemoved: (sha256) => downloads?.forget(sha256) });
      const keyring = await Keyring.open(dataDir, store, () => clock.now());
      const urlSecret = loadOrCreateUrlSecret(dataDir);
      if (options.downloads !== undefined) {
        downloads = await startDownloadListener({ ...options.downloads, artifactDir, urlSecret, logger });
      }
      const publicBaseUrl = (options.publicBaseUrl ?? downloads?.url) as string;
      const tokens = new ApiTokens(store, () => clock.now());
      if (adminTokenFile !== undefined) await ensureBootstrapToken(tokens, adminTokenFile, logger);
      let sink: CommandSink;
      if (options.commandSink !== undefined) sink = options.commandSink;
      else if (options.mqtt !== undefined) {
        bridge = new MqttBridge({
          mqtt: options.mqtt,
          topics,
          logger,
          clientId:
            options.mqttClientId ??
            `otalink-backend-${createHash('sha256').update(dataDir).digest('hex').slice(0, 12)}`,
        });
        sink = bridge;
      } else {
        sink = { send: () => undefined, publishFleet: () => undefined };
        logger.warn({}, 'no MQTT configured: commands to vehicles are dropped');
      }
      engine = new Orchestrator({
        store,
        clock,
        logger,
        sink,
        ...(options.fleetIntervalMs === undefined ? {} : { fleetIntervalMs: options.fleetIntervalMs }),
        ...(options.autoRegister === undefined ? {} : { autoRegister: options.autoRegister }),
      });
      bridge?.attach(engine);
      await engine.load();
      await bridge?.start();
      const connectedBridge = bridge;
      service = new Service({
        store,
        files,
        keyring,
        engine,
        clock,
        urlSecret,
        publicBaseUrl,
        vinMode,
        maxArtifactBytes: options.maxArtifactBytes ?? 4 * 1024 ** 3,
        mqttConnected: () => connectedBridge?.connected ?? false,
        tokens,
      });
      state = 'started';
      logger.info(
        { dataDir, mqtt: bridge !== undefined, prefix: topics.prefix, downloads: downloads?.url, publicBaseUrl },
        'backend started',
      );
    } catch (e) {
      await shutdown();
      throw e;
    }
  }

  async function shutdown(): Promise<void> {
    state = 'closed';
    service = undefined;
    // Stop taking messages first, then land what is buffered, then close the store.
    await bridge?.close().catch((err: unknown) => logger.warn({ err }, 'closing mqtt'));
    await downloads?.close().catch((err: unknown) => logger.warn({ err }, 'closing the download listener'));
    await engine?.close().catch((err: unknown) => logger.warn({ err }, 'closing the engine'));
    await store?.close().catch((err: unknown) => logger.warn({ err }, 'closing the store'));
  }

  return {
    service: proxy,
    get engine(): Orchestrator {
      if (engine === undefined) throw notStarted();
      return engine;
    },
    topics,
    adminTokenFile,
    get downloads() {
      return downloads;
    },
    start,
    close: async () => {
      if (state === 'closed') return;
      await shutdown();
    },
  };
}
