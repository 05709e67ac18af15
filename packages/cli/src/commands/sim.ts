// `otalink sim`: a fleet of simulated vehicles against a broker, printing progress until interrupted. Per-vehicle
// identities: `--cert-dir DIR` holds each VIN's certificate and key as `otalink pki vehicle` writes them
// (DIR/<VIN>.pem, DIR/<VIN>-key.pem) or as DIR/<VIN>.crt, DIR/<VIN>.key; or `--username`/`--password`, where `%v`
// becomes the VIN.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createFleet, type FleetKnobs, planFleet, type VehiclePlan } from '@otalink/sim';
import { pino } from 'pino';
import { protocolVersion, readTrustedKeys } from './agent.js';
import type { Command } from './command.js';

const USAGE = `Usage: otalink sim --vehicles N --mqtt URL --trusted-key ID=FILE [options]

  --vehicles <n>                      how many vehicles
  --mqtt <url>                        broker URL
  --trusted-key <id=file>             Ed25519 public key (PEM); repeat for rotation
  --ca <file>                         CA for the broker's certificate
  --cert-dir <dir>                    per-VIN client certificates: <dir>/<VIN>.pem and <dir>/<VIN>-key.pem
                                      (otalink pki vehicle writes them to <pki>/vehicles), or <VIN>.crt, <VIN>.key
  --username <u> --password <p>       shared credentials; %v is replaced by the VIN
  --artifact-ca <file>                CA for the artifact server
  --allow-http                        accept http:// artifact URLs
  --protocol <5|311>                  MQTT version (default 5)
  --vin-prefix <p>                    default SIM-
  --first <n>                         the first vehicle's number (default 0: SIM-000000); a VIN's knobs do not
                                      depend on it, so several processes can split a fleet
  --model <m>                         repeat for several models (default ID.4)
  --hardware-id <id>                  default tcu-v2
  --installed-version <v>             default 2.0.3
  --state-dir <dir>                   default a directory under the system temp dir
  --seed <n>                          knob assignment (default 1)
  --concurrency <n>                   connects in flight during the ramp (default 100)
  --offline-mid-download-share <0..1> --offline-ms <ms>
  --install-fail-share <0..1>
  --precondition-refuse-share <0..1>
  --late-join-share <0..1> --late-join-delay-ms <ms>
  --download-bps <bytes/s>
  --plan                              print each VIN's model, predicted final state and knobs, and exit

Every 2 s a progress line: vehicles started and connected, MQTT messages, links cut mid-download and vehicles by
the state of their latest report. SIGINT or SIGTERM prints a last line and exits 0.
`;

export const sim: Command = {
  async run(args) {
    let values: ReturnType<typeof parse>['values'];
    try {
      values = parse(args).values;
    } catch (error) {
      process.stderr.write(`otalink sim: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    try {
      const vehicles = count(values.vehicles, '--vehicles');
      const knobs: FleetKnobs = {
        ...share(values['offline-mid-download-share'], 'offlineMidDownloadShare'),
        ...share(values['install-fail-share'], 'installFailShare'),
        ...share(values['precondition-refuse-share'], 'preconditionRefuseShare'),
        ...share(values['late-join-share'], 'lateJoinShare'),
        ...(values['late-join-delay-ms'] === undefined
          ? {}
          : { lateJoinDelayMs: count(values['late-join-delay-ms'], '--late-join-delay-ms') }),
        ...(values['offline-ms'] === undefined
          ? {}
          : { offlineDurationMs: count(values['offline-ms'], '--offline-ms') }),
        ...(values['download-bps'] === undefined
          ? {}
          : { downloadBytesPerSecond: count(values['download-bps'], '--download-bps') }),
      };
      const seed = values.seed === undefined ? 1 : count(values.seed, '--seed');
      const firstIndex = values.first === undefined ? 0 : count(values.first, '--first');
      const vinPrefix = values['vin-prefix'] ?? 'SIM-';
      const models = values.model ?? ['ID.4'];
      if (values.plan) {
        for (const v of planFleet({ vehicles, firstIndex, vinPrefix, models, knobs, seed })) {
          process.stdout.write(`${v.vin}\t${v.model}\t${v.expected}\t${planKnobs(v)}\n`);
        }
        return 0;
      }
      if (values.mqtt === undefined) throw new Error('--mqtt is required');
      const ca = values.ca === undefined ? undefined : await readFile(values.ca, 'utf8');
      const certDir = values['cert-dir'];
      // Every identity is checked before the first vehicle connects: a missing file is a usage error, not N
      // vehicles that silently fail to start.
      const certFiles = new Map<string, { cert: string; key: string }>();
      if (certDir !== undefined) {
        for (const v of planFleet({ vehicles, firstIndex, vinPrefix, models, knobs, seed })) {
          certFiles.set(v.vin, vehicleCertFiles(certDir, v.vin));
        }
      }
      const fleet = await createFleet({
        vehicles,
        firstIndex,
        mqtt: { url: values.mqtt, protocolVersion: protocolVersion(values.protocol) },
        identity: (vin) => ({
          ...(ca === undefined && certDir === undefined
            ? {}
            : {
                tls: {
                  ...(ca === undefined ? {} : { ca }),
                  ...(certDir === undefined
                    ? {}
                    : {
                        cert: readFileSync(certFiles.get(vin)?.cert ?? '', 'utf8'),
                        key: readFileSync(certFiles.get(vin)?.key ?? '', 'utf8'),
                      }),
                },
              }),
          ...(values.username === undefined ? {} : { username: values.username.replaceAll('%v', vin) }),
          ...(values.password === undefined ? {} : { password: values.password.replaceAll('%v', vin) }),
        }),
        vinPrefix,
        models,
        hardwareId: values['hardware-id'] ?? 'tcu-v2',
        installedVersion: values['installed-version'] ?? '2.0.3',
        trustedKeys: await readTrustedKeys(values['trusted-key']),
        stateRoot: values['state-dir'] ?? join(tmpdir(), `otalink-sim-${process.pid}`),
        download: {
          ...(values['artifact-ca'] === undefined ? {} : { ca: await readFile(values['artifact-ca'], 'utf8') }),
          allowHttp: values['allow-http'] ?? false,
        },
        knobs,
        seed,
        ...(values.concurrency === undefined ? {} : { connectConcurrency: count(values.concurrency, '--concurrency') }),
        logger: pino({ level: 'warn' }, pino.destination(2)),
      });
      const started = Date.now();
      const print = () => {
        const c = fleet.counters;
        const states = Object.entries(c.states)
          .filter(([, n]) => n > 0)
          .map(([s, n]) => `${s}=${n}`)
          .join(' ');
        process.stdout.write(
          `[${((Date.now() - started) / 1000).toFixed(0)}s] started ${c.started}/${vehicles} connected ${c.connected} in ${c.messagesIn} out ${c.messagesOut} offline-cuts ${c.offlineCuts} ${states}\n`,
        );
      };
      const timer = setInterval(print, 2000);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      clearInterval(timer);
      print();
      await fleet.close();
      return 0;
    } catch (error) {
      process.stderr.write(`otalink sim: ${(error as Error).message}\n`);
      return 2;
    }
  },
};

function parse(args: string[]) {
  return parseArgs({
    args,
    options: {
      vehicles: { type: 'string' },
      first: { type: 'string' },
      mqtt: { type: 'string' },
      'trusted-key': { type: 'string', multiple: true },
      ca: { type: 'string' },
      'cert-dir': { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      'artifact-ca': { type: 'string' },
      'allow-http': { type: 'boolean' },
      protocol: { type: 'string' },
      'vin-prefix': { type: 'string' },
      model: { type: 'string', multiple: true },
      'hardware-id': { type: 'string' },
      'installed-version': { type: 'string' },
      'state-dir': { type: 'string' },
      seed: { type: 'string' },
      concurrency: { type: 'string' },
      'offline-mid-download-share': { type: 'string' },
      'offline-ms': { type: 'string' },
      'install-fail-share': { type: 'string' },
      'precondition-refuse-share': { type: 'string' },
      'late-join-share': { type: 'string' },
      'late-join-delay-ms': { type: 'string' },
      'download-bps': { type: 'string' },
      plan: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
}

/** The certificate and key of `vin` in `dir`: the `otalink pki vehicle` layout first, then <VIN>.crt/.key. */
function vehicleCertFiles(dir: string, vin: string): { cert: string; key: string } {
  for (const files of [
    { cert: join(dir, `${vin}.pem`), key: join(dir, `${vin}-key.pem`) },
    { cert: join(dir, `${vin}.crt`), key: join(dir, `${vin}.key`) },
  ]) {
    if (existsSync(files.cert) && existsSync(files.key)) return files;
  }
  throw new Error(
    `--cert-dir: no certificate and key for ${vin} in ${dir} (otalink pki vehicle --vin ${vin} issues them)`,
  );
}

function planKnobs(v: VehiclePlan): string {
  const knobs = [
    ...(v.preconditionRefuse ? ['precondition-refuse'] : []),
    ...(v.installFail ? ['install-fail'] : []),
    ...(v.offlineMidDownload ? ['offline-mid-download'] : []),
    ...(v.lateJoin ? ['late-join'] : []),
  ];
  return knobs.length === 0 ? '-' : knobs.join(',');
}

function count(value: string | undefined, what: string): number {
  const n = Number(value);
  if (value === undefined || !/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new Error(`${what} must be a whole number, got "${String(value)}"`);
  }
  return n;
}

function share(value: string | undefined, knob: keyof FleetKnobs): Partial<FleetKnobs> {
  if (value === undefined) return {};
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new Error(`a share is 0..1, got "${value}"`);
  return { [knob]: n };
}
