// `otalink demo`: one campaign from start to finish on a throw-away embedded stack (temp dir, free ports), with
// simulated vehicles failing as the knobs say, then a summary table. Exit code 0 only when the campaign completed
// and every vehicle ended where the knobs predicted.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { CampaignView } from '@otalink/backend';
import { EXECUTION_STATUSES, type ExecutionStatus } from '@otalink/ota';
import { pino } from 'pino';
import { type AgentFleet, simulatedFleet } from '../stack/fleet.js';
import { checkKnobs, type FailureKnobs, predictOutcome } from '../stack/knobs.js';
import { waitForOnline } from '../stack/online.js';
import { type RunningStack, startStack } from '../stack/stack.js';
import type { Command } from './command.js';
import { parsePercent } from './usage.js';

const USAGE = `Usage: otalink demo [options]

Runs one update campaign to the end on a temporary embedded stack (broker, backend, simulated vehicles over mutual
TLS) and prints vehicles by final state, the time it took and the MQTT messages exchanged.

  --vehicles N        simulated vehicles (default 50)
  --install-fail P    percent of vehicles whose installation fails (default 0)
  --rollback P        percent whose new version fails its health check and rolls back (default 0)
  --timeout S         give up after S seconds (default 300)
  --log-level L       logs on stderr (default warn)
  -h, --help          this help

Exit code 0 when the campaign completed and the final states match what the knobs predict, 1 otherwise.
`;

const TERMINAL_CAMPAIGN_STATES = new Set(['COMPLETED', 'CANCELED', 'ABORTED']);

function table(campaign: CampaignView, predicted: Partial<Record<ExecutionStatus, number>>): string[] {
  const rows = EXECUTION_STATUSES.filter((s) => campaign.counts[s] > 0 || (predicted[s] ?? 0) > 0);
  const lines = [`  ${'final state'.padEnd(14)}${'vehicles'.padStart(9)}${'predicted'.padStart(11)}`];
  for (const status of rows) {
    const actual = campaign.counts[status];
    const expected = predicted[status] ?? 0;
    const mark = actual === expected ? '' : '   <- differs';
    lines.push(`  ${status.padEnd(14)}${String(actual).padStart(9)}${String(expected).padStart(11)}${mark}`);
  }
  return lines;
}

async function runCampaign(
  stack: RunningStack,
  fleet: AgentFleet,
  timeoutMs: number,
  out: (line: string) => void,
): Promise<{ campaign: CampaignView; elapsedMs: number; timedOut: boolean }> {
  const artifact = stack.sampleArtifact;
  if (artifact === undefined) throw new Error('the stack has no sample artifact');
  const service = stack.backend.service;
  const created = await service.createCampaign({
    name: `demo ${new Date().toISOString()}`,
    artifact: artifact.sha256,
    target: { vins: [...fleet.vins] },
  });
  const started = Date.now();
  let campaign = await service.startCampaign(created.id);
  out(`campaign ${campaign.id} started: ${artifact.name} ${artifact.version} to ${fleet.vins.length} vehicles`);
  let lastLine = '';
  let lastPrinted = 0;
  const deadline = started + timeoutMs;
  while (!TERMINAL_CAMPAIGN_STATES.has(campaign.state) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    campaign = await service.getCampaign(created.id);
    const line = EXECUTION_STATUSES.filter((s) => campaign.counts[s] > 0)
      .map((s) => `${s} ${campaign.counts[s]}`)
      .join(', ');
    if (line !== lastLine && Date.now() - lastPrinted >= 1000) {
      out(`  ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${campaign.state}: ${line}`);
      lastLine = line;
      lastPrinted = Date.now();
    }
  }
  return { campaign, elapsedMs: Date.now() - started, timedOut: !TERMINAL_CAMPAIGN_STATES.has(campaign.state) };
}

export const demo: Command = {
  async run(args) {
    let vehicles: number;
    let knobs: FailureKnobs;
    let timeoutMs: number;
    let logLevel: string;
    try {
      const { values } = parseArgs({
        args,
        options: {
          vehicles: { type: 'string' },
          'install-fail': { type: 'string' },
          rollback: { type: 'string' },
          timeout: { type: 'string' },
          'log-level': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
      if (values.help === true) {
        process.stdout.write(USAGE);
        return 0;
      }
      vehicles = values.vehicles === undefined ? 50 : Number(values.vehicles);
      if (!Number.isInteger(vehicles) || vehicles < 1 || vehicles > 100_000) {
        throw new Error(`--vehicles: expected 1..100000, got "${values.vehicles}"`);
      }
      knobs = {
        installFailPercent: parsePercent(values['install-fail'] ?? '0', '--install-fail'),
        rollbackPercent: parsePercent(values.rollback ?? '0', '--rollback'),
      };
      const problem = checkKnobs(knobs);
      if (problem !== undefined) throw new Error(problem);
      const seconds = values.timeout === undefined ? 300 : Number(values.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new Error(`--timeout: expected seconds, got "${values.timeout}"`);
      timeoutMs = seconds * 1000;
      logLevel = values['log-level'] ?? 'warn';
    } catch (err) {
      process.stderr.write(`otalink demo: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    const out = (line: string) => process.stdout.write(`${line}\n`);
    const logger = pino({ name: 'otalink-demo', level: logLevel }, pino.destination(2));
    const home = await mkdtemp(join(tmpdir(), 'otalink-demo-'));
    let stack: RunningStack | undefined;
    try {
      out(
        `otalink demo: ${vehicles} vehicles, install failures ${knobs.installFailPercent} %, rollbacks ${knobs.rollbackPercent} %`,
      );
      const setupStarted = Date.now();
      stack = await startStack({
        home,
        httpPort: 0,
        downloadPort: 0,
        dashboardPort: false,
        mqttPort: 0,
        logger,
        sysIntervalSeconds: 0,
        fleet: simulatedFleet({ vehicles, knobs }),
      });
      const fleet = stack.fleet as AgentFleet;
      const online = await waitForOnline(stack.backend, vehicles, 120_000);
      out(
        `stack up in ${((Date.now() - setupStarted) / 1000).toFixed(1)} s, ${online.online} of ${vehicles} vehicles online`,
      );
      const before = stack.broker.broker.stats;
      const inBefore = before.messagesIn.reduce((a, b) => a + b, 0);
      const outBefore = before.messagesOut.reduce((a, b) => a + b, 0);

      const { campaign, elapsedMs, timedOut } = await runCampaign(stack, fleet, timeoutMs, out);
      const stats = stack.broker.broker.stats;
      const messagesIn = stats.messagesIn.reduce((a, b) => a + b, 0) - inBefore;
      const messagesOut = stats.messagesOut.reduce((a, b) => a + b, 0) - outBefore;
      const predicted = predictOutcome(fleet.fates);
      const matches = EXECUTION_STATUSES.every((s) => campaign.counts[s] === (predicted[s] ?? 0));
      const ok = campaign.state === 'COMPLETED' && matches;
      out('');
      out(`campaign ${campaign.id}: ${campaign.state}${timedOut ? ' (timed out waiting)' : ''}`);
      for (const line of table(campaign, predicted)) out(line);
      out('');
      out(`  time to finish     ${(elapsedMs / 1000).toFixed(1)} s`);
      out(
        `  MQTT messages      ${messagesIn + messagesOut} (${messagesIn} published to the broker, ${messagesOut} delivered)`,
      );
      out('');
      out(ok ? 'outcome: as predicted' : 'outcome: NOT as predicted');
      return ok ? 0 : 1;
    } catch (err) {
      process.stderr.write(`otalink demo: ${(err as Error).message}\n`);
      logger.error({ err }, 'demo failed');
      return 1;
    } finally {
      await stack?.close();
      await rm(home, { recursive: true, force: true });
    }
  },
};
