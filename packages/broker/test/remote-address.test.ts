// The peer's address of a plain TCP connection is read from the socket only when something can see it (a getpeername
// syscall per connect otherwise): the authenticate and authorize hooks, the will's publish, client events and logs
// still get it, also when they see the identity after the socket has closed.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { encode } from '@otalink/mqtt';
import { pino } from 'pino';
import { Connection } from '../src/connection.js';
import type { ClientIdentity } from '../src/index.js';
import { bareCore } from './support/bare-core.js';
import { connectClient, connected, delay, RawClient, startBroker, text } from './support/raw-client.js';

const LOOPBACK = '127.0.0.1';

/** Waits until `check` holds (the broker handles a close on its own turn). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await delay(10);
  assert.ok(check());
}

describe('remote address, read when seen', () => {
  test('the authenticate hook gets it', async () => {
    const seen: Array<string | undefined> = [];
    const b = await startBroker({
      authenticate: (request) => {
        seen.push(request.remoteAddress);
        return { ok: true };
      },
    });
    try {
      const client = await connected(b.port, { clientId: 'auth-addr', username: 'u', password: text('p') });
      client.end();
      assert.deepEqual(seen, [LOOPBACK]);
    } finally {
      await b.close();
    }
  });

  test('the authorize hook sees it on PUBLISH, and on the will published after the socket closed', async () => {
    const seen: Array<[string, string | undefined]> = [];
    const b = await startBroker({
      authorize: (client: ClientIdentity, _action, topic) => {
        seen.push([topic, client.remoteAddress]);
        return true;
      },
    });
    try {
      const client = await connected(b.port, {
        clientId: 'acl-addr',
        will: { topic: 'addr/will', payload: text('gone'), qos: 0, retain: false },
      });
      client.send({ type: 'publish', topic: 'addr/t', payload: text('x'), qos: 0, retain: false, dup: false });
      await until(() => seen.length === 1);
      client.end();
      await until(() => seen.length === 2);
      assert.deepEqual(seen, [
        ['addr/t', LOOPBACK],
        ['addr/will', LOOPBACK],
      ]);
    } finally {
      await b.close();
    }
  });

  test('client events carry it, also with a disconnect listener added after the client connected', async () => {
    const b = await startBroker();
    try {
      const [first] = await Promise.all([
        once(b.broker.events, 'clientConnected'),
        connected(b.port, { clientId: 'event-addr' }),
      ]);
      assert.equal((first[0] as ClientIdentity).remoteAddress, LOOPBACK);

      // Connected while nobody listened: the address is read when the listener can see it.
      const byDisconnect = await connected(b.port, { clientId: 'late-disconnect' });
      const byFin = await connected(b.port, { clientId: 'late-fin' });
      const gone: Array<[string, string | undefined]> = [];
      b.broker.events.on('clientDisconnected', (client) => gone.push([client.clientId, client.remoteAddress]));
      byDisconnect.send({ type: 'disconnect' });
      await byDisconnect.expectClose();
      (byFin.socket as Duplex).end();
      await until(() => gone.length === 2);
      assert.deepEqual(gone.sort(), [
        ['late-disconnect', LOOPBACK],
        ['late-fin', LOOPBACK],
      ]);
      byFin.end();
    } finally {
      await b.close();
    }
  });

  test('a refused CONNECT is logged with it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const b = await startBroker({ allowAnonymous: false, logger: pino({ level: 'info' }, sink) });
    try {
      const { client, connack } = await connectClient(b.port, { clientId: 'refused-addr' });
      assert.notEqual(connack.reasonCode, 0);
      await client.expectClose();
      const refused = lines.map((line) => JSON.parse(line)).find((entry) => entry.clientId === 'refused-addr');
      assert.equal(refused?.remote, LOOPBACK);
    } finally {
      await b.close();
    }
  });

  test('an unsupported protocol level is logged with it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const b = await startBroker({ logger: pino({ level: 'info' }, sink) });
    try {
      const client = await RawClient.open(b.port, 4);
      // CONNECT of protocol level 3 (MQIsdp would be its name; level is what is checked).
      client.writeRaw([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00]);
      await client.expectClose();
      const entry = lines.map((line) => JSON.parse(line)).find((e) => e.code === 'BROKER_ERR_UNSUPPORTED_PROTOCOL');
      assert.equal(entry?.remote, LOOPBACK);
    } finally {
      await b.close();
    }
  });

  test('a connection nothing looks at never asks its socket', async () => {
    const core = bareCore();
    let asked = 0;
    const socket = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() });
    Object.defineProperty(socket, 'remoteAddress', {
      get: () => {
        asked++;
        return '192.0.2.7';
      },
    });
    const transport = {
      protocol: 'mqtt' as const,
      remoteAddress: undefined,
      certificateIdentity: undefined,
      identityFromCertificate: false,
    };
    const connection = new Connection(core, socket, transport, false);
    socket.emit(
      'data',
      encode({ type: 'connect', protocolVersion: 4, clientId: 'quiet', clean: true, keepalive: 0 }, 4),
    );
    assert.equal(connection.connected, true);
    assert.equal(asked, 0);
    assert.equal(connection.identity.remoteAddress, undefined);
    // Asked once, then kept.
    assert.equal(connection.remoteAddress, '192.0.2.7');
    assert.equal(connection.remoteAddress, '192.0.2.7');
    assert.equal(connection.identity.remoteAddress, '192.0.2.7');
    assert.equal(asked, 1);
    connection.destroy();
  });
});
