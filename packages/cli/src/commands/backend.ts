// `otalink backend`: run the OEM backend (store, campaigns, MQTT bridge) behind its HTTPS API and dashboard.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
// The HTTP layer is not re-exported by @otalink/backend's entry yet; see docs/backend-api.md.
import {
  type Backend,
  BackendError,
  type BackendService,
  createBackend,
  type RunningHttpServer,
  startHttpServer,
} from '@otalink/backend';
import type { VinMode } from '@otalink/ota';
import { loadOrCreateDevPki } from '@otalink/pki';
import { pino } from 'pino';
import type { Command } from './command.js';
import { UsageError } from './usage.js';

const USAGE = `Usage: otalink backend [options]

  --data-dir DIR          database, artifacts, signing keys (default: OTALINK_DATA_DIR, else .otalink/backend)
  --database URL          keep the records in PostgreSQL (postgres://user:password@host:port/db; default:
                          OTALINK_DATABASE_URL, else SQLite in DATA_DIR); artifact files and keys stay in DATA_DIR
  --mqtt URL              the broker, e.g. mqtt://127.0.0.1:1883 (default: OTALINK_MQTT; none: commands are dropped)
  --listen HOST:PORT      HTTPS address of the API, downloads and dashboard (default 127.0.0.1:8443)
  --tls-cert FILE         PEM certificate chain for HTTPS ...
  --tls-key FILE          ... and its key; without both, a development CA under DATA_DIR/pki issues one
  --plain-http HOST:PORT  also serve plain HTTP here (vehicles behind a TLS-terminating proxy, local tools)
  --downloads HOST:PORT   serve artifact downloads here too, from a worker thread (same certificate), so a fleet
                          downloading at once does not stall the API; manifests then point here
  --public-url URL        origin put in the manifests' download URLs (default: the --downloads address, else the
                          HTTPS address)
  --vin-mode MODE         strict (ISO 3779 VINs, default) or simulation (SIM-000042 and the like)
  --upload-limit BYTES    largest artifact upload (default 1073741824)
  --log-level LEVEL       fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help              this help

SIGTERM or SIGINT shuts down: event streams end, buffered status is written, the store is closed.
`;

export interface BackendCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Resolves when the backend should stop (default: the first SIGTERM or SIGINT). */
  stopSignal?: Promise<string>;
  /** Called once listening, with the HTTPS (or HTTP) base URL and the public URL (for tests and wrappers). */
  onListening?: (info: {
    url: string;
    plainUrl: string | undefined;
    publicUrl: string;
    caFile: string | undefined;
  }) => void;
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function hostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || port > 65535) throw new UsageError(`${flag} must be HOST:PORT (IPv6 in brackets), got "${value}"`);
  return { host: m[1] ?? (m[2] === '' || m[2] === undefined ? '127.0.0.1' : m[2]), port };
}

interface Settings {
  dataDir: string;
  databaseUrl: string | undefined;
  mqtt: string | undefined;
  listen: { host: string; port: number };
  plainHttp: { host: string; port: number } | undefined;
  downloads: { host: string; port: number } | undefined;
  tlsFiles: { cert: string; key: string } | undefined;
  publicUrl: string | undefined;
  vinMode: VinMode;
  uploadLimitBytes: number | undefined;
  logLevel: string;
}

function parseSettings(args: string[], env: Record<string, string | undefined>): Settings | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      'data-dir': { type: 'string' },
      database: { type: 'string' },
      mqtt: { type: 'string' },
      listen: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'plain-http': { type: 'string' },
      downloads: { type: 'string' },
      'public-url': { type: 'string' },
      'vin-mode': { type: 'string' },
      'upload-limit': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  const mqtt = values.mqtt ?? env.OTALINK_MQTT;
  if (mqtt !== undefined && !/^(mqtts?|wss?):\/\//.test(mqtt)) {
    throw new UsageError(`--mqtt must be an mqtt://, mqtts://, ws:// or wss:// URL, got "${mqtt}"`);
  }
  const databaseUrl = values.database ?? env.OTALINK_DATABASE_URL;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl)) {
    throw new UsageError('--database must be a postgres:// or postgresql:// URL');
  }
  const publicUrl = values['public-url'];
  if (publicUrl !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(publicUrl)) {
    throw new UsageError(`--public-url must be an http(s) origin such as https://ota.example.com, got "${publicUrl}"`);
  }
  const vinMode = values['vin-mode'] ?? 'strict';
  if (vinMode !== 'strict' && vinMode !== 'simulation') {
    throw new UsageError(`--vin-mode must be strict or simulation, got "${vinMode}"`);
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new UsageError(`--log-level must be one of ${[...LOG_LEVELS].join(', ')}`);
  let uploadLimitBytes: number | undefined;
  if (values['upload-limit'] !== undefined) {
    uploadLimitBytes = Number(values['upload-limit']);
    if (!/^\d+$/.test(values['upload-limit']) || uploadLimitBytes < 1 || !Number.isSafeInteger(uploadLimitBytes)) {
      throw new UsageError(`--upload-limit must be a positive number of bytes, got "${values['upload-limit']}"`);
    }
  }
  return {
    dataDir: resolve(values['data-dir'] ?? env.OTALINK_DATA_DIR ?? join('.otalink', 'backend')),
    databaseUrl,
    mqtt,
    listen: hostPort(values.listen ?? '127.0.0.1:8443', '--listen'),
    plainHttp: values['plain-http'] === undefined ? undefined : hostPort(values['plain-http'], '--plain-http'),
    downloads: values.downloads === undefined ? undefined : hostPort(values.downloads, '--downloads'),
    tlsFiles:
      values['tls-cert'] === undefined || values['tls-key'] === undefined
        ? undefined
        : { cert: values['tls-cert'], key: values['tls-key'] },
    publicUrl: publicUrl?.replace(/\/$/, ''),
    vinMode,
    uploadLimitBytes,
    logLevel,
  };
}

function waitForSignal(): { promise: Promise<string>; dispose(): void } {
  let onSignal: (signal: string) => void = () => {};
  const promise = new Promise<string>((resolve) => {
    onSignal = resolve;
  });
  const handlers = { SIGTERM: () => onSignal('SIGTERM'), SIGINT: () => onSignal('SIGINT') };
  process.once('SIGTERM', handlers.SIGTERM);
  process.once('SIGINT', handlers.SIGINT);
  return {
    promise,
    dispose() {
      process.off('SIGTERM', handlers.SIGTERM);
      process.off('SIGINT', handlers.SIGINT);
    },
  };
}

/**
 * The engine's service reached per request. HTTP listens first so that, with port 0, the address it got can be the
 * public URL the engine signs download URLs under; until the engine has started, requests get a 503.
 */
function lateService(get: () => BackendService | undefined): BackendService {
  return new Proxy({} as BackendService, {
    get(_target, name) {
      const service = get() as unknown as Record<string | symbol, unknown> | undefined;
      if (service === undefined) {
        return () => {
          throw new BackendError('OTA_ERR_UNAVAILABLE', 'the backend is starting');
        };
      }
      const value = service[name];
      return typeof value === 'function' ? value.bind(service) : value;
    },
  });
}

export async function runBackend(args: string[], io: BackendCommandIo): Promise<number> {
  let settings: Settings | 'help';
  try {
    settings = parseSettings(args, io.env);
  } catch (error) {
    io.stderr.write(`otalink backend: ${(error as Error).message}\nRun \`otalink backend --help\` for the options.\n`);
    return 2;
  }
  if (settings === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  const logger = pino({ name: 'otalink-backend', level: settings.logLevel }, pino.destination(2));
  const stop = io.stopSignal === undefined ? waitForSignal() : { promise: io.stopSignal, dispose() {} };
  let backend: Backend | undefined;
  let started = false;
  let server: RunningHttpServer | undefined;
  const shutdown = async () => {
    await server?.close().catch((err: unknown) => logger.warn({ err }, 'closing the HTTP server'));
    await backend?.close().catch((err: unknown) => logger.warn({ err }, 'closing the backend'));
  };
  try {
    let tls: { cert: string | Buffer; key: string | Buffer };
    let caFile: string | undefined;
    if (settings.tlsFiles !== undefined) {
      tls = { cert: await readFile(settings.tlsFiles.cert), key: await readFile(settings.tlsFiles.key) };
    } else {
      const pki = await loadOrCreateDevPki(join(settings.dataDir, 'pki'));
      tls = { cert: pki.server.certPem, key: pki.server.keyPem };
      caFile = pki.paths.ca.cert;
      logger.info({ ca: caFile }, 'HTTPS with the development CA: clients need --cafile with this CA');
    }
    server = await startHttpServer({
      service: lateService(() => (started ? backend?.service : undefined)),
      host: settings.listen.host,
      port: settings.listen.port,
      tls,
      ...(settings.plainHttp === undefined ? {} : { plainHttp: settings.plainHttp }),
      ...(settings.uploadLimitBytes === undefined ? {} : { uploadLimitBytes: settings.uploadLimitBytes }),
      logger: logger.child({ component: 'http' }),
    });
    backend = createBackend({
      dataDir: settings.dataDir,
      ...(settings.publicUrl === undefined && settings.downloads !== undefined
        ? {}
        : { publicBaseUrl: settings.publicUrl ?? server.url }),
      ...(settings.downloads === undefined ? {} : { downloads: { ...settings.downloads, tls } }),
      vinMode: settings.vinMode,
      logger,
      ...(settings.databaseUrl === undefined ? {} : { databaseUrl: settings.databaseUrl }),
      ...(settings.mqtt === undefined ? {} : { mqtt: settings.mqtt }),
      ...(settings.uploadLimitBytes === undefined ? {} : { maxArtifactBytes: settings.uploadLimitBytes }),
    });
    await backend.start();
    started = true;
    const publicUrl = settings.publicUrl ?? backend.downloads?.url ?? server.url;
    if (settings.publicUrl === undefined && /^https?:\/\/(0\.0\.0\.0|\[::\])/.test(publicUrl)) {
      logger.warn(
        { publicUrl },
        'listening on every address: give --public-url so vehicles get a reachable download URL',
      );
    }
    logger.info(
      {
        url: server.url,
        plainUrl: server.plainUrl,
        downloads: backend.downloads?.url,
        publicUrl,
        dataDir: settings.dataDir,
        mqtt: settings.mqtt,
      },
      `otalink backend listening on ${server.url}`,
    );
    io.onListening?.({ url: server.url, plainUrl: server.plainUrl, publicUrl, caFile });
  } catch (error) {
    stop.dispose();
    await shutdown();
    io.stderr.write(`otalink backend: ${(error as Error).message}\n`);
    logger.flush();
    return 1;
  }
  const signal = await stop.promise;
  stop.dispose();
  logger.info({ signal }, 'shutting down');
  await shutdown();
  logger.flush();
  return 0;
}

export const backend: Command = {
  run: (args) => runBackend(args, { stdout: process.stdout, stderr: process.stderr, env: process.env }),
};
