// The commands people type, end to end over the real engine: `otalink backend` (dev CA, SQLite, our broker on port
// 0), `otalink artifact upload`, `otalink campaign create --start` and `otalink campaign watch` following a vehicle
// (our MQTT client) to COMPLETED; and `otalink backend`'s option errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker } from '@otalink/broker';
import { connect, type MqttClient } from '@otalink/mqtt';
import { createMessage, encodeMessage, parseMessage } from '@otalink/ota';
import pino from 'pino';
import { runArtifact } from '../src/commands/artifact.js';
import { runBackend } from '../src/commands/backend.js';
import { runCampaign } from '../src/commands/campaign.js';
import { Capture, io } from './cli-support.js';

/** A vehicle that announces itself and reports IN_PROGRESS then SUCCEEDED for the first job it is told about. */
async function vehicle(url: string, vin: string): Promise<MqttClient> {
  const client = await connect({ url, clientId: vin, clean: false, reconnect: false });
  await client.subscribe(`ota/${vin}/command`, { qos: 1 });
  let done = false;
  client.on('message', (m) => {
    const parsed = parseMessage(m.payload);
    if (!parsed.ok || parsed.message.type !== 'job.notify' || done) return;
    done = true;
    const { jobId, executionNumber } = parsed.message;
    const status = (seq: number, body: Record<string, unknown>) =>
      encodeMessage(createMessage('job.status', { jobId, executionNumber, seq, ...body } as never, { ts: Date.now() }));
    void client.publish(`ota/${vin}/status`, status(1, { status: 'IN_PROGRESS', step: 'INSTALLING', progress: 50 }), {
      qos: 1,
    });
    void client.publish(`ota/${vin}/status`, status(2, { status: 'SUCCEEDED', installedVersion: '2.0.0' }), { qos: 1 });
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
  await client.publish(`ota/${vin}/presence`, encodeMessage(presence), { qos: 1, retain: true });
  return client;
}

test('otalink backend + artifact upload + campaign create --start + campaign watch to COMPLETED', async () => {
  const broker = createBroker({
    listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    allowAnonymous: true,
    logger: pino({ level: 'silent' }),
    sysIntervalSeconds: 0,
  });
  await broker.listen();
  const mqttUrl = `mqtt://127.0.0.1:${broker.addresses()[0]?.port}`;
  const dir = mkdtempSync(join(tmpdir(), 'otalink-cli-e2e-'));
  let stop: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((resolve) => {
    stop = resolve;
  });
  let listening: (info: { url: string; caFile: string | undefined }) => void = () => {};
  const ready = new Promise<{ url: string; caFile: string | undefined }>((resolve) => {
    listening = resolve;
  });
  const backendOut = io();
  const running = runBackend(
    [
      '--data-dir',
      join(dir, 'data'),
      '--mqtt',
      mqttUrl,
      '--listen',
      '127.0.0.1:0',
      '--vin-mode',
      'simulation',
      '--log-level',
      'silent',
    ],
    { ...backendOut, stopSignal, onListening: listening },
  );
  const vehicles: MqttClient[] = [];
  try {
    const { url, caFile } = await Promise.race([
      ready,
      running.then((code) => {
        throw new Error(`otalink backend exited ${code}: ${backendOut.stderr.text}`);
      }),
    ]);
    assert.ok(caFile, 'the development CA is used without --tls-cert');
    // The admin token `otalink backend` wrote on its first start, as an operator would pass it.
    const api = ['--api', url, '--cafile', caFile, '--token-file', join(dir, 'data', 'admin-token')];

    const vins = ['SIM-000001', 'SIM-000002'];
    for (const vin of vins) vehicles.push(await vehicle(mqttUrl, vin));

    const image = join(dir, 'fw.bin');
    writeFileSync(image, Buffer.alloc(100_000, 1));
    const uploaded = io();
    assert.equal(
      await runArtifact(
        ['upload', image, '--name', 'tcu', '--version', '2.0.0', '--hardware-id', 'tcu-v2', '--json', ...api],
        uploaded,
      ),
      0,
      uploaded.stderr.text,
    );
    const { sha256 } = JSON.parse(uploaded.stdout.text) as { sha256: string };

    // Vehicles register themselves from their presence; wait until both are known.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const create = io();
      const code = await runCampaign(
        ['create', '--name', 'e2e', '--artifact', sha256, '--model', 'ID.4', '--start', '--json', ...api],
        create,
      );
      assert.equal(code, 0, create.stderr.text);
      const campaign = JSON.parse(create.stdout.text) as { id: string; targets: number };
      if (campaign.targets === vins.length) {
        const watched = io(new Capture());
        const watchCode = await runCampaign(['watch', campaign.id, ...api], watched);
        assert.equal(watchCode, 0, watched.stderr.text);
        assert.match(watched.stdout.text, /COMPLETED 2\/2 succeeded, 2 released: succeeded 2\n$/);
        const status2 = io();
        assert.equal(await runCampaign(['status', campaign.id, ...api], status2), 0);
        assert.match(status2.stdout.text, /COMPLETED, 2\/2 released/);
        const history = io();
        assert.equal(
          await runCampaign(['history', campaign.id, 'SIM-000001', ...api], history),
          0,
          history.stderr.text,
        );
        assert.match(history.stdout.text, /^SIM-000001 {2}SUCCEEDED/);
        assert.match(history.stdout.text, /IN_PROGRESS\/INSTALLING -> SUCCEEDED {2}\(vehicle-status\)/);
        const executions = io();
        assert.equal(await runCampaign(['executions', campaign.id, '--status', 'SUCCEEDED', ...api], executions), 0);
        assert.deepEqual(
          executions.stdout.text
            .trim()
            .split('\n')
            .map((l) => l.split(' ')[0])
            .sort(),
          vins,
        );
        break;
      }
      // Not every vehicle registered yet: cancel this one and try again.
      assert.equal(await runCampaign(['cancel', campaign.id, ...api], io()), 0);
      if (Date.now() > deadline) throw new Error('the vehicles never registered');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    for (const v of vehicles) await v.end({ force: true }).catch(() => undefined);
    stop('test');
    assert.equal(await running, 0, backendOut.stderr.text);
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('otalink backend: bad options exit 2 with one line', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--listen', 'nope'], /--listen must be HOST:PORT/],
    [['--listen', '127.0.0.1:99999'], /--listen/],
    [['--tls-cert', 'a.pem'], /go together/],
    [['--mqtt', 'http://x'], /--mqtt must be/],
    [['--public-url', 'ftp://x'], /--public-url/],
    [['--vin-mode', 'loose'], /--vin-mode/],
    [['--log-level', 'loud'], /--log-level/],
    [['--upload-limit', '-5'], /--upload-limit/],
    [['--database', 'mysql://db/x'], /--database must be a postgres:\/\//],
    [['--frobnicate'], /frobnicate/],
    [['extra'], /extra/],
  ];
  for (const [args, message] of cases) {
    const out = io();
    assert.equal(await runBackend(args, { ...out, stopSignal: Promise.resolve('unused') }), 2, args.join(' '));
    assert.match(out.stderr.text, message);
    assert.match(out.stderr.text, /^otalink backend: /);
  }
});

/** Runs `otalink backend` on a fresh data directory with these extra flags, for a start that must fail. */
async function failedStart(flags: (dir: string) => string[]): Promise<{ code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'otalink-cli-backend-'));
  try {
    const out = io();
    const code = await runBackend(
      ['--data-dir', dir, '--listen', '127.0.0.1:0', ...flags(dir), '--log-level', 'silent'],
      { ...out, stopSignal: new Promise(() => {}) },
    );
    return { code, stderr: out.stderr.text };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('otalink backend: a database that cannot be reached is a one-line error naming it without the password, exit 1', async () => {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  const { code, stderr } = await failedStart(() => ['--database', 'postgres://fleet:s3cret@127.0.0.1:1/otalink']);
  assert.equal(code, 1);
  assert.match(stderr, /^otalink backend: cannot open the store postgres:\/\/fleet:\*\*\*@127\.0\.0\.1:1\/otalink/);
  assert.doesNotMatch(stderr, /s3cret/);
});

test('otalink backend: an unreadable TLS file is a one-line error, exit 1', async () => {
  const { code, stderr } = await failedStart((dir) => [
    '--tls-cert',
    join(dir, 'no.pem'),
    '--tls-key',
    join(dir, 'no-key.pem'),
  ]);
  assert.equal(code, 1);
  assert.match(stderr, /^otalink backend: .*no\.pem/);
});
