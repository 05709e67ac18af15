// The stack's preferred ports are only preferences: when something else holds them, startStack takes free ports,
// says so in the log, and everything still works on the ports it reports.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '@otalink/mqtt';
import { issueClientCert } from '@otalink/pki';
import pino from 'pino';
import { startStack } from '../../packages/cli/src/stack/stack.js';

async function occupy(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

test('taken ports fall back to free ones; the stack works on what it reports', { timeout: 120_000 }, async () => {
  const home = await mkdtemp(join(tmpdir(), 'otalink-ports-'));
  const http = await occupy();
  const mqtt = await occupy();
  const dashboard = await occupy();
  const downloads = await occupy();
  const warnings: string[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        warnings.push((JSON.parse(line) as { msg: string }).msg);
      },
    },
  );
  let started: Awaited<ReturnType<typeof startStack>> | undefined;
  try {
    const stack = await startStack({
      home,
      httpPort: http.port,
      dashboardPort: dashboard.port,
      downloadPort: downloads.port,
      mqttPort: mqtt.port,
      logger,
      sysIntervalSeconds: 0,
      sampleArtifact: false,
    });
    started = stack;
    assert.notEqual(new URL(stack.urls.api).port, String(http.port));
    assert.notEqual(new URL(stack.urls.mqttVehicles.replace('mqtts:', 'https:')).port, String(mqtt.port));
    assert.ok(
      warnings.some((w) => w.includes(`port ${http.port} is taken`)),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.some((w) => w.includes(`port ${mqtt.port} is taken`)),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.some((w) => w.includes(`port ${dashboard.port} is taken`)),
      warnings.join('\n'),
    );
    assert.match(stack.urls.dashboard, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.notEqual(new URL(stack.urls.dashboard).port, String(dashboard.port));
    const plain = await fetch(new URL('/healthz', stack.urls.dashboard));
    assert.equal(plain.status, 200, 'the dashboard listener serves the same routes over plain HTTP');

    const status = await new Promise<number>((resolve, reject) => {
      request(new URL('/healthz', stack.urls.dashboardHttps), { ca: stack.pki.ca.certPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 200);

    // The download listener (the backend's worker thread) fell back too, and the manifests' URLs point at it.
    assert.ok(
      warnings.some((w) => w.includes(`port ${downloads.port} is taken`)),
      warnings.join('\n'),
    );
    assert.notEqual(new URL(stack.urls.downloads).port, String(downloads.port));
    const artifact = await stack.backend.service.putArtifact(new Uint8Array(1000).fill(7), {
      name: 'ports',
      version: '1.0.0',
      hardwareIds: ['hw'],
    });
    const signed = stack.backend.service.signArtifactUrl(artifact.sha256, 60_000);
    assert.ok(signed.startsWith(`${stack.urls.downloads}/artifacts/`), signed);
    const download = await new Promise<{ status: number; length: number }>((resolve, reject) => {
      request(signed, { ca: stack.pki.ca.certPem }, (res) => {
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length }));
      })
        .on('error', reject)
        .end();
    });
    assert.deepEqual(download, { status: 200, length: 1000 });

    const cert = await issueClientCert(stack.pki.ca, { commonName: 'SIM-PORTS1' });
    const vehicle = await connect(stack.urls.mqttVehicles, {
      clientId: 'SIM-PORTS1',
      reconnect: false,
      tls: { ca: stack.pki.ca.certPem, cert: cert.certPem, key: cert.keyPem, servername: 'localhost' },
    });
    assert.deepEqual((await vehicle.subscribe('ota/SIM-PORTS1/command', { qos: 1 })).reasonCodes, [1]);
    await vehicle.end();
  } finally {
    await started?.close();
    http.server.close();
    mqtt.server.close();
    dashboard.server.close();
    downloads.server.close();
    await rm(home, { recursive: true, force: true });
  }
});
