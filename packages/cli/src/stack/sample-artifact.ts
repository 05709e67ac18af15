// The sample update `otalink up` uploads so a campaign can be started from the dashboard at once: a few hundred KiB
// of deterministic bytes (same bytes every run, so the artifact store keeps one copy), for the simulated fleet's
// hardware.
import { createHash } from 'node:crypto';

export const SAMPLE_ARTIFACT_SIZE = 256 * 1024;

/** SHA-256 in counter mode from a fixed seed: incompressible, reproducible, no randomness to store. */
export function sampleArtifactBytes(size: number = SAMPLE_ARTIFACT_SIZE): Uint8Array {
  const out = new Uint8Array(size);
  for (let offset = 0, block = 0; offset < size; offset += 32, block++) {
    const digest = createHash('sha256').update(`otalink sample artifact ${block}`).digest();
    out.set(digest.subarray(0, Math.min(32, size - offset)), offset);
  }
  return out;
}
