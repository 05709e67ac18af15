// @otalink/sim: a fleet of TCU agents in one process over the real broker, with seeded failure knobs.
export {
  createFleet,
  FLEET_OPEN_JOURNALS,
  type Fleet,
  type FleetCounters,
  type FleetOptions,
  fleetOpenJournals,
  removeFleetState,
} from './fleet.js';
export { type FleetKnobs, type PlanOptions, planFleet, seededRandom, type VehiclePlan, vinFor } from './plan.js';
