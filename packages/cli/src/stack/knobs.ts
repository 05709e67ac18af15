// Failure knobs for the simulated fleet and the outcome they predict. Which vehicles fail is decided from a hash of
// the VIN (not Math.random), so a knob of 10 % over 50 vehicles fails exactly round(5) known vehicles and the demo
// can check the campaign's final counts against the prediction, run after run.
import { createHash } from 'node:crypto';
import type { ExecutionStatus } from '@otalink/ota';

export interface FailureKnobs {
  /** Share of vehicles whose installation fails (the agent reports FAILED), 0..100. */
  installFailPercent: number;
  /** Share of vehicles whose new version fails its health check after the restart (ROLLED_BACK), 0..100. */
  rollbackPercent: number;
}

export const NO_FAILURES: FailureKnobs = { installFailPercent: 0, rollbackPercent: 0 };

export type VehicleFate = 'succeed' | 'install-fail' | 'rollback';

/** Each VIN's fate: VINs ranked by hash, the first share fail to install, the next share roll back. */
export function assignFates(vins: readonly string[], knobs: FailureKnobs): Map<string, VehicleFate> {
  const installFailures = Math.round((vins.length * knobs.installFailPercent) / 100);
  const rollbacks = Math.min(vins.length - installFailures, Math.round((vins.length * knobs.rollbackPercent) / 100));
  const ranked = [...vins].sort((a, b) => rank(a).localeCompare(rank(b)) || a.localeCompare(b));
  const fates = new Map<string, VehicleFate>();
  ranked.forEach((vin, i) => {
    fates.set(vin, i < installFailures ? 'install-fail' : i < installFailures + rollbacks ? 'rollback' : 'succeed');
  });
  return fates;
}

function rank(vin: string): string {
  return createHash('sha256').update(`otalink-demo-fate:${vin}`).digest('hex');
}

const STATUS_OF_FATE: Record<VehicleFate, ExecutionStatus> = {
  succeed: 'SUCCEEDED',
  'install-fail': 'FAILED',
  rollback: 'ROLLED_BACK',
};

/** Final execution statuses the knobs predict for a campaign over `vins` with no retries. */
export function predictOutcome(fates: ReadonlyMap<string, VehicleFate>): Partial<Record<ExecutionStatus, number>> {
  const predicted: Partial<Record<ExecutionStatus, number>> = {};
  for (const fate of fates.values()) {
    const status = STATUS_OF_FATE[fate];
    predicted[status] = (predicted[status] ?? 0) + 1;
  }
  return predicted;
}

export function checkKnobs(knobs: FailureKnobs): string | undefined {
  for (const [name, value] of Object.entries(knobs)) {
    if (!Number.isFinite(value) || value < 0 || value > 100) return `${name}: expected 0..100, got ${value}`;
  }
  if (knobs.installFailPercent + knobs.rollbackPercent > 100) return 'the failure shares add up to more than 100 %';
  return undefined;
}
