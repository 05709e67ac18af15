// readDirect: a plain TCP socket read into one shared buffer and handed over chunk by chunk, without Readable's
// machinery. Each chunk must be a buffer of its own (the decoder keeps slices of it), pause() must stop reading and
// resume() restart it, and end/close must still arrive; where it cannot apply, it changes nothing.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { encode } from '@otalink/mqtt';
import { Connection, type TransportInfo } from '../src/connection.js';
import { readDirect } from '../src/direct-read.js';
import { bareCore } from './support/bare-core.js';
import { delay } from './support/raw-client.js';

interface Accepted {
  server: Server;
  client: Socket;
  socket: Socket;
}

async function accept(pauseOnConnect: boolean): Promise<Accepted> {
  const server = createServer({ pauseOnConnect });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const client = tcpConnect({ port: address.port, host: '127.0.0.1', noDelay: true });
  const [socket] = (await once(server, 'connection')) as [Socket];
  await once(client, 'connect').catch(() => undefined);
  return { server, client, socket };
}

async function closeAll({ server, client, socket }: Accepted): Promise<void> {
  client.destroy();
  socket.destroy();
  await new Promise((resolve) => server.close(resolve));
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await delay(5);
  assert.ok(check());
}

describe('readDirect', () => {
  test('a paused accepted socket: each read is a buffer of its own, later reads leave it intact', async () => {
    const accepted = await accept(true);
    try {
      const chunks: Buffer[] = [];
      const taken = readDirect(accepted.socket, function (this: Socket, chunk: Buffer) {
        assert.equal(this, accepted.socket);
        chunks.push(chunk);
      });
      assert.equal(taken, true);
      accepted.socket.resume();
      accepted.client.write(Buffer.alloc(100, 0x61));
      await until(() => chunks.length >= 1);
      accepted.client.write(Buffer.alloc(200, 0x62));
      await until(() => chunks.reduce((n, c) => n + c.length, 0) >= 300);
      const first = chunks[0];
      assert.ok(first !== undefined);
      // Still the first bytes, though the second read went through the same shared buffer.
      assert.deepEqual(first, Buffer.alloc(100, 0x61));
      for (const chunk of chunks) {
        assert.equal(chunk.byteOffset, 0);
        assert.equal(chunk.buffer.byteLength, chunk.length);
      }
      assert.deepEqual(Buffer.concat(chunks), Buffer.concat([Buffer.alloc(100, 0x61), Buffer.alloc(200, 0x62)]));
    } finally {
      await closeAll(accepted);
    }
  });

  test('pause() stops reading until resume(), and end and close still come', async () => {
    const accepted = await accept(true);
    try {
      let bytes = 0;
      assert.ok(
        readDirect(accepted.socket, (chunk: Buffer) => {
          bytes += chunk.length;
        }),
      );
      accepted.socket.resume();
      accepted.client.write(Buffer.alloc(10));
      await until(() => bytes === 10);
      accepted.socket.pause();
      accepted.client.write(Buffer.alloc(20));
      await delay(100);
      assert.equal(bytes, 10, 'nothing is read while paused');
      const ended = once(accepted.socket, 'end');
      const closed = once(accepted.socket, 'close');
      accepted.socket.resume();
      await until(() => bytes === 30);
      accepted.client.end();
      await ended;
      accepted.socket.end();
      await closed;
    } finally {
      await closeAll(accepted);
    }
  });

  test('a socket already reading, or a stream that is no socket, is left as it was', async () => {
    const accepted = await accept(false);
    try {
      const chunks: Buffer[] = [];
      assert.equal(
        readDirect(accepted.socket, () => assert.fail('not taken')),
        false,
      );
      accepted.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      accepted.client.write('still data events');
      await until(() => chunks.length > 0);
      assert.equal(Buffer.concat(chunks).toString(), 'still data events');
    } finally {
      await closeAll(accepted);
    }
    assert.equal(
      readDirect(new PassThrough(), () => {}),
      false,
    );
  });

  test('a broker connection on a paused TCP socket that cannot be read directly is read through data events', async () => {
    const accepted = await accept(true);
    const core = bareCore();
    try {
      // As on a Node whose stream handles lack the user-buffer read: the connection must still start reading.
      const handle = (accepted.socket as unknown as { _handle: { useUserBuffer?: unknown } })._handle;
      Object.defineProperty(handle, 'useUserBuffer', { value: undefined });
      const transport: TransportInfo = {
        protocol: 'mqtt',
        remoteAddress: undefined,
        certificateIdentity: undefined,
        identityFromCertificate: false,
      };
      core.connections.add(new Connection(core, accepted.socket, transport, false));
      const received: Buffer[] = [];
      accepted.client.on('data', (chunk: Buffer) => received.push(chunk));
      accepted.client.write(
        encode({ type: 'connect', protocolVersion: 4, clientId: 'fallback', clean: true, keepalive: 0 }, 4),
      );
      await until(() => Buffer.concat(received).length >= 4);
      assert.deepEqual([...Buffer.concat(received).subarray(0, 4)], [0x20, 2, 0, 0], 'CONNACK accepted');
    } finally {
      await closeAll(accepted);
    }
  });
});
