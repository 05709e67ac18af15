// Manual throughput check (not a test: no wall-clock assertions in the suite):
//   node --import tsx packages/backend/test/throughput.ts [vehicles=10000]
//   OTALINK_DATABASE_URL=postgres://... node --import tsx packages/backend/test/throughput.ts   (PostgreSQL store)
// One broker, the backend over MQTT, and one "fleet" client that plays every vehicle: it takes each job.notify from
// ota/+/command and answers with four job.status reports. Prints the time from start to COMPLETED.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBroker } from '@otalink/broker';
import { connect } from '@otalink/mqtt';
import { createMessage, encodeMessage, parseMessage } from '@otalink/ota';
import pino from 'pino';
import { createBackend } from '../src/backend.js';
import { silentLogger } from '../src/logger.js';

const n = Number(process.argv[2] ?? 10_000);
const broker = createBroker({
  listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
  allowAnonymous: true,
  logger: pino({ level: 'silent' }),
  sysIntervalSeconds: 0,
  // As the OTA stack's broker (packages/cli/src/stack/broker.ts): the backend's session must not drop status while
  // its acknowledgements wait for commits.
  limits: { maxQueuedMessages: 1_000_000 },
});
await broker.listen();
const url = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'otalink-throughput-'));
const backend = createBackend({
  dataDir,
  mqtt: url,
  vinMode: 'simulation',
  publicBaseUrl: 'https://127.0.0.1:1',
  logger: process.env.LOG_LEVEL ? pino({ level: process.env.LOG_LEVEL }, pino.destination(2)) : silentLogger,
  ...(process.env.OTALINK_DATABASE_URL ? { databaseUrl: process.env.OTALINK_DATABASE_URL } : {}),
});
await backend.start();
const service = backend.service;
const vins = Array.from({ length: n }, (_, i) => `SIM-${String(i).padStart(6, '0')}`);
let t = Date.now();
// Concurrent registrations share commits (as concurrent REST calls would).
for (let i = 0; i < vins.length; i += 500) {
  await Promise.all(
    vins
      .slice(i, i + 500)
      .map((vin) => service.registerVehicle({ vin, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' })),
  );
}
console.log(`registered ${n} vehicles in ${Date.now() - t} ms`);
const fleet = await connect({ url, reconnect: false, maxInflight: 1000 });
await fleet.subscribe('ota/+/command', { qos: 1 });
fleet.on('message', (m) => {
  const parsed = parseMessage(m.payload, { types: ['job.notify'] });
  if (!parsed.ok) return;
  const msg = parsed.message;
  const vin = m.topic.split('/')[1] as string;
  const steps = ['DOWNLOADING', 'VERIFYING', 'INSTALLING'] as const;
  let seq = 0;
  for (const step of steps) {
    const body = {
      jobId: msg.jobId,
      executionNumber: msg.executionNumber,
      seq: ++seq,
      status: 'IN_PROGRESS' as const,
      step,
    };
    void fleet.publish(`ota/${vin}/status`, encodeMessage(createMessage('job.status', body, { ts: Date.now() })), {
      qos: 1,
    });
  }
  const done = {
    jobId: msg.jobId,
    executionNumber: msg.executionNumber,
    seq: ++seq,
    status: 'SUCCEEDED' as const,
    installedVersion: '2.0.0',
  };
  void fleet.publish(`ota/${vin}/status`, encodeMessage(createMessage('job.status', done, { ts: Date.now() })), {
    qos: 1,
  });
});
const artifact = await service.putArtifact(Buffer.from('fw'), {
  name: 'fw',
  version: '2.0.0',
  hardwareIds: ['tcu-v2'],
});
const campaign = await service.createCampaign({
  name: 'bulk',
  artifact: artifact.sha256,
  target: { selector: { model: 'ID.4' } },
});
t = Date.now();
await service.startCampaign(campaign.id);
console.log(`startCampaign took ${Date.now() - t} ms`);
for (;;) {
  const c = await service.getCampaign(campaign.id);
  if (c.state === 'COMPLETED' || Date.now() - t > 300_000) {
    console.log(`campaign ${c.state} in ${Date.now() - t} ms`, c.counts, await service.stats());
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
await fleet.end({ force: true });
await backend.close();
await broker.close();
rmSync(dataDir, { recursive: true, force: true });
