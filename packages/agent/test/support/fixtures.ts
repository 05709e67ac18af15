// Test fixtures: signing keys, signed manifests and backend commands, as the backend would make them.
import { randomUUID } from 'node:crypto';
import {
  createMessage,
  type JobCancel,
  type JobNotify,
  type JobPause,
  type JobResume,
  type Manifest,
  type SignedManifest,
  TrustedKeys,
} from '@otalink/ota';
import { generateEd25519KeyPair, sha256Hex, signManifest } from '@otalink/ota/node';

export const T0 = Date.UTC(2026, 5, 1);
export const HOUR = 3600_000;

export const oldKey = generateEd25519KeyPair();
export const newKey = generateEd25519KeyPair();
export const untrustedKey = generateEd25519KeyPair();

/** The vehicle trusts two keys at once (rotation). */
export function trustedKeys(): TrustedKeys {
  return new TrustedKeys([
    { keyId: 'oem-2025', publicKey: oldKey.publicKey },
    { keyId: 'oem-2026', publicKey: newKey.publicKey },
  ]);
}

export const ARTIFACT = Buffer.from('firmware 2.1.0 '.repeat(1000));

export function manifest(overrides: Partial<Manifest> = {}, bytes: Uint8Array = ARTIFACT): Manifest {
  return {
    artifactId: 'tcu-fw-2.1.0',
    name: 'tcu-firmware',
    version: '2.1.0',
    hardwareIds: ['tcu-v2'],
    size: bytes.length,
    sha256: sha256Hex(bytes),
    url: 'https://artifacts.test/tcu-fw-2.1.0.bin',
    issuedAt: T0 - HOUR,
    expiresAt: T0 + 30 * 24 * HOUR,
    keyId: 'oem-2026',
    ...overrides,
  };
}

export function signed(m: Manifest = manifest(), key: Uint8Array = newKey.privateKey): SignedManifest {
  return signManifest(m, key);
}

export function notify(
  fields: Partial<Omit<JobNotify, 'v' | 'type'>> = {},
  signedManifest: SignedManifest = signed(),
): JobNotify {
  return createMessage(
    'job.notify',
    {
      jobId: 'job-1',
      executionNumber: 1,
      campaignId: 'camp-1',
      manifest: signedManifest,
      deadlines: {},
      separateInstall: false,
      preconditions: {},
      ...fields,
    },
    { ts: T0, msgId: fields.msgId ?? randomUUID() },
  );
}

export function cancel(force: boolean, ref = { jobId: 'job-1', executionNumber: 1 }): JobCancel {
  return createMessage('job.cancel', { ...ref, force }, { ts: T0 });
}

export function pause(ref = { jobId: 'job-1', executionNumber: 1 }): JobPause {
  return createMessage('job.pause', ref, { ts: T0 });
}

export function resume(ref = { jobId: 'job-1', executionNumber: 1 }): JobResume {
  return createMessage('job.resume', ref, { ts: T0 });
}
