// `otalink agent`: one vehicle's TCU agent. The activation of a new version restarts the agent: by default the
// process exits with RESTART_EXIT_CODE (75) and its supervisor (systemd `Restart=always`, a container runtime...)
// starts it again, which resumes from the journal and runs the health check; `--supervise` restarts in-process.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type AgentOptions, createAgent, RESTART_EXIT_CODE, runAgent, type VehicleConditions } from '@otalink/agent';
import type { TrustedKey } from '@otalink/ota';
import { publicKeyBytes } from '@otalink/ota/node';
import { type Logger, pino } from 'pino';
import type { Command } from './command.js';

const USAGE = `Usage: otalink agent --vin VIN --state-dir DIR --mqtt URL --trusted-key ID=FILE [options]

  --vin <vin>                 the vehicle (client id and topic level)
  --state-dir <dir>           journal, download and the A/B slots
  --mqtt <url>                mqtt:// or mqtts:// broker URL
  --trusted-key <id=file>     Ed25519 public key (PEM) manifests may be signed with; repeat for rotation
  --hardware-id <id>          default tcu-v2
  --model <model>             reported in the presence inventory
  --installed-version <v>     factory version in slot A for a new state dir (default 1.0.0)
  --protocol <5|311>          MQTT version (default 5)
  --cafile <file>             CA for the broker's certificate
  --cert <file> --key <file>  client certificate for mutual TLS (the VIN in its CN)
  --username <u> --password <p>  instead of a client certificate
  --artifact-ca <file>        CA for the artifact server (default: Node's roots)
  --allow-http                accept http:// artifact URLs (labs only)
  --download-bps <bytes/s>    cap the download rate (leave the cellular link to others; default unlimited)
  --log-level <level>         fatal, error, warn, info (default), debug, trace or silent; JSON lines on stderr
  --topic-prefix <p>          default ota
  --simulation-vins           accept test ids such as SIM-000001
  --conditions <file>         JSON {"parked":bool,"batteryPercent":0..100,"ownerConsent":bool}, read at every
                              precondition check (the vehicle's integration keeps it current); default: parked,
                              100 %, consent. Unreadable or invalid: every precondition counts as unmet
  --precondition-wait-ms <ms> how long an unmet precondition may hold an update (reported paused) before it is
                              REJECTED; default 0: refuse at once
  --supervise                 restart in-process after an activation instead of exiting with ${RESTART_EXIT_CODE}
`;

export const agent: Command = {
  async run(args) {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(args);
    } catch (error) {
      process.stderr.write(`otalink agent: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (parsed.values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    let options: AgentOptions;
    try {
      options = await agentOptions(parsed.values);
    } catch (error) {
      process.stderr.write(`otalink agent: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (parsed.values.supervise) {
      const runner = await runAgent(options);
      const stop = () => void runner.close();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await runner.stopped;
      return 0;
    }
    const running = await createAgent(options);
    const stop = () => void running.close();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const exit = await running.exited;
    return exit.reason === 'restart' ? RESTART_EXIT_CODE : 0;
  },
};

function parse(args: string[]) {
  return parseArgs({
    args,
    options: {
      vin: { type: 'string' },
      'state-dir': { type: 'string' },
      mqtt: { type: 'string' },
      'trusted-key': { type: 'string', multiple: true },
      'hardware-id': { type: 'string' },
      model: { type: 'string' },
      'installed-version': { type: 'string' },
      protocol: { type: 'string' },
      cafile: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      'artifact-ca': { type: 'string' },
      'allow-http': { type: 'boolean' },
      'download-bps': { type: 'string' },
      'log-level': { type: 'string' },
      'topic-prefix': { type: 'string' },
      'simulation-vins': { type: 'boolean' },
      conditions: { type: 'string' },
      'precondition-wait-ms': { type: 'string' },
      supervise: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
}

type Values = ReturnType<typeof parse>['values'];

/** `id=file.pem` pairs as trusted keys. */
export async function readTrustedKeys(specs: string[] | undefined): Promise<TrustedKey[]> {
  if (specs === undefined || specs.length === 0) throw new Error('at least one --trusted-key ID=FILE is required');
  return Promise.all(
    specs.map(async (spec) => {
      const at = spec.indexOf('=');
      if (at <= 0) throw new Error(`--trusted-key wants ID=FILE, got "${spec}"`);
      return { keyId: spec.slice(0, at), publicKey: publicKeyBytes(await readFile(spec.slice(at + 1), 'utf8')) };
    }),
  );
}

export function protocolVersion(value: string | undefined): 4 | 5 {
  if (value === undefined || value === '5') return 5;
  if (value === '311' || value === '4') return 4;
  throw new Error(`--protocol must be 5 or 311, got "${value}"`);
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function logLevel(value: string | undefined): string {
  if (value === undefined) return 'info';
  if (!LOG_LEVELS.has(value)) throw new Error(`--log-level must be one of ${[...LOG_LEVELS].join(', ')}`);
  return value;
}

function whole(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new Error(`${flag} must be a whole number, got "${value}"`);
  return n;
}

const UNKNOWN_CONDITIONS: VehicleConditions = { parked: false, batteryPercent: 0, ownerConsent: false };

/** The vehicle's conditions from a JSON file, read at each check; what cannot be read meets no precondition. */
function conditionsFrom(file: string, logger: Logger): () => VehicleConditions {
  return () => {
    try {
      const value = JSON.parse(readFileSync(file, 'utf8')) as Partial<VehicleConditions>;
      const { parked, batteryPercent, ownerConsent } = value;
      if (
        typeof parked !== 'boolean' ||
        typeof ownerConsent !== 'boolean' ||
        typeof batteryPercent !== 'number' ||
        !(batteryPercent >= 0 && batteryPercent <= 100)
      ) {
        throw new Error('expected {"parked":bool,"batteryPercent":0..100,"ownerConsent":bool}');
      }
      return { parked, batteryPercent, ownerConsent };
    } catch (error) {
      logger.warn({ err: error, file }, 'vehicle conditions unreadable: treating every precondition as unmet');
      return UNKNOWN_CONDITIONS;
    }
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n === 0) {
    throw new Error(`--download-bps must be a whole number above 0, got "${value}"`);
  }
  return n;
}

async function agentOptions(values: Values): Promise<AgentOptions> {
  const required = (name: 'vin' | 'state-dir' | 'mqtt') => {
    const v = values[name];
    if (v === undefined) throw new Error(`--${name} is required`);
    return v;
  };
  const logger = pino({ level: logLevel(values['log-level']) }, pino.destination(2));
  const tls: { ca?: string; cert?: string; key?: string } = {};
  if (values.cafile !== undefined) tls.ca = await readFile(values.cafile, 'utf8');
  if (values.cert !== undefined) tls.cert = await readFile(values.cert, 'utf8');
  if (values.key !== undefined) tls.key = await readFile(values.key, 'utf8');
  return {
    vin: required('vin'),
    stateDir: required('state-dir'),
    hardwareId: values['hardware-id'] ?? 'tcu-v2',
    ...(values.model === undefined ? {} : { model: values.model }),
    installedVersion: values['installed-version'] ?? '1.0.0',
    trustedKeys: await readTrustedKeys(values['trusted-key']),
    mqtt: {
      url: required('mqtt'),
      protocolVersion: protocolVersion(values.protocol),
      ...(Object.keys(tls).length > 0 ? { tls } : {}),
      ...(values.username === undefined ? {} : { username: values.username }),
      ...(values.password === undefined ? {} : { password: values.password }),
    },
    topics: {
      ...(values['topic-prefix'] === undefined ? {} : { prefix: values['topic-prefix'] }),
      vinMode: values['simulation-vins'] ? 'simulation' : 'strict',
    },
    download: {
      ...(values['artifact-ca'] === undefined ? {} : { ca: await readFile(values['artifact-ca'], 'utf8') }),
      allowHttp: values['allow-http'] ?? false,
      ...(values['download-bps'] === undefined ? {} : { bytesPerSecond: positive(values['download-bps']) }),
    },
    ...(values.conditions === undefined ? {} : { vehicle: conditionsFrom(values.conditions, logger) }),
    ...(values['precondition-wait-ms'] === undefined
      ? {}
      : { machine: { preconditionWaitMs: whole(values['precondition-wait-ms'], '--precondition-wait-ms') } }),
    logger,
  };
}
