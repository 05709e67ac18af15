// The model run (see run.ts) against our broker, in memory and on its durable store, and against Mosquitto with
// its known departures from the specifications (profiles.ts). Seeds are fixed so a failure replays exactly:
// `npm run test:model -- --broker ours --seeds 3 --steps 400` runs one seed, or thousands for a long search.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requireProgram } from '../support/system.js';
import { mosquittoBroker, ourBroker, ourBrokerOnVirtualTime, ourWebSocketBroker } from './brokers.js';
import { MOSQUITTO_2_0, OURS } from './profiles.js';
import { runModel } from './run.js';

const STEPS = 500;

describe('the broker against the reference model', () => {
  for (let seed = 1; seed <= 20; seed++) {
    test(`our broker, in memory, seed ${seed}`, async () => {
      const b = await ourBroker(false);
      try {
        const { deliveries } = await runModel({ port: b.port, seed, steps: STEPS, profile: OURS });
        assert.ok(deliveries > STEPS, `only ${deliveries} deliveries checked`);
      } finally {
        await b.close();
      }
    });
  }

  for (let seed = 31; seed <= 34; seed++) {
    test(`our broker over WebSocket, seed ${seed}`, async () => {
      const b = await ourWebSocketBroker();
      try {
        const { deliveries } = await runModel({ port: b.port, seed, steps: STEPS, profile: OURS, transport: 'ws' });
        assert.ok(deliveries > STEPS, `only ${deliveries} deliveries checked`);
      } finally {
        await b.close();
      }
    });
  }

  for (let seed = 41; seed <= 52; seed++) {
    // Seeds from 49 on use the durable store, restarted now and then.
    const durable = seed >= 49;
    const where = durable ? 'on its durable store' : 'in memory';
    test(`our broker on virtual time ${where} (session expiry, will delay, message expiry), seed ${seed}`, async () => {
      const b = await ourBrokerOnVirtualTime(durable);
      try {
        const { deliveries } = await runModel({
          port: b.port,
          clock: b.clock,
          restart: b.restart,
          seed,
          steps: STEPS,
          profile: OURS,
        });
        assert.ok(deliveries > STEPS, `only ${deliveries} deliveries checked`);
      } finally {
        await b.close();
      }
    });
  }

  for (let seed = 21; seed <= 30; seed++) {
    test(`our broker on its durable store, restarted now and then, seed ${seed}`, async () => {
      const b = await ourBroker(true);
      try {
        const { deliveries } = await runModel({ port: b.port, restart: b.restart, seed, steps: STEPS, profile: OURS });
        assert.ok(deliveries > STEPS, `only ${deliveries} deliveries checked`);
      } finally {
        await b.close();
      }
    });
  }

  for (const seed of [1, 2, 3]) {
    test(`Mosquitto (the model checked against the reference broker), seed ${seed}`, async (t) => {
      const binary = requireProgram(t, 'mosquitto');
      if (!binary) return;
      const b = await mosquittoBroker(binary);
      try {
        await runModel({ port: b.port, seed, steps: 300, profile: MOSQUITTO_2_0 });
      } finally {
        await b.close();
      }
    });
  }
});
