// One client suite per transport: mqtts:// (TLS with CA, servername, client certificates), ws:// and the
// in-memory pair. Each front end relays bytes to the same fake broker over TCP.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer } from 'ws';
import { type ClientOptions, connect, memoryTransport } from '../../src/client/index.js';
import { wsTransport } from '../../src/client/transports/ws.js';
import type { MqttError } from '../../src/codec/errors.js';
import { FakeBroker } from './fake-broker.js';
import { freePort } from './mosquitto.js';
import { webSocketRelay } from './ws-relay.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function roundTrip(options: ClientOptions, broker: FakeBroker): Promise<void> {
  const client = await connect({ reconnect: false, connectTimeoutMs: 5000, ...options });
  try {
    assert.equal((await client.publish('t/x', 'over the wire', { qos: 1 })).reasonCode, 0);
    const sub = await client.subscribe('in/#', { qos: 1 });
    const stream = sub.messages();
    broker.latest!.send({
      type: 'publish',
      topic: 'in/1',
      payload: new TextEncoder().encode('back'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 9,
    });
    assert.equal(text(((await stream.next()).value as { payload: Uint8Array }).payload), 'back');
    assert.equal(text(broker.publishes.at(-1)!.payload), 'over the wire');
  } finally {
    await client.end();
  }
}

function openssl(t: { skip(msg: string): void }): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    t.skip('openssl not installed');
    return false;
  }
}

/** What wsTransport needs to reach a WebSocketServer listening on loopback. */
function wsTarget(server: WebSocketServer) {
  const { port } = server.address() as { port: number };
  return { protocol: 'ws' as const, host: '127.0.0.1', port, path: '/', signal: new AbortController().signal };
}

describe('transports', () => {
  test('mqtts:// with CA, servername and a client certificate; wrong CA is refused', async (t) => {
    if (!openssl(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'otalink-tls-'));
    const broker = await FakeBroker.start();
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    try {
      run(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.pem',
        '-days',
        '1',
        '-subj',
        '/CN=test-ca',
      );
      for (const name of ['server', 'client']) {
        run(
          'req',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.csr`,
          '-subj',
          `/CN=${name === 'server' ? 'broker.test' : 'tcu-1'}`,
        );
        const ext = join(dir, `${name}.ext`);
        execFileSync('sh', ['-c', `echo "subjectAltName=DNS:broker.test" > ${ext}`]);
        run(
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          `${name}.pem`,
          '-days',
          '1',
          '-extfile',
          ext,
        );
      }
      const file = (n: string) => readFileSync(join(dir, n));
      let clientCn = '';
      const server = createTlsServer(
        { key: file('server.key'), cert: file('server.pem'), ca: file('ca.pem'), requestCert: true },
        (socket) => {
          clientCn = String(socket.getPeerCertificate().subject?.CN ?? '');
          const upstream = tcpConnect({ host: '127.0.0.1', port: broker.port });
          socket.pipe(upstream).pipe(socket);
          socket.on('error', () => upstream.destroy());
          upstream.on('error', () => socket.destroy());
        },
      );
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as { port: number };
      try {
        await roundTrip(
          {
            url: `mqtts://127.0.0.1:${port}`,
            tls: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'), servername: 'broker.test' },
          },
          broker,
        );
        assert.equal(clientCn, 'tcu-1');
        await assert.rejects(
          connect({ url: `mqtts://127.0.0.1:${port}`, reconnect: false, tls: { servername: 'broker.test' } }),
          (err: MqttError) => {
            assert.equal(err.code, 'MQTT_ERR_CONNECT_FAILED');
            assert.match(
              err.message,
              new RegExp(`^cannot connect to mqtts://127\\.0\\.0\\.1:${port}: the server's certificate`),
            );
            assert.match(err.message, /tls\.ca/, 'names the option that fixes it');
            assert.equal(typeof (err.cause as { code?: unknown }).code, 'string', "TLS's own error is the cause");
            return true;
          },
        );
      } finally {
        server.close();
      }
    } finally {
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a line that cannot be made fails with MQTT_ERR_CONNECT_FAILED, naming the server, the reason and its code', async () => {
    const port = await freePort();
    for (const url of [`mqtt://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/mqtt`]) {
      await assert.rejects(connect(url, { reconnect: false }), (err: MqttError) => {
        assert.equal(err.code, 'MQTT_ERR_CONNECT_FAILED');
        assert.equal(
          err.message,
          `cannot connect to ${url}: connection refused: nothing listens on that port (ECONNREFUSED)`,
        );
        assert.equal((err.cause as { code?: unknown }).code, 'ECONNREFUSED');
        return true;
      });
    }
  });

  test('ws:// with the mqtt subprotocol', async () => {
    const broker = await FakeBroker.start();
    const relay = await webSocketRelay(broker);
    try {
      await roundTrip({ url: relay.url }, broker);
      assert.deepEqual([...relay.protocols], ['mqtt']);
    } finally {
      await relay.close();
      await broker.close();
    }
  });

  test('ws:// pauses and resumes reading: a paused client leaves the bytes with the server (TCP pushes back)', async () => {
    // 8 MiB in 1 KiB frames, more than loopback's socket buffers hold: while paused, most of it must stay unsent.
    const frames = 8192;
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    let sent = 0;
    server.on('connection', (ws) => {
      const frame = Buffer.alloc(1024, 7);
      const pump = () => {
        while (sent < frames && ws.bufferedAmount < 1 << 20) {
          ws.send(frame);
          sent++;
        }
        if (sent < frames) setTimeout(pump, 5);
      };
      pump();
    });
    let received = 0;
    let transport: Awaited<ReturnType<typeof wsTransport>> | undefined;
    try {
      transport = await wsTransport(wsTarget(server), {
        data(chunk) {
          received += chunk.length;
        },
        close() {},
      });
      transport.pause?.();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const whilePaused = received;
      assert.ok(whilePaused < (frames * 1024) / 2, `read ${whilePaused} bytes while paused`);
      transport.resume?.();
      const deadline = Date.now() + 10_000;
      while (received < frames * 1024 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(received, frames * 1024, `everything arrives once resumed (server sent ${sent} frames)`);
    } finally {
      transport?.destroy();
      for (const ws of server.clients) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('ws:// says when the line is backed up and when it drained, so a QoS 0 publisher waits instead of piling up', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    // The server stops reading its TCP socket: what the client sends piles up in its WebSocket.
    const peers: Array<import('ws').WebSocket> = [];
    server.on('connection', (ws) => {
      (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      peers.push(ws);
    });
    let drained = 0;
    let transport: Awaited<ReturnType<typeof wsTransport>> | undefined;
    try {
      transport = await wsTransport(wsTarget(server), { data() {}, close() {}, drained: () => drained++ });
      // 64 MiB at most, far beyond loopback's buffers: write must say false long before.
      let full = false;
      for (let i = 0; i < 1024 && !full; i++) full = transport.write(new Uint8Array(64 * 1024)) === false;
      assert.ok(full, 'write never said the line was backed up');
      assert.equal(drained, 0);
      for (let n = 0; peers.length === 0; n++) {
        if (n > 200) throw new Error('the server never saw the connection');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      for (const ws of peers) (ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
      for (let n = 0; drained === 0; n++) {
        if (n > 2000) throw new Error('drained never came once the server read');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      transport?.destroy();
      for (const ws of server.clients) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('in-memory pair', async () => {
    const broker = await FakeBroker.start();
    const relays: Array<import('node:net').Socket> = [];
    const transport = memoryTransport((conn) => {
      const upstream = tcpConnect({ host: '127.0.0.1', port: broker.port });
      relays.push(upstream);
      conn.onData((d) => upstream.write(d));
      upstream.on('data', (d) => conn.write(d));
      conn.onClose(() => upstream.destroy());
      upstream.on('close', () => conn.end());
    });
    try {
      await roundTrip({ url: 'mqtt://in-memory', transport }, broker);
    } finally {
      for (const r of relays) r.destroy();
      await broker.close();
    }
  });
});
