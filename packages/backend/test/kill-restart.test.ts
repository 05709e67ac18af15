// The backend SIGKILLed mid-campaign (a real crash: no flush, no DISCONNECT) and restarted from its data directory:
// the campaign completes with every outcome applied exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBroker } from '@otalink/broker';
import { connect, type MqttClient } from '@otalink/mqtt';
import { createMessage, encodeMessage, parseMessage } from '@otalink/ota';
import pino from 'pino';

const child = fileURLToPath(new URL('./fixtures/backend-child.ts', import.meta.url));

function run(args: string[]): { proc: ChildProcess; line: Promise<string> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const line = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child gave no answer in time: ${err}`)), 60_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    // 'close', not 'exit': the answer line may not have been read yet at 'exit'.
    proc.on('close', (code) => {
      clearTimeout(timer);
      if (!out.includes('\n')) reject(new Error(`child exited (${code}) without an answer: ${err}`));
    });
  });
  return { proc, line };
}

test('backend SIGKILLed mid-campaign and restarted: no lost or doubled status', async () => {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const url = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'otalink-kill-'));
  const vins = Array.from({ length: 20 }, (_, i) => `SIM-${i + 1}`);
  const clients: MqttClient[] = [];
  const procs: ChildProcess[] = [];
  try {
    // Vehicles: on the first notify report IN_PROGRESS (seq 1), then SUCCEEDED (seq 2) when told; a later notify for
    // the same execution is answered with the latest report again, as the protocol asks.
    const latest = new Map<string, Uint8Array>();
    const jobs = new Map<string, { jobId: string; executionNumber: number }>();
    const inProgress = new Set<string>();
    for (const vin of vins) {
      const client = await connect({ url, clientId: vin, clean: false, reconnect: false });
      clients.push(client);
      const publish = (bytes: Uint8Array) => {
        latest.set(vin, bytes);
        client.publish(`ota/${vin}/status`, bytes, { qos: 1 }).catch(() => undefined);
      };
      client.on('message', (m) => {
        const parsed = parseMessage(m.payload, { types: ['job.notify'] });
        if (!parsed.ok) return;
        const known = jobs.get(vin);
        if (known === undefined) {
          const job = { jobId: parsed.message.jobId, executionNumber: parsed.message.executionNumber };
          jobs.set(vin, job);
          publish(
            encodeMessage(
              createMessage(
                'job.status',
                { ...job, seq: 1, status: 'IN_PROGRESS', step: 'DOWNLOADING' },
                { ts: Date.now() },
              ),
            ),
          );
          inProgress.add(vin);
        } else {
          const bytes = latest.get(vin);
          if (bytes !== undefined) client.publish(`ota/${vin}/status`, bytes, { qos: 1 }).catch(() => undefined);
        }
      });
      await client.subscribe(`ota/${vin}/command`, { qos: 1 });
    }
    const succeed = (vin: string) => {
      const job = jobs.get(vin);
      if (job === undefined) throw new Error(`${vin} has no job`);
      const bytes = encodeMessage(
        createMessage(
          'job.status',
          { ...job, seq: 2, status: 'SUCCEEDED', installedVersion: '2.0.0' },
          { ts: Date.now() },
        ),
      );
      latest.set(vin, bytes);
      const client = clients[vins.indexOf(vin)] as MqttClient;
      client.publish(`ota/${vin}/status`, bytes, { qos: 1 }).catch(() => undefined);
    };

    const first = run([dataDir, url, 'start', vins.join(',')]);
    procs.push(first.proc);
    const campaignId = (await first.line).replace(/^campaign /, '');
    for (let i = 0; i < 1000 && inProgress.size < vins.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(inProgress.size, vins.length);
    await new Promise((r) => setTimeout(r, 200));
    // Half the fleet succeeds and the backend dies while those reports are arriving.
    for (const vin of vins.slice(0, 10)) succeed(vin);
    await new Promise((r) => setTimeout(r, 5));
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    // The other half succeeds while no backend runs.
    for (const vin of vins.slice(10)) succeed(vin);
    await new Promise((r) => setTimeout(r, 100));

    const second = run([dataDir, url, 'wait', campaignId]);
    procs.push(second.proc);
    const result = JSON.parse(await second.line) as {
      counts: Record<string, number>;
      vehicles: Record<string, string[]>;
    };
    await new Promise((r) => second.proc.once('exit', r));
    assert.equal(result.counts.SUCCEEDED, vins.length);
    for (const vin of vins) {
      assert.deepEqual(result.vehicles[vin], ['NOTIFIED', 'IN_PROGRESS@1', 'SUCCEEDED@2'], vin);
    }
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const c of clients) await c.end({ force: true }).catch(() => undefined);
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
