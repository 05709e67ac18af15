// The MQTT bridge against our real broker (port 0) with a few vehicles simulated here with our client.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import { connect, type MqttClient } from '@otalink/mqtt';
import { createMessage, encodeMessage, type FleetStatus, type JobNotify, parseMessage } from '@otalink/ota';
import pino from 'pino';
import { type Backend, createBackend } from '../src/backend.js';
import { silentLogger } from '../src/logger.js';

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A vehicle that reports IN_PROGRESS then SUCCEEDED for every new execution, and answers syncs. */
async function vehicle(
  url: string,
  vin: string,
  seen: { notify: JobNotify[]; syncResults: number },
): Promise<MqttClient> {
  const client = await connect({ url, clientId: vin, clean: false, reconnect: false });
  const encode = (m: Parameters<typeof encodeMessage>[0]) => encodeMessage(m);
  await client.subscribe(`ota/${vin}/command`, { qos: 1 });
  const started = new Set<string>();
  client.on('message', (m) => {
    const parsed = parseMessage(m.payload);
    if (!parsed.ok) return;
    const msg = parsed.message;
    if (msg.type === 'sync.result') seen.syncResults++;
    if (msg.type !== 'job.notify') return;
    seen.notify.push(msg);
    const key = `${msg.jobId}#${msg.executionNumber}`;
    if (started.has(key)) return;
    started.add(key);
    const status = (seq: number, body: Record<string, unknown>) =>
      encode(
        createMessage('job.status', { jobId: msg.jobId, executionNumber: msg.executionNumber, seq, ...body } as never, {
          ts: Date.now(),
        }),
      );
    client
      .publish(`ota/${vin}/status`, status(1, { status: 'IN_PROGRESS', step: 'DOWNLOADING', progress: 0 }), {
        qos: 1,
      })
      .catch(() => undefined);
    // The same seq twice: a QoS 1 redelivery.
    client
      .publish(`ota/${vin}/status`, status(1, { status: 'IN_PROGRESS', step: 'DOWNLOADING', progress: 0 }), {
        qos: 1,
      })
      .catch(() => undefined);
    client
      .publish(`ota/${vin}/status`, status(2, { status: 'SUCCEEDED', installedVersion: '2.0.0' }), { qos: 1 })
      .catch(() => undefined);
  });
  const presence = createMessage(
    'presence',
    {
      online: true,
      inventory: {
        installedVersion: '1.0.0',
        hardwareId: 'tcu-v2',
        agentVersion: '0.1.0',
        model: 'ID.4',
        slots: { active: 'A', A: { version: '1.0.0' }, B: {} },
      },
    },
    { ts: Date.now() },
  );
  await client.publish(`ota/${vin}/presence`, encode(presence), { qos: 1, retain: true });
  await client.publish(
    `ota/${vin}/request`,
    encode(createMessage('sync', { clientToken: 'boot-1' }, { ts: Date.now() })),
    {
      qos: 1,
    },
  );
  return client;
}

test('bridge: presence registers vehicles, a campaign runs over MQTT, duplicates and garbage are dropped, fleet summary retained', async () => {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const url = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-bridge-'));
  const clients: MqttClient[] = [];
  let backend: Backend | undefined;
  try {
    backend = createBackend({
      dataDir,
      mqtt: url,
      vinMode: 'simulation',
      publicBaseUrl: 'https://127.0.0.1:8443',
      logger: silentLogger,
      fleetIntervalMs: 50,
    });
    await backend.start();
    const service = backend.service;
    const vins = ['SIM-1', 'SIM-2', 'SIM-3'];
    const seen = { notify: [] as JobNotify[], syncResults: 0 };
    for (const vin of vins) clients.push(await vehicle(url, vin, seen));
    for (const vin of vins) await until(`${vin} registered`, () => service.getVehicle(vin).catch(() => undefined));
    await until('sync answers', () => (seen.syncResults === 3 ? true : undefined));

    const watcher = await connect({ url, reconnect: false });
    clients.push(watcher);
    const fleet: FleetStatus[] = [];
    watcher.on('message', (m) => {
      const parsed = parseMessage(m.payload, { types: ['fleet.status'] });
      if (parsed.ok) fleet.push(parsed.message);
    });
    await watcher.subscribe('ota/fleet/+/status', { qos: 1 });
    // Garbage on a status topic and a command type on the request topic are dropped and counted.
    await watcher.publish('ota/SIM-1/status', 'not json', { qos: 1 });
    await watcher.publish(
      'ota/SIM-1/request',
      encodeMessage(createMessage('job.pause', { jobId: 'j', executionNumber: 1 }, { ts: 1 })),
      {
        qos: 1,
      },
    );

    const artifact = await service.putArtifact(Buffer.from('firmware'), {
      name: 'fw',
      version: '2.0.0',
      hardwareIds: ['tcu-v2'],
    });
    const campaign = await service.createCampaign({
      name: 'mqtt',
      artifact: artifact.sha256,
      target: { selector: { model: 'ID.4' } },
    });
    await service.startCampaign(campaign.id);
    const done = await until('campaign completed', async () => {
      const c = await service.getCampaign(campaign.id);
      return c.state === 'COMPLETED' ? c : undefined;
    });
    assert.equal(done.counts.SUCCEEDED, 3);
    assert.equal(seen.notify.length, 3);
    const stats = await service.stats();
    assert.equal(stats.mqttConnected, true);
    assert.equal(stats.statusIgnored.DUPLICATE, 3);
    assert.equal(stats.statusApplied, 6);
    assert.ok(stats.invalidMessages >= 2);
    const summary = await until('fleet summary with the campaign', () =>
      fleet.find((f) => f.campaigns.some((c) => c.campaignId === campaign.id && c.counts.SUCCEEDED === 3)),
    );
    assert.equal(summary.model, 'ID.4');
    assert.equal(summary.vehicles, 3);
    assert.equal(summary.versions['2.0.0'], 3);
    assert.equal((await service.getVehicle('SIM-2')).installedVersion, '2.0.0');
  } finally {
    for (const c of clients) await c.end({ force: true }).catch(() => undefined);
    await backend?.close();
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
