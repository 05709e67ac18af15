// The WebSocket transport where a server or the network misbehaves: the client must end, report and reconnect as it
// does over TCP, not wait for the `ws` package's 30 s close handshake or lose a refusal to the close behind it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { connect, type MqttClient } from '../../src/client/index.js';
import type { MqttError } from '../../src/codec/errors.js';
import { withSilentServer } from './fake-broker.js';

const accept = (key: string) =>
  createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

/**
 * A hand-made WebSocket server: it completes the upgrade, answers the CONNECT with a 3.1.1 CONNACK, and then does
 * what `after` says with the raw socket (send a bad frame, a close frame, nothing).
 */
async function rawWsServer(
  after: (socket: Socket) => void,
  connack: (connect: Buffer) => Buffer = () => Buffer.from([0x82, 4, 0x20, 2, 0, 0]),
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer();
  server.on('upgrade', (req, socket: Socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept(String(req.headers['sec-websocket-key']))}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`,
    );
    socket.once('data', (frame: Buffer) => {
      socket.write(connack(frame));
      after(socket);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/mqtt`,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function until(ready: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('ws://: end() while the first attempt waits for the upgrade ends at once', async () => {
  await withSilentServer(async (port) => {
    const client = await connect({
      url: `ws://127.0.0.1:${port}/mqtt`,
      retryFirstConnect: true,
      connectTimeoutMs: 60_000,
      store: false,
    });
    assert.equal(client.state, 'connecting');
    let ended = false;
    void client.end().then(() => {
      ended = true;
    });
    // Before: the abort fired while `ws` was imported and was never seen; end() waited for ever.
    await until(() => ended, 10_000, 'end()');
    assert.equal(client.state, 'closed');
  });
});

test('ws://: a refused CONNECT that the server follows with its close is reported as the refusal, every time', async () => {
  // The CONNECT's protocol level (byte 8 of its masked frame is hard to read: unmasked, it is at 2 + 4 + 6).
  const refusal = (frame: Buffer) => {
    const mask = frame.subarray(2, 6);
    const level = frame[2 + 4 + 8]! ^ mask[8 % 4]!;
    return level === 5 ? Buffer.from([0x82, 5, 0x20, 3, 0, 0x87, 0]) : Buffer.from([0x82, 4, 0x20, 2, 0, 5]);
  };
  const server = await rawWsServer((socket) => socket.destroy(), refusal);
  try {
    for (const version of [4, 5] as const) {
      const codes: string[] = [];
      for (let i = 0; i < 25; i++) {
        await connect({ url: server.url, protocolVersion: version, reconnect: false, store: false }).then(
          async (c: MqttClient) => {
            codes.push('connected');
            await c.end({ force: true });
          },
          (err: MqttError) => codes.push(`${err.code} ${err.reasonCode}`),
        );
      }
      const expected = `MQTT_ERR_CONNECTION_REFUSED ${version === 5 ? 0x87 : 5}`;
      assert.deepEqual(
        codes.filter((c) => c !== expected),
        [],
        `v${version}`,
      );
    }
  } finally {
    await server.close();
  }
});

test('ws://: a server that never answers the close handshake does not hold end() (2 s, as over TCP)', async () => {
  const server = await rawWsServer(() => {});
  try {
    const client = await connect({ url: server.url, protocolVersion: 4, reconnect: false, store: false });
    let ended = false;
    void client.end().then(() => {
      ended = true;
    });
    // `ws` waits 30 s for the server's close frame; the transport drops the socket after 2.
    await until(() => ended, 10_000, 'end()');
  } finally {
    await server.close();
  }
});

test('ws://: a bad frame from the server, or its close frame with TCP left open, loses the line at once', async () => {
  for (const [what, frame] of [
    ['a frame with RSV1 set', Buffer.from([0x82 | 0x40, 2, 0xc0, 0])],
    ['a close frame (1001), TCP left open', Buffer.from([0x88, 2, 0x03, 0xe9])],
    ['a text frame', Buffer.from([0x81, 2, 0x68, 0x69])],
  ] as const) {
    const server = await rawWsServer((socket) => setTimeout(() => socket.write(frame), 100));
    try {
      const client = await connect({ url: server.url, protocolVersion: 4, reconnect: false, store: false });
      const reasons: Array<string | undefined> = [];
      client.on('offline', (reason) => reasons.push(reason?.message));
      await new Promise((r) => setTimeout(r, 300));
      // A close frame is seen at the next write at the latest (here a QoS 1 publish; else the keepalive's PINGREQ).
      const q1 = client.publish('x', 'after', { qos: 1 }).catch((err: MqttError) => err.code);
      // Before: connected for 30 s (`ws`'s close handshake), the QoS 1 publish waiting all along.
      await until(() => client.state !== 'connected', 5_000, `${what}: the line reported lost`);
      assert.equal(await q1, 'MQTT_ERR_CLIENT_CLOSED', what);
      assert.equal(reasons.length, 1, what);
      await client.end({ force: true });
    } finally {
      await server.close();
    }
  }
});

test("ws://: the server's close code and reason are in the report of the lost line", async () => {
  const reason = Buffer.from('message too big');
  const frame = Buffer.concat([Buffer.from([0x88, 2 + reason.length, 0x03, 0xf1]), reason]);
  const server = await rawWsServer((socket) =>
    setTimeout(() => {
      socket.write(frame);
      socket.end();
    }, 100),
  );
  try {
    const client = await connect({ url: server.url, protocolVersion: 4, reconnect: false, store: false });
    const lost = await new Promise<MqttError>((resolve) => client.once('offline', (e) => resolve(e as MqttError)));
    assert.equal(lost.code, 'MQTT_ERR_CONNECTION_CLOSED');
    assert.match(lost.message, /the server closed the WebSocket with code 1009: message too big$/);
    await client.end({ force: true });
  } finally {
    await server.close();
  }
});
