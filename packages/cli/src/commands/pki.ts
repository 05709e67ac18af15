// `otalink pki`: the development PKI. `init` creates (or checks and reuses) the CA, the TLS server certificate and the
// backend's client certificate; `vehicle` issues per-VIN client certificates signed by that CA.
import { parseArgs } from 'node:util';
import { isValidVin } from '@otalink/ota';
import { loadOrCreateDevPki, loadOrIssueVehicleCerts, PkiError } from '@otalink/pki';
import { defaultPkiDir } from '../stack/home.js';
import type { Command } from './command.js';

const USAGE = `Usage:
  otalink pki init [--dir DIR]                      create or reuse the CA, server and backend certificates
  otalink pki vehicle [--dir DIR] --vin VIN [VIN...] issue (or reuse) vehicle certificates, CN = VIN

  --dir DIR   the PKI directory (default $OTALINK_HOME/pki, else ./.otalink/pki)
  -h, --help  this help

Private keys are written with mode 0600. VINs are ISO 3779 VINs or simulator ids such as SIM-000042.
`;

function fail(message: string): number {
  process.stderr.write(`otalink pki: ${message}\n\n${USAGE}`);
  return 2;
}

export const pki: Command = {
  async run(args) {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(args);
    } catch (err) {
      return fail((err as Error).message);
    }
    const { values, positionals } = parsed;
    const [sub, ...rest] = positionals;
    if (values.help === true || sub === undefined) {
      process.stdout.write(USAGE);
      return sub === undefined && values.help !== true ? 2 : 0;
    }
    const dir = values.dir ?? defaultPkiDir();
    try {
      if (sub === 'init') {
        if (rest.length > 0) return fail(`unexpected argument ${rest[0]}`);
        const dev = await loadOrCreateDevPki(dir);
        const state = dev.written.length === 0 ? 'reused' : `wrote ${dev.written.length} file(s)`;
        process.stdout.write(
          [
            `dev PKI in ${dev.paths.dir} (${state})`,
            `  CA                       ${dev.paths.ca.cert}  (valid until ${dev.ca.notAfter.toISOString()})`,
            `  server (localhost, 127.0.0.1, ::1)  ${dev.paths.server.cert}  ${dev.paths.server.key}`,
            `  backend client (CN=${dev.backendClient.commonName})  ${dev.paths.backendClient.cert}  ${dev.paths.backendClient.key}`,
            '',
          ].join('\n'),
        );
        return 0;
      }
      if (sub === 'vehicle') {
        const vins = [...(values.vin ?? []), ...rest];
        if (vins.length === 0) return fail('vehicle: give at least one --vin VIN');
        const bad = vins.find((vin) => !isValidVin(vin, 'simulation'));
        if (bad !== undefined) return fail(`vehicle: not a VIN or simulator id: ${JSON.stringify(bad)}`);
        const dev = await loadOrCreateDevPki(dir);
        const issued = await loadOrIssueVehicleCerts(dev, vins);
        for (const cert of issued) {
          process.stdout.write(`${cert.commonName}  ${cert.paths.cert}  ${cert.paths.key}\n`);
        }
        return 0;
      }
      return fail(`unknown sub-command "${sub}"`);
    } catch (err) {
      if (err instanceof PkiError) {
        process.stderr.write(`otalink pki: ${err.message} (${err.code})\n`);
        return 1;
      }
      throw err;
    }
  },
};

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      vin: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
