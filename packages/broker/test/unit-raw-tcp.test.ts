// RawTcpSocket: plain TCP connections on Node's handle, without net.Socket (listeners/raw-tcp.ts). What the broker
// needs of a socket must hold: reads in order as buffers of their own, pause/resume, writes that wait in libuv
// counted by writableLength until the peer reads them, a peer's FIN as 'end', FIN after our queued bytes, a reset
// as 'error' then 'close' for that socket alone, destroy() with writes pending, and the peer's address.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { adoptConnections, RawTcpSocket } from '../src/listeners/raw-tcp.js';
import { startTcpListener } from '../src/listeners/tcp.js';
import { delay } from './support/raw-client.js';

interface Accepted {
  server: Server;
  client: Socket;
  socket: RawTcpSocket;
}

async function listening(): Promise<{ server: Server; port: number; accepted: RawTcpSocket[] }> {
  const server = createServer(() => assert.fail('accepted as a net.Socket'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const accepted: RawTcpSocket[] = [];
  assert.equal(
    adoptConnections(server, (socket) => accepted.push(socket)),
    true,
    'this Node offers the raw handles',
  );
  return { server, port: address.port, accepted };
}

async function accept(): Promise<Accepted> {
  const { server, port, accepted } = await listening();
  const client = tcpConnect({ port, host: '127.0.0.1', noDelay: true });
  client.on('error', () => {});
  await once(client, 'connect');
  await until(() => accepted.length === 1);
  return { server, client, socket: accepted[0]! };
}

async function closeAll({ server, client, socket }: Accepted): Promise<void> {
  client.destroy();
  socket.destroy();
  await new Promise((resolve) => server.close(resolve));
}

/** Runs `body` on one accepted connection, then closes it and its server whatever `body` did. */
async function withAccepted(body: (accepted: Accepted) => Promise<void>): Promise<void> {
  const accepted = await accept();
  try {
    await body(accepted);
  } finally {
    await closeAll(accepted);
  }
}

async function until(check: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await delay(5);
  assert.ok(check(), what);
}

/** Writes 1 MiB chunks while they are taken at once; returns the bytes written (the peer is not reading). */
function fillUntilQueued(socket: RawTcpSocket): Buffer[] {
  const written: Buffer[] = [];
  for (let i = 0; i < 64 && socket.writableLength === 0; i++) {
    const chunk = Buffer.alloc(1024 * 1024, i);
    socket.write(chunk);
    written.push(chunk);
  }
  return written;
}

function event(socket: RawTcpSocket, name: 'end' | 'close' | 'error'): Promise<unknown[]> {
  return new Promise((resolve) => {
    socket.once(name, (...args: never[]) => resolve(args));
  });
}

/** Whether this Node lets the listener take accepted handles (it does on Node 20 without --throw-deprecation). */
async function rawHandlesOffered(): Promise<boolean> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const offered = adoptConnections(server, () => {});
  await new Promise((resolve) => server.close(resolve));
  return offered;
}

const skip = (await rawHandlesOffered())
  ? false
  : 'this Node offers no raw TCP handles (process.binding): plain TCP stays on net.Socket, which the other tests cover';

describe('RawTcpSocket', { skip }, () => {
  test('reads in order, each a buffer of its own, with `this` the socket; pause() stops reading until resume()', async () => {
    await withAccepted(async (accepted) => {
      const chunks: Buffer[] = [];
      const { socket, client } = accepted;
      socket.handleWith({
        data(this: RawTcpSocket, chunk: Buffer) {
          assert.equal(this, socket);
          chunks.push(chunk);
        },
        end: () => {},
        error: () => {},
        close: () => {},
      });
      assert.equal(socket.isPaused(), true, 'accepted not reading');
      socket.resume();
      client.write(Buffer.alloc(100, 0x61));
      await until(() => chunks.length >= 1);
      socket.pause();
      client.write(Buffer.alloc(200, 0x62));
      await delay(100);
      assert.equal(Buffer.concat(chunks).length, 100, 'nothing is read while paused');
      socket.resume();
      await until(() => Buffer.concat(chunks).length === 300);
      assert.deepEqual(chunks[0]?.subarray(0, 100), Buffer.alloc(100, 0x61), 'the first read is intact');
      for (const chunk of chunks) assert.equal(chunk.buffer.byteLength, chunk.length);
      assert.deepEqual(Buffer.concat(chunks), Buffer.concat([Buffer.alloc(100, 0x61), Buffer.alloc(200, 0x62)]));
      assert.equal(socket.remoteAddress, '127.0.0.1');
      assert.equal(socket.remotePort, client.localPort);
    });
  });

  test('without handlers, reads are data events', async () => {
    await withAccepted(async (accepted) => {
      const chunks: Buffer[] = [];
      accepted.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      accepted.socket.resume();
      accepted.client.write('as data events');
      await until(() => chunks.length > 0);
      assert.equal(Buffer.concat(chunks).toString(), 'as data events');
    });
  });

  test('writes the peer does not read wait in writableLength, and all arrive in order once it reads', async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      client.pause();
      const written = fillUntilQueued(socket);
      assert.ok(socket.writableLength > 0, 'the kernel buffers are full: bytes wait in libuv');
      assert.equal(socket.write(Buffer.from('tail')), false, 'write() says the output is backed up');
      written.push(Buffer.from('tail'));
      const expected = Buffer.concat(written);
      const received: Buffer[] = [];
      let length = 0;
      client.on('data', (chunk: Buffer) => {
        received.push(chunk);
        length += chunk.length;
      });
      client.resume();
      await until(() => length === expected.length, 'everything arrives');
      await until(() => socket.writableLength === 0, 'every write completed');
      assert.ok(Buffer.concat(received).equals(expected), 'in order');
    });
  });

  test("the peer's FIN is 'end'; end() sends ours after the queued bytes, then the socket closes", async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      const ended = event(socket, 'end');
      const closed = event(socket, 'close');
      socket.resume();
      client.end();
      await ended;
      assert.equal(socket.destroyed, false, 'half-closed: still open for our answer');
      const received: Buffer[] = [];
      client.on('data', (chunk: Buffer) => received.push(chunk));
      const clientEnded = once(client, 'end');
      socket.write(Buffer.from('answer'));
      socket.end();
      await clientEnded;
      assert.equal(Buffer.concat(received).toString(), 'answer');
      assert.deepEqual(await closed, [false]);
      assert.equal(socket.write(Buffer.from('late')), false, 'nothing is written after close');
    });
  });

  test("end() first: the peer's FIN that answers it closes the socket", async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      const ended = event(socket, 'end');
      const closed = event(socket, 'close');
      // A net.Socket peer (no half-open) answers our FIN with its own.
      const clientEnded = once(client, 'end');
      socket.end();
      socket.resume();
      await clientEnded;
      await ended;
      assert.deepEqual(await closed, [false]);
    });
  });

  test('a reset by the peer is an error and a close of that socket only', async () => {
    const { server, port, accepted } = await listening();
    const clients = [tcpConnect({ port, host: '127.0.0.1' }), tcpConnect({ port, host: '127.0.0.1' })];
    try {
      for (const client of clients) {
        client.on('error', () => {});
        await once(client, 'connect');
      }
      await until(() => accepted.length === 2);
      const [reset, other] = accepted as [RawTcpSocket, RawTcpSocket];
      const errored = event(reset, 'error');
      const closed = event(reset, 'close');
      reset.resume();
      other.resume();
      let otherClosed = false;
      other.on('close', () => {
        otherClosed = true;
      });
      // Which of the two clients was accepted first is up to the kernel: reset the one `reset` is connected to.
      const client = clients.find((c) => c.localPort === reset.remotePort)!;
      client.resetAndDestroy();
      const [error] = (await errored) as [NodeJS.ErrnoException];
      assert.equal(error.code, 'ECONNRESET');
      assert.deepEqual(await closed, [true]);
      await delay(50);
      assert.equal(otherClosed, false, 'the other connection is untouched');
      assert.equal(other.write(Buffer.from('still here')), true);
    } finally {
      for (const client of clients) client.destroy();
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a write to a peer that reset fails as an error and a close, not an exception', async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      const closed = event(socket, 'close');
      const errors: NodeJS.ErrnoException[] = [];
      socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error));
      client.resetAndDestroy();
      await delay(50);
      // Not reading: the reset is only seen by writing.
      for (let i = 0; i < 10 && !socket.destroyed; i++) {
        socket.write(Buffer.alloc(1024));
        await delay(10);
      }
      await closed;
      assert.ok(errors.length === 1 && ['EPIPE', 'ECONNRESET'].includes(errors[0]?.code ?? ''), String(errors));
    });
  });

  test('destroy() with writes pending closes at once; their completion does nothing more', async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      client.pause();
      fillUntilQueued(socket);
      assert.ok(socket.writableLength > 0);
      let errors = 0;
      let closes = 0;
      socket.on('error', () => errors++);
      socket.on('close', () => closes++);
      socket.destroy();
      assert.equal(socket.write(Buffer.from('x')), false);
      socket.end();
      socket.destroy();
      await until(() => closes === 1);
      await delay(50);
      assert.equal(closes, 1);
      assert.equal(errors, 0);
      assert.equal(socket.writableLength, 0, 'the cancelled writes are no longer counted');
    });
  });

  test('listeners: once() runs once, off() removes, each is called with the socket as `this`', async () => {
    await withAccepted(async (accepted) => {
      const { socket } = accepted;
      const calls: string[] = [];
      const removed = () => calls.push('removed');
      socket.on('close', removed);
      socket.off('close', removed);
      socket.on('close', function (this: RawTcpSocket) {
        assert.equal(this, socket);
        calls.push('on');
      });
      socket.once('close', () => calls.push('once'));
      assert.equal(socket.listenerCount('close'), 2);
      assert.throws(() => socket.on('drain' as 'close', () => {}), TypeError);
      socket.destroy();
      await until(() => calls.length === 2);
      assert.deepEqual(calls, ['on', 'once']);
      assert.equal(socket.listenerCount('close'), 1);
    });
  });

  test('handleWith: one object handles every event before the listeners, with the socket as `this`', async () => {
    await withAccepted(async (accepted) => {
      const { socket, client } = accepted;
      const calls: string[] = [];
      const handlers = {
        data(this: RawTcpSocket, chunk: Buffer) {
          assert.equal(this, socket);
          calls.push(`data ${chunk.toString()}`);
        },
        end(this: RawTcpSocket) {
          calls.push('end');
          this.end();
        },
        error(this: RawTcpSocket) {
          calls.push('error');
        },
        close(this: RawTcpSocket, hadError: boolean) {
          calls.push(`close ${hadError}`);
        },
      };
      socket.handleWith(handlers);
      socket.on('data', () => calls.push('data listener'));
      socket.on('end', () => calls.push('end listener'));
      socket.on('close', () => calls.push('close listener'));
      socket.resume();
      client.end('hi');
      await until(() => calls.includes('close listener'));
      assert.deepEqual(calls, ['data hi', 'end', 'end listener', 'close false', 'close listener']);
    });
  });

  test('destroy(error): the error handler, then the listeners, get it, and the close follows', async () => {
    await withAccepted(async (accepted) => {
      const { socket } = accepted;
      const calls: string[] = [];
      socket.handleWith({
        data: () => {},
        end: () => {},
        error: (error: Error) => calls.push(`error handler ${error.message}`),
        close: (hadError: boolean) => calls.push(`close handler ${hadError}`),
      });
      socket.on('error', (error: Error) => calls.push(`error listener ${error.message}`));
      socket.destroy(new Error('gone'));
      await until(() => calls.length === 3);
      assert.deepEqual(calls, ['error handler gone', 'error listener gone', 'close handler true']);
    });
  });

  test('a server that is not listening is not taken over', () => {
    const server = createServer();
    assert.equal(
      adoptConnections(server, () => {}),
      false,
    );
  });

  test("the broker's plain TCP listener hands over RawTcpSockets", async () => {
    const streams: unknown[] = [];
    const listener = await startTcpListener({ protocol: 'mqtt', host: '127.0.0.1', port: 0 }, (stream) => {
      streams.push(stream);
      stream.destroy();
    });
    try {
      const client = tcpConnect({ port: listener.port, host: '127.0.0.1' });
      client.on('error', () => {});
      await once(client, 'connect');
      await until(() => streams.length === 1);
      assert.ok(streams[0] instanceof RawTcpSocket);
      client.destroy();
    } finally {
      await listener.close();
    }
  });

  test('a process that makes deprecations throw keeps net.Socket, and its broker still works; others get raw sockets', () => {
    const script = fileURLToPath(new URL('./support/tcp-listener-kind.ts', import.meta.url));
    const run = (flags: string[]) =>
      execFileSync(process.execPath, [...flags, '--import', 'tsx', script], {
        encoding: 'utf8',
        timeout: 20_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    // process.binding is DEP0111: thrown (later, uncatchable) under --throw-deprecation, so it is not called there.
    assert.equal(run(['--pending-deprecation', '--throw-deprecation']), 'net.Socket CONNACK');
    assert.equal(run([]), 'RawTcpSocket CONNACK');
  });
});
