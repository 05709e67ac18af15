// Test support: what an agent test runs against for real: our broker on loopback, the HTTPS artifact server
// holding the given files, and manifests signed for those files that are valid on the real clock (the fixtures'
// T0 lies in 2026-06).
import { type Broker, createBroker } from '@otalink/broker';
import type { SignedManifest } from '@otalink/ota';
import { type ArtifactServer, startArtifactServer } from './artifact-server.js';
import { manifest, signed } from './fixtures.js';
import { silent } from './vehicle.js';

export interface LiveRig {
  broker: Broker;
  /** mqtt:// URL of the broker. */
  url: string;
  artifacts: ArtifactServer;
  /** A signed manifest for the file served at `path`, issued a minute ago, expiring in an hour. */
  liveManifest(path: string): SignedManifest;
  close(): Promise<void>;
}

export async function startLiveRig(files: Record<string, Uint8Array>): Promise<LiveRig> {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: silent,
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const artifacts = await startArtifactServer();
  for (const [path, bytes] of Object.entries(files)) artifacts.put(path, bytes);
  return {
    broker,
    url: `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`,
    artifacts,
    liveManifest(path) {
      const bytes = files[path];
      if (bytes === undefined) throw new Error(`the rig serves no ${path}`);
      const now = Date.now();
      return signed(manifest({ url: artifacts.url(path), issuedAt: now - 60_000, expiresAt: now + 3600_000 }, bytes));
    },
    async close() {
      await artifacts.close();
      await broker.close();
    },
  };
}
