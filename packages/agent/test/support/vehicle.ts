// Test support: one vehicle's agent options against a broker URL and an artifact server, with a temp state dir.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { AgentOptions } from '../../src/index.js';
import { newKey, oldKey } from './fixtures.js';
import type { JobFields } from './test-backend.js';

export const silent = pino({ level: 'silent' });

export async function tempDir(prefix = 'otalink-agent-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export function vehicleOptions(
  vin: string,
  stateDir: string,
  mqttUrl: string,
  ca: string | undefined,
  overrides: Partial<AgentOptions> = {},
): AgentOptions {
  return {
    vin,
    stateDir,
    hardwareId: 'tcu-v2',
    model: 'ID.4',
    installedVersion: '2.0.3',
    trustedKeys: [
      { keyId: 'oem-2025', publicKey: oldKey.publicKey },
      { keyId: 'oem-2026', publicKey: newKey.publicKey },
    ],
    mqtt: { url: mqttUrl, protocolVersion: 5, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
    topics: { vinMode: 'simulation' },
    download: { ...(ca === undefined ? {} : { ca }), initialDelayMs: 20, maxDelayMs: 200 },
    logger: silent,
    fsync: false,
    ...overrides,
  };
}

export function jobFields(signedManifest: JobFields['manifest'], fields: Partial<JobFields> = {}): JobFields {
  return {
    jobId: 'job-1',
    executionNumber: 1,
    campaignId: 'camp-1',
    manifest: signedManifest,
    deadlines: {},
    separateInstall: false,
    preconditions: {},
    ...fields,
  };
}
