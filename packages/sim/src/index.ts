// @otalink/sim: a fleet of TCU agents in one process over the real broker, with seeded failure knobs.
export {
  createFleet,
  type Fleet,
  type FleetCounters,
  type FleetOptions,
  removeFleetState,
} from './fleet.js';
export { type FleetKnobs, type PlanOptions, planFleet, seededRandom, type VehiclePlan, vinFor } from './plan.js';
