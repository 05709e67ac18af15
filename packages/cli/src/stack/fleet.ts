// The simulated fleet of `otalink up`: real TCU agents (@otalink/agent, restarted in-process after an activation)
// for SIM-000001.., each with its own client certificate (CN = VIN) over mutual TLS to the stack's broker, trusting
// the backend's manifest signing keys and the dev CA for downloads. Registered through the backend's service first,
// so they are listed with model and hardware even before their presence arrives.
import { join } from 'node:path';
import { type AgentOptions, type AgentRunner, runAgent } from '@otalink/agent';
import { isBackendError } from '@otalink/backend';
import type { TrustedKey } from '@otalink/ota';
import { loadOrIssueVehicleCerts } from '@otalink/pki';
import { assignFates, type FailureKnobs, NO_FAILURES, type VehicleFate } from './knobs.js';
import type { FleetContext, RunningFleet } from './stack.js';

export const SIM_MODEL = 'sim-model-1';
export const SIM_HARDWARE_ID = 'sim-tcu-1';
export const SIM_FACTORY_VERSION = '1.0.0';

export interface SimulatedFleetOptions {
  vehicles: number;
  /** First VIN number; default 1 (SIM-000001). */
  first?: number;
  /** Which vehicles fail, and how (default: none). */
  knobs?: FailureKnobs;
}

export interface AgentFleet extends RunningFleet {
  readonly vins: readonly string[];
  /** What each vehicle was told to do with an update. */
  readonly fates: ReadonlyMap<string, VehicleFate>;
  readonly runners: readonly AgentRunner[];
  /** MQTT messages sent and received by all agents so far. */
  messages(): { in: number; out: number };
}

export function simVin(n: number): string {
  return `SIM-${String(n).padStart(6, '0')}`;
}

/** The agent hooks that make a vehicle fail the way its fate says; a succeeding vehicle keeps the defaults. */
function failureHooks(fate: VehicleFate): AgentOptions['hooks'] {
  if (fate === 'install-fail') {
    return {
      install() {
        throw new Error('simulated installation failure (demo knob)');
      },
    };
  }
  if (fate === 'rollback')
    return { healthCheck: () => ({ ok: false, text: 'simulated failed health check (demo knob)' }) };
  return undefined;
}

/** Agents start this many at a time, so TLS handshakes do not all hit the broker in the same tick. */
const START_CONCURRENCY = 25;

export function simulatedFleet(options: SimulatedFleetOptions): (context: FleetContext) => Promise<AgentFleet> {
  return async (context) => {
    const first = options.first ?? 1;
    const vins = Array.from({ length: options.vehicles }, (_, i) => simVin(first + i));
    const fates = assignFates(vins, options.knobs ?? NO_FAILURES);
    const certs = await loadOrIssueVehicleCerts(context.pki, vins);
    const trustedKeys: TrustedKey[] = (await context.backend.service.listSigningKeys()).map((key) => ({
      keyId: key.keyId,
      publicKey: new Uint8Array(Buffer.from(key.publicKey, 'base64')),
    }));
    // Registered once; on a later `otalink up` the registration (and the version a campaign installed) is kept.
    const service = context.backend.service;
    for (const vin of vins) {
      const known = await service.getVehicle(vin).then(
        () => true,
        (err: unknown) => {
          if (isBackendError(err) && err.code === 'OTA_ERR_NOT_FOUND') return false;
          throw err;
        },
      );
      if (!known) {
        await service.registerVehicle({
          vin,
          model: SIM_MODEL,
          hardwareId: SIM_HARDWARE_ID,
          installedVersion: SIM_FACTORY_VERSION,
        });
      }
    }
    const logger = context.logger.child({ component: 'fleet' });
    const runners: AgentRunner[] = [];
    try {
      for (let i = 0; i < vins.length; i += START_CONCURRENCY) {
        const started = await Promise.all(
          vins.slice(i, i + START_CONCURRENCY).map((vin, j) => {
            const cert = certs[i + j];
            if (cert === undefined) throw new Error(`no certificate for ${vin}`);
            return runAgent({
              vin,
              stateDir: join(context.home, 'fleet', vin),
              hardwareId: SIM_HARDWARE_ID,
              model: SIM_MODEL,
              installedVersion: SIM_FACTORY_VERSION,
              trustedKeys,
              mqtt: {
                url: context.mqttUrl,
                tls: { ca: context.pki.ca.certPem, cert: cert.certPem, key: cert.keyPem, servername: 'localhost' },
              },
              download: { ca: context.pki.ca.certPem },
              topics: { vinMode: 'simulation' },
              // A simulated vehicle's journal need not survive a power cut; fsync per step would dominate.
              fsync: false,
              logger: logger.child({ vin }),
              hooks: failureHooks(fates.get(vin) ?? 'succeed'),
            });
          }),
        );
        runners.push(...started);
      }
    } catch (error) {
      await Promise.all(runners.map((r) => r.close().catch(() => undefined)));
      throw error;
    }
    return {
      vins,
      fates,
      runners,
      messages() {
        let received = 0;
        let sent = 0;
        for (const runner of runners) {
          received += runner.agent.counters.messagesIn;
          sent += runner.agent.counters.messagesOut;
        }
        return { in: received, out: sent };
      },
      async close() {
        await Promise.all(runners.map((r) => r.close().catch(() => undefined)));
      },
    };
  };
}
