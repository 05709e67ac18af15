// A TCU's agent runs for months while coverage comes and goes. Here its line to the broker (through a loopback
// proxy) is cut hundreds of times; each time the broker publishes its will (presence offline) and the agent
// reconnects and announces itself again (presence online, its inventory). Between a heap snapshot after the
// warm-up and one after the churn, the process (agent, broker and test backend together) may hold no more
// objects of any kind, nor more bytes, beyond noise (test/support/heap-census.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertHeapLevel, heapSnapshot } from '../../../test/support/heap-census.js';
import { ImpairingProxy } from '../../mqtt/test/client/proxy.js';
import { runAgent } from '../src/index.js';
import { startLiveRig } from './support/live-rig.js';
import { TestBackend } from './support/test-backend.js';
import { tempDir, vehicleOptions } from './support/vehicle.js';

const WARM_UP = 40;
const ROUNDS = 300;
const VIN = 'WVWZZZE1ZPP000042';

describe('agent churn', () => {
  test(`${ROUNDS} lost lines and reconnects of a running agent leave the heap level`, async () => {
    const rig = await startLiveRig({});
    const brokerPort = rig.broker.addresses()[0]!.port;
    const proxy = await ImpairingProxy.start(brokerPort);
    const backend = await TestBackend.start(rig.url, 5);
    const dir = await tempDir();
    const snapshots = await tempDir('otalink-agent-churn-');
    const runner = await runAgent(
      vehicleOptions(VIN, dir.path, proxy.url, rig.artifacts.ca, {
        mqtt: { url: proxy.url, protocolVersion: 5, reconnect: { initialDelayMs: 1, maxDelayMs: 5, jitter: 'none' } },
      }),
    );
    const online = (state: boolean) =>
      backend.waitFor(() => backend.presence.get(VIN)?.online === state, 10_000, `presence online: ${state}`);
    const round = async () => {
      const syncs = backend.syncs.get(VIN) ?? 0;
      proxy.drop();
      await online(false);
      await online(true);
      // Its sync request comes behind the presence; then a moment for the broker's acks to reach the agent. Cut
      // at once, every line would be lost before its PUBACKs came back, and the agent's in-flight messages (resent
      // on each line, as they must be) would pile up to its window: not what a leak test should measure.
      await backend.waitFor(() => (backend.syncs.get(VIN) ?? 0) > syncs, 10_000, 'a sync request');
      await new Promise((resolve) => setTimeout(resolve, 20));
    };
    try {
      await online(true);
      for (let i = 0; i < WARM_UP; i++) await round();
      const first = heapSnapshot(snapshots.path, 'after-warm-up');
      for (let i = 0; i < ROUNDS; i++) await round();
      assertHeapLevel(first, snapshots.path, ROUNDS, 'reconnects');
      assert.ok(proxy.connections >= WARM_UP + ROUNDS + 1, 'the agent reconnected after every cut');
    } finally {
      await runner.kill();
      await backend.close();
      await proxy.close();
      await rig.close();
      await dir.remove();
      await snapshots.remove();
    }
  });
});
