// CONNECT handling, both versions: acceptance, protocol level, client id rules, session present, takeover,
// CONNECT timeout, keepalive, server keep alive, authentication results.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { encode } from '@otalink/mqtt';
import {
  connectClient,
  connected,
  delay,
  RawClient,
  startBroker,
  type TestBroker,
  text,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`01 connect, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker({
        limits: { maxClientIdLength: 23, connectTimeoutMs: 300, maxKeepAlive: 100 },
        authenticate: (request) =>
          request.username === 'good' && new TextDecoder().decode(request.password) === 'secret'
            ? { ok: true }
            : { ok: false, reasonCode: 0x86 },
      });
    });
    after(() => b.close());

    test('accepts a CONNECT with CONNACK success and no session present', async () => {
      const { client, connack } = await connectClient(b.port, { version, clientId: `accept-${version}` });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, false);
      client.send({ type: 'pingreq' });
      await client.expect('pingresp');
      client.end();
    });

    if (version === 5) {
      test('5.0 CONNACK carries the server limits', async () => {
        const { client, connack } = await connectClient(b.port, { version, clientId: 'limits-5' });
        assert.equal(connack.properties?.receiveMaximum, 100);
        assert.equal(connack.properties?.maximumPacketSize, 1024 * 1024);
        assert.equal(connack.properties?.topicAliasMaximum, 100);
        client.end();
      });

      test('a 5.0 CONNACK with only the limits (shared bytes) still tells whether the session was present', async () => {
        const expiry = { sessionExpiryInterval: 60 };
        for (const [clean, present] of [
          [true, false],
          [false, true],
          [false, true],
        ] as const) {
          const { client, connack } = await connectClient(b.port, {
            version,
            clientId: 'plain-5',
            clean,
            properties: expiry,
          });
          assert.equal(connack.reasonCode, 0);
          assert.equal(connack.sessionPresent, present);
          assert.deepEqual(connack.properties, {
            receiveMaximum: 100,
            maximumPacketSize: 1024 * 1024,
            topicAliasMaximum: 100,
          });
          client.send({ type: 'disconnect' });
          await client.expectClose();
        }
      });

      test('Server Keep Alive tells a client its keepalive was capped', async () => {
        const { client, connack } = await connectClient(b.port, { version, clientId: 'ska-5', keepalive: 1000 });
        assert.equal(connack.properties?.serverKeepAlive, 100);
        client.end();
      });
    } else {
      // 3.1.1 has no Server Keep Alive: a client cannot be told a shorter keepalive, and would be cut off at 1.5x one
      // it never heard of. Refused instead, as Mosquitto refuses it (return code 0x02); none at all (0) too.
      test('max_keepalive: a keepalive over the cap, or 0, is refused with 0x02; the cap itself is taken', async () => {
        for (const keepalive of [101, 0]) {
          const { client, connack } = await connectClient(b.port, {
            version,
            clientId: `ka-cap-${keepalive}`,
            keepalive,
          });
          assert.equal(connack.reasonCode, 0x02, `keepalive ${keepalive}`);
          await client.expectClose();
        }
        const { client, connack } = await connectClient(b.port, { version, clientId: 'ka-cap-100', keepalive: 100 });
        assert.equal(connack.reasonCode, 0);
        client.send({ type: 'pingreq' });
        await client.expect('pingresp');
        client.end();
      });
    }

    test('the first packet must be CONNECT: anything else closes the connection', async () => {
      const client = await RawClient.open(b.port, version);
      client.send({ type: 'pingreq' });
      const before = await client.expectClose();
      assert.deepEqual(before, []);
    });

    test('a second CONNECT is a protocol error', async () => {
      const client = await connected(b.port, { version, clientId: `twice-${version}` });
      client.send({
        type: 'connect',
        protocolVersion: version,
        clientId: `twice-${version}`,
        clean: true,
        keepalive: 0,
      });
      const packets = await client.expectClose();
      if (version === 5)
        assert.deepEqual(
          packets.map((p) => p.type === 'disconnect' && p.reasonCode),
          [0x82],
        );
      else assert.deepEqual(packets, []);
    });

    test('a client id longer than the limit is refused', async () => {
      const { client, connack } = await connectClient(b.port, { version, clientId: 'x'.repeat(24) });
      assert.equal(connack.reasonCode, version === 5 ? 0x85 : 0x02);
      await client.expectClose();
    });

    test('a zero-length client id with a clean session is given an id', async () => {
      const { client, connack } = await connectClient(b.port, { version, clientId: '', clean: true });
      assert.equal(connack.reasonCode, 0);
      if (version === 5) assert.match(connack.properties?.assignedClientIdentifier ?? '', /^otalink-/);
      client.end();
    });

    test('a zero-length client id without clean session', async () => {
      const { client, connack } = await connectClient(b.port, {
        version,
        clientId: '',
        clean: false,
        properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined,
      });
      if (version === 4) {
        assert.equal(connack.reasonCode, 0x02);
        await client.expectClose();
      } else {
        assert.equal(connack.reasonCode, 0);
        assert.ok(connack.properties?.assignedClientIdentifier);
        client.end();
      }
    });

    test('session present is set when a persistent session is resumed, not after a clean start', async () => {
      const clientId = `present-${version}`;
      const persistent = {
        version,
        clientId,
        clean: false,
        properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined,
      };
      const first = await connectClient(b.port, persistent);
      assert.equal(first.connack.sessionPresent, false);
      first.client.send({ type: 'disconnect' });
      await first.client.closedPromise;
      const second = await connectClient(b.port, persistent);
      assert.equal(second.connack.sessionPresent, true);
      second.client.send({ type: 'disconnect' });
      await second.client.closedPromise;
      const third = await connectClient(b.port, { ...persistent, clean: true });
      assert.equal(third.connack.sessionPresent, false);
      third.client.end();
    });

    test('a second connection with the same client id takes over the first', async () => {
      const clientId = `takeover-${version}`;
      const first = await connected(b.port, { version, clientId });
      const second = await connected(b.port, { version, clientId });
      const packets = await first.expectClose();
      if (version === 5) {
        assert.equal(packets.length, 1);
        assert.equal(packets[0]?.type === 'disconnect' && packets[0].reasonCode, 0x8e);
      }
      second.send({ type: 'pingreq' });
      await second.expect('pingresp');
      second.end();
    });

    test('CONNECT, QoS 1 PUBLISH and DISCONNECT in one write: CONNACK and PUBACK arrive, then a clean FIN', async () => {
      const client = await RawClient.open(b.port, version);
      const frames = [
        encode(
          { type: 'connect', protocolVersion: version, clientId: `one-write-${version}`, clean: true, keepalive: 60 },
          version,
        ),
        encode(
          { type: 'publish', topic: 'one/write', payload: text('x'), qos: 1, retain: false, dup: false, packetId: 7 },
          version,
        ),
        encode({ type: 'disconnect' }, version),
      ];
      const ended = once(client.socket, 'end');
      client.socket.write(Buffer.concat(frames));
      const packets = await client.expectClose();
      await ended;
      assert.deepEqual(
        packets.map((p) => p.type),
        ['connack', 'puback'],
      );
      assert.equal(packets[1]?.type === 'puback' && packets[1].packetId, 7);
      // Closed with FIN after the bytes, not reset.
      assert.equal(client.socket.errored, null);
    });

    test('a socket that sends no CONNECT is closed after the CONNECT timeout', async () => {
      const client = await RawClient.open(b.port, version);
      const packets = await client.expectClose(5000);
      assert.deepEqual(packets, []);
    });

    test('keepalive: silence for 1.5x the keepalive closes the connection; PINGREQ keeps it open', async () => {
      // Keepalive 2 s: closed after 3 s of silence, so a machine stalled for a second between two pings (600 ms
      // apart) does not close it early.
      const client = await connected(b.port, { version, clientId: `ka-${version}`, keepalive: 2 });
      for (let i = 0; i < 3; i++) {
        await delay(600);
        client.send({ type: 'pingreq' });
        await client.expect('pingresp');
      }
      const packets = await client.expectClose(8000);
      if (version === 5)
        assert.deepEqual(
          packets.map((p) => p.type === 'disconnect' && p.reasonCode),
          [0x8d],
        );
    });

    test('bad credentials are refused with the version-specific code', async () => {
      const { client, connack } = await connectClient(b.port, {
        version,
        clientId: `bad-${version}`,
        username: 'good',
        password: text('wrong'),
      });
      assert.equal(connack.reasonCode, version === 5 ? 0x86 : 0x04);
      await client.expectClose();
      const ok = await connected(b.port, {
        version,
        clientId: `good-${version}`,
        username: 'good',
        password: text('secret'),
      });
      ok.end();
    });

    test('unsupported protocol levels get CONNACK 0x01 (3.1.1 form) or 0x84 and a close', async () => {
      const client = await RawClient.open(b.port, 4);
      // MQIsdp level 3 (MQTT 3.1).
      const mqisdp = [0x10, 15, 0, 6, ...text('MQIsdp'), 3, 0x02, 0, 60, 0, 1, 0x61];
      client.writeRaw(mqisdp);
      const packets = await client.expectClose();
      assert.equal(packets.length, 1);
      assert.equal(packets[0]?.type === 'connack' && packets[0].reasonCode, 0x01);
      const future = await RawClient.open(b.port, 5);
      future.writeRaw([0x10, 14, 0, 4, ...text('MQTT'), 6, 0x02, 0, 60, 0, 0, 1, 0x61]);
      const refused = await future.expectClose();
      assert.equal(refused.length, 1);
      assert.equal(refused[0]?.type === 'connack' && refused[0].reasonCode, 0x84);
    });
  });
}

describe('01 connect: anonymous access', () => {
  test('without allowAnonymous and without an authenticate hook every CONNECT is refused', async () => {
    const b = await startBroker({ allowAnonymous: false });
    try {
      for (const version of [4, 5] as const) {
        const { client, connack } = await connectClient(b.port, { version, clientId: 'anon' });
        assert.equal(connack.reasonCode, version === 5 ? 0x87 : 0x05);
        await client.expectClose();
      }
    } finally {
      await b.close();
    }
  });
});

test('a broker stalled past a client’s keepalive reads the PINGREQs that came meanwhile before judging it silent', async () => {
  const b = await startBroker();
  const connect = Buffer.from(
    encode({ type: 'connect', protocolVersion: 4, clientId: 'through-a-stall', clean: true, keepalive: 1 }, 4),
  ).toString('hex');
  // The client is another process, so it goes on pinging (every 250 ms) while this one, the broker's, is stalled.
  const script = `
    const s = require('node:net').connect(${b.port}, '127.0.0.1', () => {
      s.write(Buffer.from('${connect}', 'hex'));
      setInterval(() => s.write(Buffer.from([0xc0, 0])), 250);
    });
    s.once('data', () => console.log('connack'));
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => { console.log('closed'); process.exit(0); });
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  try {
    for (const deadline = Date.now() + 20_000; !out.includes('connack'); await delay(20)) {
      assert.ok(Date.now() < deadline, 'the client process never got its CONNACK');
    }
    // Two stalls of 1.8 s (past the 1.5 s deadline) in an I/O-phase callback, as a long GC or a burst of work
    // would be: after each, the keepalive tick is due before the reads that waited.
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          const until = performance.now() + 1800;
          while (performance.now() < until) {}
          resolve();
        }),
      );
      await delay(500);
    }
    assert.equal(out.includes('closed'), false, 'the broker cut off a client whose PINGREQs it had not read yet');
    assert.deepEqual(b.broker.clients(), ['through-a-stall']);
  } finally {
    child.kill();
    await b.close();
  }
});
