// The client's model run (see client-run.ts): three of our clients through link resets, stalls, silent paths,
// crashes and broker restarts, against our broker on its durable store and against Mosquitto with persistence.
// `npm run test:model -- --client --broker durable --seeds 1-200 --steps 500` runs it longer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requireProgram } from '../support/system.js';
import { mosquittoBroker, ourBroker } from './brokers.js';
import { runClientModel } from './client-run.js';

describe('the client against the reference guarantees', () => {
  for (const seed of [1, 2, 3, 4]) {
    test(`our broker on its durable store, seed ${seed}`, async () => {
      const broker = await ourBroker(true);
      try {
        const { published, serverResends } = await runClientModel({ broker, seed, operations: 300 });
        assert.ok(published > 100);
        assert.deepEqual(serverResends, [], 'our broker never sends a QoS 2 PUBLISH again after its PUBREL');
      } finally {
        await broker.close();
      }
    });
  }

  // Mosquitto 2.0.11 sometimes sends a QoS 2 PUBLISH again after its PUBREL (seen after reconnects and restarts,
  // ~1 seed in 50 on a loaded machine; never by ours in 275 seeds beside it): the client takes it as new, as the
  // specification tells it to. The run counts those apart and fails on any other duplicate.
  for (const seed of [5, 6]) {
    test(`Mosquitto with persistence, seed ${seed}`, async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const broker = await mosquittoBroker(binary, true);
      try {
        const { published, serverResends } = await runClientModel({ broker, seed, operations: 300 });
        assert.ok(published > 100);
        if (serverResends.length > 0) t.diagnostic(`Mosquitto resent after PUBREL: ${serverResends.join(', ')}`);
      } finally {
        await broker.close();
      }
    });
  }
});
