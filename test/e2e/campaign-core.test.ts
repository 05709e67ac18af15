// Issue 6, end to end over loopback with our broker: a small campaign to SUCCEEDED and an offline vehicle that
// catches up. The same scenarios run against Mosquitto in campaign-mosquitto.test.ts.
// The rest of issue 6's suite: campaign-fleet (200 vehicles, knobs), campaign-rejections, campaign-resume,
// campaign-dedup. The backend SIGKILLed mid-campaign and restarted from its data dir is covered, not duplicated, by
// packages/backend/test/kill-restart.test.ts.
import { test } from 'node:test';
import { startOurBroker } from './support/brokers.js';
import { offlineVehicleCatchesUp, smallCampaignSucceeds } from './support/core-scenarios.js';

test('our broker: a 5-vehicle campaign ends COMPLETED with every vehicle on the new version', {
  timeout: 90_000,
}, async () => {
  const broker = await startOurBroker();
  try {
    await smallCampaignSucceeds(broker.url);
  } finally {
    await broker.close();
  }
});

test('our broker: a vehicle offline at the start comes back later, catches up and succeeds', {
  timeout: 90_000,
}, async () => {
  const broker = await startOurBroker();
  try {
    await offlineVehicleCatchesUp(broker.url);
  } finally {
    await broker.close();
  }
});
