// The end-to-end core with Mosquitto as the broker instead of ours: the backend's persistent session and shared
// subscriptions, the agents' persistent sessions and wills, all through a third-party MQTT 5 broker.
import { test } from 'node:test';
import { requireProgram } from '../support/system.js';
import { startMosquitto } from './support/brokers.js';
import { offlineVehicleCatchesUp, smallCampaignSucceeds } from './support/core-scenarios.js';

test('mosquitto: a 5-vehicle campaign ends COMPLETED with every vehicle on the new version', {
  timeout: 90_000,
}, async (t) => {
  const program = requireProgram(t, 'mosquitto');
  if (program === undefined) return;
  const broker = await startMosquitto(program);
  try {
    await smallCampaignSucceeds(broker.url);
  } finally {
    await broker.close();
  }
});

test('mosquitto: a vehicle offline at the start comes back later, catches up and succeeds', {
  timeout: 90_000,
}, async (t) => {
  const program = requireProgram(t, 'mosquitto');
  if (program === undefined) return;
  const broker = await startMosquitto(program);
  try {
    await offlineVehicleCatchesUp(broker.url);
  } finally {
    await broker.close();
  }
});
