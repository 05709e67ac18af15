// `-d`: the trace's lines for each packet, in libmosquitto 2.0's words (the expected lines are what mosquitto_pub and
// mosquitto_sub -d printed for the same exchanges), decoded from the bytes as they go out and come in.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { encode, type Packet, type ProtocolVersion } from '@otalink/mqtt';
import { PacketTrace, tracingTransport } from '../src/commands/packet-trace.js';

function traced(version: ProtocolVersion, exchange: Array<['out' | 'in', Packet]>): string[] {
  const lines: string[] = [];
  const trace = new PacketTrace(version, (line) => lines.push(line));
  for (const [direction, packet] of exchange) {
    const bytes = encode(packet, version);
    if (direction === 'out') trace.sent(bytes);
    else trace.received(bytes);
  }
  return lines;
}

const payload = new TextEncoder().encode('hello');

test('a QoS 2 publish, as mosquitto_pub -d prints it', () => {
  const connect: Packet = { type: 'connect', protocolVersion: 4, clientId: 'dpub', clean: true, keepalive: 60 };
  assert.deepEqual(
    traced(4, [
      ['out', connect],
      ['in', { type: 'connack', sessionPresent: false, reasonCode: 0 }],
      ['out', { type: 'publish', topic: 'd/a', payload, qos: 2, retain: false, dup: false, packetId: 1 }],
      ['in', { type: 'pubrec', packetId: 1 }],
      ['out', { type: 'pubrel', packetId: 1 }],
      ['in', { type: 'pubcomp', packetId: 1 }],
      ['out', { type: 'disconnect' }],
    ]),
    [
      'Client dpub sending CONNECT',
      'Client dpub received CONNACK (0)',
      "Client dpub sending PUBLISH (d0, q2, r0, m1, 'd/a', ... (5 bytes))",
      'Client dpub received PUBREC (Mid: 1)',
      'Client dpub sending PUBREL (m1)',
      'Client dpub received PUBCOMP (Mid: 1, RC:0)',
      'Client dpub sending DISCONNECT',
    ],
  );
});

test('a subscriber in MQTT 5 with the id the server assigned, as mosquitto_sub -d prints it', () => {
  const lines: string[] = [];
  const trace = new PacketTrace(5, (line) => lines.push(line));
  trace.sent(encode({ type: 'connect', protocolVersion: 5, clientId: '', clean: true, keepalive: 60 }, 5));
  const connack: Packet = {
    type: 'connack',
    sessionPresent: false,
    reasonCode: 0,
    properties: { assignedClientIdentifier: 'auto-1' },
  };
  trace.received(encode(connack, 5));
  // Several packets in one chunk, as the client coalesces its writes and the server's arrive.
  trace.sent(
    Buffer.concat([
      encode(
        {
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topicFilter: 'd/#', qos: 2 },
            { topicFilter: 'e/+', qos: 1, noLocal: true, retainHandling: 2 },
          ],
        },
        5,
      ),
      encode({ type: 'unsubscribe', packetId: 2, topicFilters: ['zz'] }, 5),
    ]),
  );
  trace.received(
    Buffer.concat([
      encode({ type: 'suback', packetId: 1, reasonCodes: [2, 1] }, 5),
      encode({ type: 'unsuback', packetId: 2, reasonCodes: [0x11] }, 5),
      encode({ type: 'publish', topic: 'd/a', payload, qos: 1, retain: true, dup: false, packetId: 2 }, 5),
      encode({ type: 'publish', topic: 'd/b', payload: new Uint8Array(0), qos: 0, retain: false, dup: false }, 5),
    ]),
  );
  trace.sent(encode({ type: 'puback', packetId: 2 }, 5));
  // A topic alias, set by the first PUBLISH and used by the second: both are traced with the topic.
  for (const topic of ['d/alias', '']) {
    trace.received(
      encode({ type: 'publish', topic, payload, qos: 0, retain: false, dup: false, properties: { topicAlias: 4 } }, 5),
    );
  }
  trace.received(encode({ type: 'publish', topic: 'd/c', payload, qos: 2, retain: false, dup: true, packetId: 3 }, 5));
  trace.sent(encode({ type: 'pubrec', packetId: 3 }, 5));
  trace.received(encode({ type: 'pubrel', packetId: 3 }, 5));
  trace.sent(encode({ type: 'pubcomp', packetId: 3 }, 5));
  trace.sent(encode({ type: 'pingreq' }, 5));
  trace.received(encode({ type: 'pingresp' }, 5));
  trace.received(encode({ type: 'disconnect', reasonCode: 0x8b }, 5));
  assert.deepEqual(lines, [
    'Client (null) sending CONNECT',
    'Client auto-1 received CONNACK (0)',
    'Client auto-1 sending SUBSCRIBE (Mid: 1, Topic: d/#, QoS: 2, Options: 0x00)',
    'Client auto-1 sending SUBSCRIBE (Mid: 1, Topic: e/+, QoS: 1, Options: 0x24)',
    'Client auto-1 sending UNSUBSCRIBE (Mid: 2, Topic: zz)',
    'Client auto-1 received SUBACK',
    'Subscribed (mid: 1): 2, 1',
    'Client auto-1 received UNSUBACK',
    "Client auto-1 received PUBLISH (d0, q1, r1, m2, 'd/a', ... (5 bytes))",
    "Client auto-1 received PUBLISH (d0, q0, r0, m0, 'd/b', ... (0 bytes))",
    'Client auto-1 sending PUBACK (m2, rc0)',
    "Client auto-1 received PUBLISH (d0, q0, r0, m0, 'd/alias', ... (5 bytes))",
    "Client auto-1 received PUBLISH (d0, q0, r0, m0, 'd/alias', ... (5 bytes))",
    "Client auto-1 received PUBLISH (d1, q2, r0, m3, 'd/c', ... (5 bytes))",
    'Client auto-1 sending PUBREC (m3, rc0)',
    'Client auto-1 received PUBREL (Mid: 3)',
    'Client auto-1 sending PUBCOMP (m3)',
    'Client auto-1 sending PINGREQ',
    'Client auto-1 received PINGRESP',
    'Received DISCONNECT (139)',
  ]);
});

test("a packet split across reads is traced once whole; bytes that do not decode end that direction's trace", () => {
  const lines: string[] = [];
  const trace = new PacketTrace(4, (line) => lines.push(line));
  const connect = encode({ type: 'connect', protocolVersion: 4, clientId: 'split', clean: true, keepalive: 60 }, 4);
  trace.sent(connect.subarray(0, 5));
  assert.deepEqual(lines, []);
  trace.sent(connect.subarray(5));
  trace.received(Uint8Array.of(0x00, 0x00));
  trace.received(encode({ type: 'connack', sessionPresent: false, reasonCode: 0 }, 4));
  assert.equal(lines.length, 2);
  assert.equal(lines[0], 'Client split sending CONNECT');
  assert.match(lines[1] as string, /^Client split received bytes the trace cannot decode: /);
});

test('the traced transport passes backpressure through: write says false on a backed-up line, drained follows', async () => {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    socket.pause(); // reads nothing until told
    sockets.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  let drained = 0;
  const transport = await tracingTransport(4, () => {})(
    { protocol: 'mqtt', host: '127.0.0.1', port, path: '', signal: new AbortController().signal },
    { data() {}, close() {}, drained: () => drained++ },
  );
  try {
    const chunk = encode(
      { type: 'publish', topic: 'bulk', payload: new Uint8Array(64 * 1024), qos: 0, retain: false, dup: false },
      4,
    );
    // 64 MiB at most, far beyond what loopback's buffers hold: the line must say it is full before the end.
    let full = false;
    for (let i = 0; i < 1024 && !full; i++) full = transport.write(chunk) === false;
    assert.ok(full, 'write never said the line was backed up');
    for (let n = 0; sockets.length === 0; n++) {
      if (n > 200) throw new Error('the server never saw the connection');
      await delay(10);
    }
    for (const socket of sockets) socket.resume();
    for (let n = 0; drained === 0; n++) {
      if (n > 2000) throw new Error('drained never came once the server read');
      await delay(10);
    }
  } finally {
    transport.destroy();
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});
