// Topic builders and parsers. Every variable segment (VIN, model) is validated against a closed alphabet, so a
// value can never inject `+`, `#`, `/` or U+0000 into a topic and widen a subscription or an ACL match.
import { OtaError } from './errors.js';

/**
 * ISO 3779: 17 characters, digits and capital letters except I, O and Q (too easily confused with 1 and 0).
 * The check digit (position 9) is only mandatory in North America, so it is not verified.
 */
const STRICT_VIN = /^[A-HJ-NPR-Z0-9]{17}$/;

/**
 * Simulation mode also accepts test ids such as `SIM-000042`: letters, digits, `-` and `_`, 1..64 characters,
 * starting with a letter or digit. `fleet` is reserved because `{prefix}/fleet/...` carries the per-model summaries.
 */
const SIMULATION_VIN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Vehicle models in `{prefix}/fleet/{model}/status`: the same closed alphabet plus `.`, 1..64 characters. */
const MODEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A prefix is one or more levels of the same safe alphabet; it must not start with `$` (reserved by brokers). */
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

/** The share name of the backend's shared subscriptions. */
export const DEFAULT_BACKEND_GROUP = 'otalink-backend';
export const DEFAULT_PREFIX = 'ota';

export type VinMode = 'strict' | 'simulation';

export interface TopicOptions {
  /** Topic prefix, one or more levels; default `ota`. */
  prefix?: string;
  /** `strict` (default): ISO 3779 VINs only. `simulation`: also relaxed test ids (see SIMULATION_VIN). */
  vinMode?: VinMode;
  /** Share name for the backend's shared subscriptions; default `otalink-backend`. */
  backendGroup?: string;
}

/** The per-vehicle topics. */
export type VehicleTopicKind = 'command' | 'status' | 'request' | 'presence';

export type ParsedTopic = { kind: VehicleTopicKind; vin: string } | { kind: 'fleet-status'; model: string };

export function isValidVin(vin: string, mode: VinMode = 'strict'): boolean {
  if (STRICT_VIN.test(vin)) return true;
  return mode === 'simulation' && SIMULATION_VIN.test(vin) && vin.toLowerCase() !== 'fleet';
}

export function isValidModel(model: string): boolean {
  return MODEL.test(model);
}

const VEHICLE_KINDS: ReadonlySet<string> = new Set<VehicleTopicKind>(['command', 'status', 'request', 'presence']);

/** Topic names and filters for one prefix and VIN mode. Builders throw OTA_ERR_INVALID_VIN on an invalid VIN. */
export class OtaTopics {
  readonly prefix: string;
  readonly vinMode: VinMode;
  readonly backendGroup: string;
  private readonly prefixLevels: number;

  constructor(options: TopicOptions = {}) {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (!PREFIX.test(prefix)) {
      throw new OtaError('OTA_ERR_INVALID_TOPIC', `invalid topic prefix "${prefix}"`);
    }
    const group = options.backendGroup ?? DEFAULT_BACKEND_GROUP;
    if (!MODEL.test(group)) {
      throw new OtaError('OTA_ERR_INVALID_TOPIC', `invalid share name "${group}"`);
    }
    this.prefix = prefix;
    this.vinMode = options.vinMode ?? 'strict';
    this.backendGroup = group;
    this.prefixLevels = prefix.split('/').length;
  }

  isValidVin(vin: string): boolean {
    return isValidVin(vin, this.vinMode);
  }

  command(vin: string): string {
    return this.vehicle(vin, 'command');
  }

  status(vin: string): string {
    return this.vehicle(vin, 'status');
  }

  request(vin: string): string {
    return this.vehicle(vin, 'request');
  }

  /** Retained; the vehicle's will message on this topic says offline. */
  presence(vin: string): string {
    return this.vehicle(vin, 'presence');
  }

  /** Retained per-model rollout summary. */
  fleetStatus(model: string): string {
    if (!MODEL.test(model)) throw new OtaError('OTA_ERR_INVALID_TOPIC', `invalid model "${model}"`);
    return `${this.prefix}/fleet/${model}/status`;
  }

  /** `{prefix}/{vin}/{kind}` for every VIN; for ACL templates and monitoring, not for the backend's ingest. */
  vehicleFilter(kind: VehicleTopicKind): string {
    return `${this.prefix}/+/${kind}`;
  }

  /** `$share/{group}/{prefix}/+/status`: backend instances split the status ingest. */
  backendStatusSubscription(): string {
    return `$share/${this.backendGroup}/${this.vehicleFilter('status')}`;
  }

  /** `$share/{group}/{prefix}/+/request`: backend instances split the sync requests. */
  backendRequestSubscription(): string {
    return `$share/${this.backendGroup}/${this.vehicleFilter('request')}`;
  }

  /** `{prefix}/+/presence`: every backend instance keeps the whole presence table, so this one is not shared. */
  presenceSubscription(): string {
    return this.vehicleFilter('presence');
  }

  /** Recognises a topic of this protocol and extracts its VIN or model; undefined for anything else. */
  parse(topic: string): ParsedTopic | undefined {
    const levels = topic.split('/');
    if (levels.slice(0, this.prefixLevels).join('/') !== this.prefix) return undefined;
    const rest = levels.slice(this.prefixLevels);
    if (rest.length === 2) {
      const [vin, kind] = rest as [string, string];
      if (VEHICLE_KINDS.has(kind) && isValidVin(vin, this.vinMode)) {
        return { kind: kind as VehicleTopicKind, vin };
      }
      return undefined;
    }
    if (rest.length === 3 && rest[0] === 'fleet' && rest[2] === 'status' && MODEL.test(rest[1] as string)) {
      return { kind: 'fleet-status', model: rest[1] as string };
    }
    return undefined;
  }

  private vehicle(vin: string, kind: VehicleTopicKind): string {
    if (!isValidVin(vin, this.vinMode)) {
      throw new OtaError('OTA_ERR_INVALID_VIN', `invalid VIN ${JSON.stringify(vin)} (${this.vinMode} mode)`);
    }
    return `${this.prefix}/${vin}/${kind}`;
  }
}
