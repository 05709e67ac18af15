// `otalink up` (npm start): the whole OTA stack in one process with nothing to configure. Dev PKI on first run,
// our broker (vehicles over mutual TLS), the backend with its HTTPS API and dashboard, a simulated fleet online and
// a sample artifact uploaded; Ctrl-C or SIGTERM stops everything and exits 0.
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_IDENTITY } from '@otalink/pki';
import { pino } from 'pino';
import { fleetTooLarge } from '../stack/file-budget.js';
import { type AgentFleet, simulatedFleet } from '../stack/fleet.js';
import { otalinkHome } from '../stack/home.js';
import { checkKnobs, type FailureKnobs } from '../stack/knobs.js';
import { waitForOnline } from '../stack/online.js';
import { ensureSampleCampaign, SAMPLE_ROLLOUT, watchCampaign } from '../stack/sample-campaign.js';
import {
  DEFAULT_DASHBOARD_PORT,
  DEFAULT_DOWNLOAD_PORT,
  DEFAULT_HTTP_PORT,
  DEFAULT_MQTT_TLS_PORT,
  type RunningStack,
  startStack,
} from '../stack/stack.js';
import { DEFAULT_API } from './api-client.js';
import type { Command } from './command.js';
import { parsePercent } from './usage.js';

const USAGE = `Usage: otalink up [options]

Starts the broker, the backend (HTTPS API + dashboard) and a simulated fleet, all on this machine.
State is kept in $OTALINK_HOME, else ./.otalink (dev PKI, SQLite database, artifacts, signing keys).

  --vehicles N      simulated vehicles (default 100; 0 for none)
  --no-campaign     do not start the sample campaign (started once per data directory otherwise)
  --install-fail P  percent of simulated vehicles whose installation fails (default 0)
  --rollback P      percent whose new version fails its health check and rolls back (default 0)
  --http-port N     HTTPS port: API, dashboard (default ${DEFAULT_HTTP_PORT}; a free port if taken; 0 = any)
  --download-port N  HTTPS port of artifact downloads, served apart from the API (default ${DEFAULT_DOWNLOAD_PORT}; a free
                    port if taken; 0 = any; "off": downloads from the API's port)
  --dashboard-port N  plain HTTP on 127.0.0.1 for a local browser (default ${DEFAULT_DASHBOARD_PORT}; a free port if
                    taken; 0 = any; "off" for none)
  --mqtt-port N     MQTT over mutual TLS port (default ${DEFAULT_MQTT_TLS_PORT}; a free port if taken; 0 = any)
  --log-level L     fatal|error|warn|info|debug|trace|silent (default warn; logs go to stderr)
  -h, --help        this help
`;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
/** How long `up` waits for the fleet to show as online in the API before printing what it has. */
const ONLINE_WAIT_MS = 60_000;
/** After a clean shutdown, a handle someone forgot must not keep the process alive forever. */
const EXIT_GRACE_MS = 5_000;

function port(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 65_535)
    throw new Error(`${name}: expected 0..65535, got "${text}"`);
  return value;
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') ? rel : path;
}

function summary(
  stack: RunningStack,
  home: string,
  fleet: { online: number; expected: number },
  campaign: { id: string; line: string } | undefined,
): string {
  const { urls, pki } = stack;
  const vehicleCerts = `${shown(pki.paths.vehiclesDir)}/<VIN>.pem, <VIN>-key.pem`;
  const lines = [
    `otalink is up (data in ${shown(home)})`,
    '',
    urls.dashboard === urls.dashboardHttps
      ? `  Dashboard  ${urls.dashboard}`
      : `  Dashboard  ${urls.dashboard}   (loopback only; over HTTPS: ${urls.dashboardHttps})`,
    `  API        ${urls.api}   (OpenAPI: ${urls.dashboardHttps}openapi.json)`,
    `  Downloads  ${urls.downloads}/artifacts/<sha256>   (signed URLs in the manifests)`,
    stack.adminToken === undefined
      ? '  API token  none found: the admin-token file was removed; `npx otalink token create` with an admin token'
      : `  API token  ${stack.adminToken.token}   (admin; in ${shown(stack.adminToken.file)}, which npx otalink reads by itself; log in to the dashboard with it)`,
    `  CA         ${shown(pki.paths.ca.cert)}   (curl --cacert it, or trust it in the browser)`,
    `  MQTT       ${urls.mqttVehicles}   vehicles: mutual TLS, client certificate CN = VIN (${vehicleCerts})`,
    `             ${urls.mqttBackend}   backend, loopback only: user ${BACKEND_IDENTITY}, password ${stack.backendPassword}`,
    `             or mutual TLS as the backend: ${shown(pki.paths.backendClient.cert)}, ${shown(pki.paths.backendClient.key)}`,
    `  Fleet      ${fleet.online} of ${fleet.expected} simulated vehicles online`,
  ];
  if (stack.sampleArtifact !== undefined) {
    const a = stack.sampleArtifact;
    lines.push(`  Artifact   ${a.name} ${a.version} for ${a.hardwareIds.join(', ')}: sha256 ${a.sha256}`);
  }
  if (campaign !== undefined) lines.push(`  Campaign   ${campaign.line}`);
  // The CLI finds this stack's API token and dev CA by itself (loopback API, same home): name only what differs.
  const apiUrl = urls.dashboardHttps.replace(/\/$/, '');
  const homeVar = process.env.OTALINK_HOME;
  const npx = homeVar !== undefined && homeVar !== '' ? `OTALINK_HOME=${shown(home)} npx` : 'npx';
  const api = apiUrl === DEFAULT_API ? '' : ` --api ${apiUrl}`;
  lines.push(
    '',
    'Try:',
    stack.adminToken === undefined
      ? `  curl --cacert ${shown(pki.paths.ca.cert)} ${urls.api}/vehicles?limit=5`
      : `  curl --cacert ${shown(pki.paths.ca.cert)} -H "Authorization: Bearer $(cat ${shown(stack.adminToken.file)})" ${urls.api}/vehicles?limit=5`,
    ...(campaign !== undefined
      ? [`  ${npx} otalink campaign watch${api}      live progress of the newest campaign`]
      : stack.sampleArtifact === undefined
        ? []
        : [
            `  ${npx} otalink campaign create${api} \\`,
            `      --name first --artifact ${stack.sampleArtifact.sha256} --hardware-id ${stack.sampleArtifact.hardwareIds[0]} --start`,
          ]),
    `  npx otalink demo --vehicles 50       a whole campaign on a separate stack, with a summary`,
    '',
    'Ctrl-C stops everything.',
    '',
  );
  return lines.join('\n');
}

export const up: Command = {
  async run(args) {
    let values: {
      vehicles?: string;
      'http-port'?: string;
      'download-port'?: string;
      'dashboard-port'?: string;
      'mqtt-port'?: string;
      'log-level'?: string;
      'no-campaign'?: boolean;
      'install-fail'?: string;
      rollback?: string;
      help?: boolean;
    };
    let vehicles: number;
    let knobs: FailureKnobs;
    let httpPort: number;
    let downloadPort: number | false;
    let dashboardPort: number | false;
    let mqttPort: number;
    try {
      ({ values } = parseArgs({
        args,
        options: {
          vehicles: { type: 'string' },
          'http-port': { type: 'string' },
          'download-port': { type: 'string' },
          'dashboard-port': { type: 'string' },
          'mqtt-port': { type: 'string' },
          'log-level': { type: 'string' },
          'no-campaign': { type: 'boolean' },
          'install-fail': { type: 'string' },
          rollback: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }));
      knobs = {
        installFailPercent: parsePercent(values['install-fail'] ?? '0', '--install-fail'),
        rollbackPercent: parsePercent(values.rollback ?? '0', '--rollback'),
      };
      const problem = checkKnobs(knobs);
      if (problem !== undefined) throw new Error(problem);
      vehicles = values.vehicles === undefined ? 100 : Number(values.vehicles);
      if (!Number.isInteger(vehicles) || vehicles < 0 || vehicles > 100_000) {
        throw new Error(`--vehicles: expected 0..100000, got "${values.vehicles}"`);
      }
      const tooLarge = fleetTooLarge(vehicles);
      if (tooLarge !== undefined) throw new Error(tooLarge);
      httpPort = port(values['http-port'], DEFAULT_HTTP_PORT, '--http-port');
      downloadPort =
        values['download-port'] === 'off'
          ? false
          : port(values['download-port'], DEFAULT_DOWNLOAD_PORT, '--download-port');
      dashboardPort =
        values['dashboard-port'] === 'off'
          ? false
          : port(values['dashboard-port'], DEFAULT_DASHBOARD_PORT, '--dashboard-port');
      mqttPort = port(values['mqtt-port'], DEFAULT_MQTT_TLS_PORT, '--mqtt-port');
      if (values['log-level'] !== undefined && !LOG_LEVELS.has(values['log-level'])) {
        throw new Error(`--log-level: expected one of ${[...LOG_LEVELS].join(', ')}`);
      }
    } catch (err) {
      process.stderr.write(`otalink up: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (values.help === true) {
      process.stdout.write(USAGE);
      return 0;
    }
    const home = otalinkHome();
    const logger = pino({ name: 'otalink', level: values['log-level'] ?? 'warn' }, pino.destination(2));

    // Signals that come during start-up stop it as soon as it is up.
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        // A second Ctrl-C while shutting down means "now".
        process.once('SIGINT', () => process.exit(130));
        resolve(signal);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });

    process.stdout.write(`otalink up: starting (data in ${shown(home)})...\n`);
    let stack: RunningStack;
    let agents: AgentFleet | undefined;
    const startFleet = simulatedFleet({ vehicles, knobs });
    try {
      stack = await startStack({
        home,
        httpPort,
        downloadPort,
        dashboardPort,
        mqttPort,
        logger,
        ...(vehicles > 0
          ? {
              fleet: async (context) => {
                agents = await startFleet(context);
                return agents;
              },
            }
          : {}),
      });
    } catch (err) {
      process.stderr.write(`otalink up: could not start: ${(err as Error).message}\n`);
      logger.error({ err }, 'start-up failed');
      return 1;
    }
    const online = vehicles === 0 ? { online: 0 } : await waitForOnline(stack.backend, vehicles, ONLINE_WAIT_MS);

    // The sample campaign: created before the summary so that the summary can name it.
    let campaign: { id: string; line: string } | undefined;
    const artifact = stack.sampleArtifact;
    if (values['no-campaign'] !== true && agents !== undefined && artifact !== undefined) {
      try {
        const sample = await ensureSampleCampaign(stack.backend, artifact, agents.vins);
        const r = SAMPLE_ROLLOUT;
        const pace = `${r.basePerMinute}/min, doubling every ${r.growAfterSuccesses} successes, at most ${r.maxPerMinute}/min`;
        const line = sample.created
          ? `${sample.campaign.id}: ${artifact.name} ${artifact.version} to ${agents.vins.length} vehicles, ${pace} (watch it on the dashboard)`
          : `${sample.campaign.id}: from an earlier run, ${sample.campaign.state} (--no-campaign skips it)`;
        campaign = { id: sample.campaign.id, line };
      } catch (err) {
        process.stderr.write(`otalink up: could not start the sample campaign: ${(err as Error).message}\n`);
        logger.error({ err }, 'sample campaign failed');
      }
    }
    process.stdout.write(summary(stack, home, { online: online.online, expected: vehicles }, campaign));
    const stopWatching =
      campaign === undefined
        ? () => {}
        : watchCampaign(
            stack.backend,
            campaign.id,
            (line) => process.stdout.write(`campaign ${campaign?.id}: ${line}\n`),
            logger,
          );

    const signal = await stopped;
    stopWatching();
    process.stdout.write(`otalink up: ${signal}, shutting down...\n`);
    await stack.close();
    process.stdout.write('otalink up: stopped\n');
    setTimeout(() => {
      process.stderr.write('otalink up: something was still open after shutdown; exiting anyway\n');
      process.exit(0);
    }, EXIT_GRACE_MS).unref();
    return 0;
  },
};
