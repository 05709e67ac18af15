// `otalink broker`: run the MQTT broker from a config file, OTALINK_BROKER_* variables and flags.
import { parseArgs } from 'node:util';
import {
  type Broker,
  BrokerConfigError,
  type BrokerFlags,
  createBroker,
  type ResolvedBrokerConfig,
  reloadBroker,
  resolveBrokerConfig,
} from '@otalink/broker';
import { type Logger, pino } from 'pino';
import type { Command } from './command.js';

const USAGE = `Usage: otalink broker [options]

  -c, --config FILE      config file (see docs/broker-config.md); default: OTALINK_BROKER_CONFIG, else none
  -p, --port N           port of the mqtt listener (replaces the first mqtt listener's port, or adds one)
      --host HOST        bind address for --port and --ws-port (default: all addresses)
      --ws-port N        port of the WebSocket listener (replaces the first ws listener's port, or adds one)
      --allow-anonymous  let clients connect without a user name
      --metrics-port N   serve Prometheus metrics at http://HOST:N/metrics
      --log-level LEVEL  fatal, error, warn, info, debug, trace or silent (default info)
      --data-dir DIR     keep persistent sessions, queued QoS 1/2 and retained messages in DIR
                         (survive restarts and crashes; created if missing; default: memory only)
  -h, --help             this help

Precedence, lowest first: defaults, the config file, OTALINK_BROKER_<KEY> environment variables, flags.
Without a config file the broker listens on port 1883 with anonymous access off.
SIGTERM or SIGINT shuts down gracefully (MQTT 5 clients get DISCONNECT 0x8B).
SIGHUP re-reads the config and applies its password_file, acl_file and allow_anonymous (clients whose user was
removed or given a new password are disconnected with 0x87, subscriptions the new ACL refuses are removed) and the
TLS listeners' certfile, keyfile and cafile (for new handshakes). Other settings change at the next restart; a
config that no longer loads is logged and changes nothing.
`;

export interface BrokerCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Resolves when the broker should stop (default: the first SIGTERM or SIGINT). */
  stopSignal?: Promise<string>;
}

interface ParsedArgs {
  configFile: string | undefined;
  flags: BrokerFlags;
}

function parseBrokerArgs(args: string[]): ParsedArgs | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'ws-port': { type: 'string' },
      'allow-anonymous': { type: 'boolean' },
      'metrics-port': { type: 'string' },
      'log-level': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const flags: BrokerFlags = {};
  if (values.port !== undefined) flags.port = values.port;
  if (values.host !== undefined) flags.host = values.host;
  if (values['ws-port'] !== undefined) flags.wsPort = values['ws-port'];
  if (values['allow-anonymous'] === true) flags.allowAnonymous = true;
  if (values['metrics-port'] !== undefined) flags.metricsPort = values['metrics-port'];
  if (values['log-level'] !== undefined) flags.logLevel = values['log-level'];
  if (values['data-dir'] !== undefined) flags.dataDir = values['data-dir'];
  return { configFile: values.config, flags };
}

function waitForSignal(): { promise: Promise<string>; dispose(): void } {
  let onSignal: (signal: string) => void = () => {};
  const promise = new Promise<string>((resolve) => {
    onSignal = resolve;
  });
  const handlers = {
    SIGTERM: () => onSignal('SIGTERM'),
    SIGINT: () => onSignal('SIGINT'),
  };
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

/** SIGHUP: re-reads the config and applies what can change (one reload at a time; one more if asked meanwhile). */
function reloadOnHangup(
  broker: Broker,
  request: Parameters<typeof reloadBroker>[1],
  started: ResolvedBrokerConfig,
  logger: Logger,
): { dispose(): Promise<void> } {
  let current = started;
  let running: Promise<void> = Promise.resolve();
  const reload = async (): Promise<void> => {
    try {
      const { config, auth, changedUsers, tlsListeners, warnings } = await reloadBroker(broker, request, current);
      current = config;
      for (const warning of warnings) logger.warn({ code: 'BROKER_ERR_CONFIG' }, warning);
      logger.info(
        { configFile: config.configFile, changedUsers, ...auth, tlsListeners },
        'reloaded password_file, acl_file, allow_anonymous and TLS certificates (other settings change at the next restart)',
      );
    } catch (error) {
      // Files the config names are read and checked as at start-up: their problems come as BrokerConfigError.
      const code = (error as { code?: unknown }).code ?? 'BROKER_ERR_CONFIG';
      logger.error({ code, err: error }, `reload failed, the running configuration stays: ${(error as Error).message}`);
    }
  };
  const onHangup = (): void => {
    running = running.then(reload);
  };
  process.on('SIGHUP', onHangup);
  return {
    async dispose() {
      process.off('SIGHUP', onHangup);
      await running;
    },
  };
}

function url(address: { protocol: string; host: string; port: number }): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${address.protocol}://${host}:${address.port}`;
}

export async function runBroker(args: string[], io: BrokerCommandIo): Promise<number> {
  let parsed: ParsedArgs | 'help';
  try {
    parsed = parseBrokerArgs(args);
  } catch (error) {
    io.stderr.write(`otalink broker: ${(error as Error).message}\nRun \`otalink broker --help\` for the options.\n`);
    return 2;
  }
  if (parsed === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }

  let resolved: ResolvedBrokerConfig;
  const request =
    parsed.configFile === undefined
      ? { env: io.env, flags: parsed.flags }
      : { configFile: parsed.configFile, env: io.env, flags: parsed.flags };
  try {
    resolved = await resolveBrokerConfig(request);
  } catch (error) {
    if (error instanceof BrokerConfigError) {
      io.stderr.write(`otalink broker: ${error.message}\n`);
      return 2;
    }
    throw error;
  }

  const { options, warnings, configFile } = resolved;
  const logger = pino({ level: options.logLevel ?? 'info' }, pino.destination(2));
  for (const warning of warnings) logger.warn(warning);
  if (options.dataDir === undefined) {
    logger.info('no data_dir: sessions, queued messages and retained messages are kept in memory only');
  } else {
    logger.info(
      { dataDir: options.dataDir, sync: options.storeOptions?.sync ?? 'batch' },
      'durable store: persistent sessions, queued QoS 1/2 and retained messages survive restarts',
    );
  }

  const stop = io.stopSignal === undefined ? waitForSignal() : { promise: io.stopSignal, dispose() {} };
  let broker: Broker | undefined;
  try {
    broker = createBroker({ ...options, logger });
    await broker.listen();
    const metrics = broker.metricsAddress();
    if (metrics !== undefined) {
      logger.info({ metrics: `http://${metrics.host}:${metrics.port}/metrics` }, 'metrics listening');
    }
  } catch (error) {
    stop.dispose();
    await broker?.close();
    const code = (error as { code?: unknown }).code;
    const prefix = typeof code === 'string' && code.startsWith('BROKER_ERR_STORE') ? `${code}: ` : '';
    io.stderr.write(`otalink broker: ${prefix}${(error as Error).message}\n`);
    logger.flush();
    return 1;
  }
  logger.info(
    { configFile, addresses: broker.addresses().map(url) },
    `otalink broker listening on ${broker.addresses().map(url).join(', ')}`,
  );

  const reloads = reloadOnHangup(broker, request, resolved, logger);
  const signal = await stop.promise;
  stop.dispose();
  await reloads.dispose();
  logger.info({ signal }, 'shutting down');
  await broker.close();
  logger.flush();
  return 0;
}

export const broker: Command = {
  run: (args) => runBroker(args, { stdout: process.stdout, stderr: process.stderr, env: process.env }),
};
