// The embedded OTA stack in one process: dev PKI, our broker (vehicles over mutual TLS, the backend on loopback),
// the backend engine with its HTTPS API and dashboard, and optionally a simulated fleet. `otalink up` and
// `otalink demo` are thin shells around startStack().
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ArtifactInfo,
  type Backend,
  createBackend,
  type RunningHttpServer,
  startHttpServer,
} from '@otalink/backend';
import { BACKEND_IDENTITY, type DevPki, loadOrCreateDevPki } from '@otalink/pki';
import type { Logger } from 'pino';
import { type StackBroker, startStackBroker } from './broker.js';
import { SIM_HARDWARE_ID } from './fleet.js';
import { lateService } from './http.js';
import { withPortFallback, withTwoPortFallback } from './ports.js';
import { sampleArtifactBytes } from './sample-artifact.js';

export const DEFAULT_HTTP_PORT = 8443;
/** Plain HTTP on 127.0.0.1 only, so that the dashboard opens in a browser without a certificate warning. */
export const DEFAULT_DASHBOARD_PORT = 8080;
export const DEFAULT_MQTT_TLS_PORT = 8883;
/** HTTPS for artifact downloads, served by the backend's download worker thread (same certificate as the API). */
export const DEFAULT_DOWNLOAD_PORT = 8444;

/** What a fleet needs from the stack to connect its vehicles. */
export interface FleetContext {
  /** The stack's data directory (the fleet keeps its vehicles' state under it). */
  home: string;
  pki: DevPki;
  /** mqtts://127.0.0.1:port: mutual TLS, identity = the VIN in the certificate. */
  mqttUrl: string;
  /** https://127.0.0.1:port: the API (trust pki.ca); downloads are wherever the manifests point. */
  apiUrl: string;
  backend: Backend;
  logger: Logger;
}

export interface RunningFleet {
  close(): Promise<void>;
}

export interface StackOptions {
  /** Data directory: pki/, broker/ (durable MQTT store), backend/ (SQLite, artifacts, signing keys). */
  home: string;
  /** Bind address of every listener; default 127.0.0.1 (the server certificate names 127.0.0.1, ::1, localhost). */
  host?: string;
  /** HTTPS port (API, dashboard); default 8443, a free port if that one is taken. */
  httpPort?: number;
  /**
   * HTTPS port of the artifact downloads, served from the backend's worker thread so a fleet's download herd does
   * not stall the API; default 8444, a free port if that one is taken; `false`: downloads from the API's port.
   */
  downloadPort?: number | false;
  /**
   * Plain-HTTP listener on 127.0.0.1 (whatever `host` is) serving the dashboard and the API for local browsers;
   * default 8080, a free port if that one is taken; `false`: none.
   */
  dashboardPort?: number | false;
  /** MQTT over mutual TLS for vehicles; default 8883, a free port if that one is taken. */
  mqttPort?: number;
  logger: Logger;
  /** Upload the sample artifact; default true. */
  sampleArtifact?: boolean;
  /** Starts the simulated fleet once the backend runs. */
  fleet?: (context: FleetContext) => Promise<RunningFleet>;
  /** $SYS interval of the broker (0 in tests). */
  sysIntervalSeconds?: number;
}

export interface RunningStack {
  pki: DevPki;
  broker: StackBroker;
  http: RunningHttpServer;
  backend: Backend;
  fleet: RunningFleet | undefined;
  urls: {
    /** http://127.0.0.1:port/ when the loopback dashboard listener runs, else the HTTPS one. */
    dashboard: string;
    /** The dashboard over HTTPS (trust pki.ca). */
    dashboardHttps: string;
    api: string;
    /** Origin of the artifact download URLs in manifests. */
    downloads: string;
    /** Vehicles: mutual TLS. */
    mqttVehicles: string;
    /** The backend's loopback listener (user otalink-backend, `backendPassword`). */
    mqttBackend: string;
  };
  /** Per-run password of the backend's MQTT user on the loopback listener. */
  backendPassword: string;
  /** The bootstrap admin API token (`<home>/backend/admin-token`), when that file exists. */
  adminToken: { token: string; file: string } | undefined;
  sampleArtifact: ArtifactInfo | undefined;
  /** Stops the fleet, the backend, the HTTP server and the broker, in that order. Idempotent. */
  close(): Promise<void>;
}

export const SAMPLE_ARTIFACT = { name: 'otalink sample update', version: '1.1.0' } as const;

export async function startStack(options: StackOptions): Promise<RunningStack> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger;
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of closers.reverse().splice(0)) {
      await close().catch((err: unknown) => logger.warn({ err }, 'stack: error while closing'));
    }
  };
  try {
    const pki = await loadOrCreateDevPki(join(options.home, 'pki'));
    const backendPassword = randomBytes(18).toString('base64url');
    const fallback = (what: string) => (port: number) =>
      logger.warn({ port }, `${what}: port ${port} is taken, using a free port instead`);

    const broker = await withPortFallback(
      options.mqttPort ?? DEFAULT_MQTT_TLS_PORT,
      (port) =>
        startStackBroker({
          pki,
          tls: { host, port },
          backend: { host: '127.0.0.1', port: 0, password: backendPassword },
          // What the broker acknowledged (a vehicle's status, a queued command) survives a crash of `otalink up`.
          dataDir: join(options.home, 'broker'),
          logger: logger.child({ component: 'broker' }),
          ...(options.sysIntervalSeconds === undefined ? {} : { sysIntervalSeconds: options.sysIntervalSeconds }),
        }),
      fallback('MQTT'),
    );
    closers.push(() => broker.broker.close());
    const backendUrl = broker.backendUrl;
    if (backendUrl === undefined) throw new Error('the stack broker has no backend listener');

    let backend: Backend | undefined;
    const service = lateService(() => {
      if (backend === undefined) throw new Error('the backend is not created yet');
      return backend.service;
    });
    const tls = { cert: pki.server.certPem, key: pki.server.keyPem };
    const httpsPort = options.httpPort ?? DEFAULT_HTTP_PORT;
    const dashboardPort = options.dashboardPort ?? DEFAULT_DASHBOARD_PORT;
    const http =
      dashboardPort === false
        ? await withPortFallback(httpsPort, (port) => startHttpServer({ service, tls, host, port }), fallback('HTTPS'))
        : await withTwoPortFallback(
            [httpsPort, dashboardPort],
            ([port, plainPort]) =>
              startHttpServer({ service, tls, host, port, plainHttp: { host: '127.0.0.1', port: plainPort } }),
            fallback('HTTP'),
          );
    closers.push(() => http.close());

    const downloadPort = options.downloadPort ?? DEFAULT_DOWNLOAD_PORT;
    // start() cleans up after itself when it throws, so a taken download port is retried with a new backend.
    const created = await withPortFallback(
      downloadPort === false ? 0 : downloadPort,
      async (port) => {
        const candidate = createBackend({
          dataDir: join(options.home, 'backend'),
          mqtt: { url: backendUrl, username: BACKEND_IDENTITY, password: backendPassword },
          vinMode: 'simulation',
          ...(downloadPort === false ? { publicBaseUrl: http.url } : { downloads: { tls, host, port } }),
          logger: logger.child({ component: 'backend' }),
        });
        backend = candidate;
        await candidate.start();
        return candidate;
      },
      fallback('downloads'),
    );
    closers.push(() => created.close());
    const adminToken = await readAdminToken(created.adminTokenFile);

    let sampleArtifact: ArtifactInfo | undefined;
    if (options.sampleArtifact !== false) {
      sampleArtifact = await created.service.putArtifact(sampleArtifactBytes(), {
        ...SAMPLE_ARTIFACT,
        hardwareIds: [SIM_HARDWARE_ID],
        contentType: 'application/octet-stream',
      });
    }

    let fleet: RunningFleet | undefined;
    if (options.fleet !== undefined) {
      fleet = await options.fleet({
        home: options.home,
        pki,
        mqttUrl: broker.tlsUrl,
        apiUrl: http.url,
        backend: created,
        logger,
      });
      const running = fleet;
      closers.push(() => running.close());
    }

    let closing: Promise<void> | undefined;
    return {
      pki,
      broker,
      http,
      backend: created,
      fleet,
      urls: {
        dashboard: `${http.plainUrl ?? http.url}/`,
        dashboardHttps: `${http.url}/`,
        api: `${http.url}/api/v1`,
        downloads: created.downloads?.url ?? http.url,
        mqttVehicles: broker.tlsUrl,
        mqttBackend: backendUrl,
      },
      backendPassword,
      adminToken,
      sampleArtifact,
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The bootstrap admin token the backend wrote on its first start; undefined once someone deleted the file. */
async function readAdminToken(file: string | undefined): Promise<{ token: string; file: string } | undefined> {
  if (file === undefined) return undefined;
  try {
    const token = (await readFile(file, 'utf8')).trim();
    return token === '' ? undefined : { token, file };
  } catch {
    return undefined;
  }
}
