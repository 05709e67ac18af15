// The backend stopped and restarted mid-campaign over MQTT: outcomes reported while it was down reach it (queued in
// its persistent session, or resent by the vehicle when the restarted backend re-notifies), none is applied twice.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import { connect, type MqttClient } from '@otalink/mqtt';
import { createMessage, encodeMessage, parseMessage } from '@otalink/ota';
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

/** Follows the protocol's vehicle rules: a notify for a known execution is answered with the latest status again. */
class Vehicle {
  latest: Uint8Array | undefined;
  seq = 0;
  job: { jobId: string; executionNumber: number } | undefined;
  notifies = 0;

  constructor(
    readonly vin: string,
    readonly client: MqttClient,
  ) {
    client.on('message', (m) => {
      const parsed = parseMessage(m.payload, { types: ['job.notify'] });
      if (!parsed.ok) return;
      this.notifies++;
      if (this.job === undefined) {
        this.job = { jobId: parsed.message.jobId, executionNumber: parsed.message.executionNumber };
        this.report({ status: 'IN_PROGRESS', step: 'DOWNLOADING' });
      } else if (this.latest !== undefined) {
        client.publish(`ota/${vin}/status`, this.latest, { qos: 1 }).catch(() => undefined);
      }
    });
  }

  report(body: { status: 'IN_PROGRESS' | 'SUCCEEDED'; step?: 'DOWNLOADING' }): void {
    if (this.job === undefined) throw new Error('no job');
    this.latest = encodeMessage(
      createMessage('job.status', { ...this.job, seq: ++this.seq, ...body }, { ts: Date.now() }),
    );
    this.client.publish(`ota/${this.vin}/status`, this.latest, { qos: 1 }).catch(() => undefined);
  }
}

test('bridge: a backend restarted mid-campaign continues with no lost or doubled status', async () => {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const url = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-restart-'));
  const vehicles: Vehicle[] = [];
  let backend: Backend | undefined;
  const open = async () => {
    backend = createBackend({
      dataDir,
      mqtt: url,
      vinMode: 'simulation',
      publicBaseUrl: 'https://127.0.0.1:8443',
      logger: silentLogger,
    });
    await backend.start();
    return backend.service;
  };
  try {
    let service = await open();
    for (const vin of ['SIM-1', 'SIM-2', 'SIM-3']) {
      await service.registerVehicle({ vin, model: 'ID.4', hardwareId: 'tcu-v2', installedVersion: '1.0.0' });
      const client = await connect({ url, clientId: vin, clean: false, reconnect: false });
      await client.subscribe(`ota/${vin}/command`, { qos: 1 });
      vehicles.push(new Vehicle(vin, client));
    }
    const artifact = await service.putArtifact(Buffer.from('fw'), {
      name: 'fw',
      version: '2.0.0',
      hardwareIds: ['tcu-v2'],
    });
    const { id } = await service.createCampaign({
      name: 'r',
      artifact: artifact.sha256,
      target: { vins: ['SIM-1', 'SIM-2', 'SIM-3'] },
    });
    await service.startCampaign(id);
    await until('all in progress', async () =>
      (await service.getCampaign(id)).counts.IN_PROGRESS === 3 ? true : undefined,
    );
    const [v1, v2, v3] = vehicles as [Vehicle, Vehicle, Vehicle];
    v1.report({ status: 'SUCCEEDED' });
    await until('v1 succeeded', async () =>
      (await service.getCampaign(id)).counts.SUCCEEDED === 1 ? true : undefined,
    );

    await backend?.close();
    // While the backend is down: one outcome now, one outcome the vehicle will only resend when re-notified.
    v2.report({ status: 'SUCCEEDED' });
    await new Promise((r) => setTimeout(r, 100));

    service = await open();
    v3.report({ status: 'SUCCEEDED' });
    const done = await until('campaign completed', async () => {
      const c = await service.getCampaign(id);
      return c.state === 'COMPLETED' ? c : undefined;
    });
    assert.equal(done.counts.SUCCEEDED, 3);
    for (const v of vehicles) {
      const history = await service.executionHistory(id, v.vin);
      assert.equal(history.transitions.filter((t) => t.to === 'SUCCEEDED').length, 1, `${v.vin}: one SUCCEEDED`);
      assert.equal(history.transitions.filter((t) => t.to === 'IN_PROGRESS').length, 1, `${v.vin}: one IN_PROGRESS`);
      assert.equal(history.executions.length, 1);
    }
    assert.ok(v2.notifies >= 2, 'the restarted backend re-notified the vehicle in flight');
  } finally {
    for (const v of vehicles) await v.client.end({ force: true }).catch(() => undefined);
    await backend?.close();
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
