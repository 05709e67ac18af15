// Which simulated vehicle gets which fault, decided by the seed alone, so a demo can say in advance how the
// campaign ends for every VIN (planFleet) and the simulator then plays exactly that.

export interface FleetKnobs {
  /** Share of vehicles whose link drops for `offlineDurationMs` once the download has begun (they still succeed). */
  offlineMidDownloadShare?: number;
  offlineDurationMs?: number;
  /** Share whose new version fails its health check after activation: ROLLED_BACK. */
  installFailShare?: number;
  /** Share that is not parked and at 10% battery: REJECTED when the job asks for parked or more battery. */
  preconditionRefuseShare?: number;
  /** Share that comes online only `lateJoinDelayMs` after the fleet started (they catch up by sync). */
  lateJoinShare?: number;
  lateJoinDelayMs?: number;
  /** Throttle every vehicle's download (slow cellular links); default unlimited. */
  downloadBytesPerSecond?: number;
}

export interface VehiclePlan {
  index: number;
  vin: string;
  model: string;
  offlineMidDownload: boolean;
  installFail: boolean;
  preconditionRefuse: boolean;
  lateJoin: boolean;
  /** How an update whose job requires `parked: true` ends on this vehicle. */
  expected: 'SUCCEEDED' | 'ROLLED_BACK' | 'REJECTED';
}

export interface PlanOptions {
  vehicles: number;
  /** The first vehicle's number (default 0): several processes can each simulate a disjoint range of VINs. */
  firstIndex?: number;
  vinPrefix?: string;
  models?: string[];
  knobs?: FleetKnobs;
  seed?: number;
}

/** mulberry32: small, fast, and the same sequence everywhere for a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function vinFor(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(6, '0')}`;
}

/** The fate of every vehicle; the same options always give the same plan. */
export function planFleet(options: PlanOptions): VehiclePlan[] {
  const random = seededRandom(options.seed ?? 1);
  const knobs = options.knobs ?? {};
  const models = options.models ?? ['ID.4'];
  const prefix = options.vinPrefix ?? 'SIM-';
  const plans: VehiclePlan[] = [];
  const first = options.firstIndex ?? 0;
  // Skip the draws of the vehicles before the range, so a VIN's fate does not depend on how the fleet is split.
  for (let skipped = 0; skipped < first * 4; skipped++) random();
  for (let index = first; index < first + options.vehicles; index++) {
    // Four draws per vehicle, always, so changing one share never reshuffles the others.
    const preconditionRefuse = random() < (knobs.preconditionRefuseShare ?? 0);
    const installFail = random() < (knobs.installFailShare ?? 0);
    const offlineMidDownload = random() < (knobs.offlineMidDownloadShare ?? 0);
    const lateJoin = random() < (knobs.lateJoinShare ?? 0);
    plans.push({
      index,
      vin: vinFor(prefix, index),
      model: models[index % models.length] as string,
      offlineMidDownload,
      installFail,
      preconditionRefuse,
      lateJoin,
      expected: preconditionRefuse ? 'REJECTED' : installFail ? 'ROLLED_BACK' : 'SUCCEEDED',
    });
  }
  return plans;
}
