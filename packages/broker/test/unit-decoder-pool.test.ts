// Connections share a few Decoders (decoder-pool.ts): one is taken for a read and given back once everything read
// is decoded. What a decoder learns of its stream (protocol version, CONNECT seen, a partial packet) must stay with
// that stream: these tests interleave reads of connections of both versions, split at every byte boundary, so that
// each read takes the decoder another connection just gave back.
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { Decoder, encode, type Packet, type ProtocolVersion, type PublishPacket } from '@otalink/mqtt';
import { pino } from 'pino';
import { Connection } from '../src/connection.js';
import { BrokerCore } from '../src/core.js';
import { idleDecoderCount } from '../src/decoder-pool.js';
import { type Authenticate, defaultLimits } from '../src/options.js';
import { createStats } from '../src/stats.js';
import { MEMORY_TRANSPORT } from './support/memory-peer.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const text = (s: string) => new TextEncoder().encode(s);

interface Rig {
  core: BrokerCore;
  /** The reasons of the connections closed for a bad packet or a broken rule, as logged. */
  closeReasons: string[];
}

function rig(maxPacketSize = defaultLimits.maxPacketSize, authenticate?: Authenticate): Rig {
  const closeReasons: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { reason?: string };
        if (entry.reason !== undefined) closeReasons.push(entry.reason);
      },
    },
  );
  const core = new BrokerCore(
    {
      limits: { ...defaultLimits, maxPacketSize },
      // A hook, when given, sees every CONNECT.
      allowAnonymous: authenticate === undefined,
      clientIdFromUsername: false,
      authenticate,
      authorize: undefined,
      enhancedAuth: new Map(),
      logger,
    },
    createStats(),
  );
  return { core, closeReasons };
}

/** A client on an in-memory socket: each read() is exactly one socket read; what the broker writes is decoded. */
class Peer {
  readonly socket: Duplex;
  readonly received: Packet[] = [];
  #finished = false;

  constructor(
    core: BrokerCore,
    readonly version: ProtocolVersion,
  ) {
    const decoder = new Decoder({ role: 'client', protocolVersion: version });
    this.socket = new Duplex({
      read() {},
      write: (chunk: Uint8Array, _encoding, callback) => {
        decoder.push(chunk);
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) this.received.push(p);
        callback();
      },
      final: (callback) => {
        this.#finished = true;
        callback();
      },
    });
    core.connections.add(new Connection(core, this.socket, MEMORY_TRANSPORT, false));
  }

  /** The broker ended or destroyed the socket. */
  get ended(): boolean {
    return this.#finished || this.socket.destroyed;
  }

  /** One socket read of a copy of `bytes` (the decoder keeps views of what it reads). */
  read(bytes: Uint8Array): void {
    this.socket.emit('data', Buffer.from(bytes));
  }

  encode(...packets: Packet[]): Uint8Array {
    return Buffer.concat(packets.map((packet) => encode(packet, this.version)));
  }

  send(...packets: Packet[]): void {
    this.read(this.encode(...packets));
  }

  types(): string[] {
    return this.received.map((p) => p.type);
  }

  close(): void {
    this.socket.destroy();
  }
}

const connect = (version: ProtocolVersion, clientId: string): Packet => ({
  type: 'connect',
  protocolVersion: version,
  clientId,
  clean: true,
  keepalive: 0,
});

/** A QoS 1 PUBLISH; in 5.0 with a property block the 3.1.1 layout would read as topic, id or payload bytes. */
const publish = (version: ProtocolVersion, topic: string, payload: string): PublishPacket => ({
  type: 'publish',
  topic,
  payload: text(payload),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 7,
  properties: version === 5 ? { contentType: 'text/plain', userProperties: [['k', 'v']] } : undefined,
});

const subscribe = (topicFilter: string): Packet => ({
  type: 'subscribe',
  packetId: 1,
  subscriptions: [{ topicFilter, qos: 1 }],
});

/** A connection's whole session: CONNECT, SUBSCRIBE to its own topic, a PUBLISH to it, PINGREQ. */
function session(peer: Peer, clientId: string): Uint8Array {
  return peer.encode(
    connect(peer.version, clientId),
    subscribe(`t/${clientId}`),
    publish(peer.version, `t/${clientId}`, `from ${clientId}`),
    { type: 'pingreq' },
  );
}

/** Asserts the peer got what `session` asks for: CONNACK, SUBACK, its own message back, PUBACK, PINGRESP. */
function assertSession(peer: Peer, clientId: string): void {
  assert.deepEqual(peer.types(), ['connack', 'suback', 'publish', 'puback', 'pingresp'], clientId);
  const delivered = peer.received[2] as PublishPacket;
  assert.equal(delivered.topic, `t/${clientId}`);
  assert.equal(new TextDecoder().decode(delivered.payload), `from ${clientId}`);
  if (peer.version === 5) assert.equal(delivered.properties?.contentType, 'text/plain');
  assert.equal(peer.ended, false, `${clientId} was closed`);
}

const other = (version: ProtocolVersion): ProtocolVersion => (version === 4 ? 5 : 4);

for (const version of [4, 5] as const) {
  describe(`decoders shared by connections, MQTT ${version}`, () => {
    test('a session split in two at every byte boundary decodes, while a connection of the other version reads in between', async () => {
      const { core } = rig();
      const probe = new Peer(core, version);
      const length = session(probe, 'cut-0000').length;
      probe.close();
      for (let cut = 1; cut < length; cut++) {
        const id = `cut-${String(cut).padStart(4, '0')}`;
        const peer = new Peer(core, version);
        const bytes = session(peer, id);
        peer.read(bytes.subarray(0, cut));
        // Takes the decoder `peer` gave back if it had nothing left over, and leaves it of its own version.
        const between = new Peer(core, other(version));
        between.send(connect(between.version, `between-${id}`), { type: 'pingreq' });
        peer.read(bytes.subarray(cut));
        await nextTurn();
        assertSession(peer, id);
        assert.deepEqual(between.types(), ['connack', 'pingresp']);
        peer.close();
        between.close();
      }
    });

    test('a session read one byte at a time, alternating with another connection of the other version', async () => {
      const { core } = rig();
      const a = new Peer(core, version);
      const b = new Peer(core, other(version));
      const aBytes = session(a, 'bytewise-a');
      const bBytes = session(b, 'bytewise-b');
      for (let i = 0; i < Math.max(aBytes.length, bBytes.length); i++) {
        if (i < aBytes.length) a.read(aBytes.subarray(i, i + 1));
        if (i < bBytes.length) b.read(bBytes.subarray(i, i + 1));
      }
      await nextTurn();
      assertSession(a, 'bytewise-a');
      assertSession(b, 'bytewise-b');
    });

    test('a partial packet stays with its connection while others take and give back decoders', async () => {
      const { core } = rig();
      const a = new Peer(core, version);
      const b = new Peer(core, other(version));
      a.send(connect(version, 'partial-a'), subscribe('t/partial-a'));
      b.send(connect(b.version, 'partial-b'), subscribe('t/partial-b'));
      const aPublish = a.encode(publish(version, 't/partial-a', 'from partial-a'));
      const bPublish = b.encode(publish(b.version, 't/partial-b', 'from partial-b'));
      // Each holds half a PUBLISH while the other reads a whole one and then half of its own.
      a.read(aPublish.subarray(0, 9));
      b.read(bPublish);
      b.read(bPublish.subarray(0, 5));
      a.read(aPublish.subarray(9));
      b.read(bPublish.subarray(5));
      await nextTurn();
      assert.deepEqual(a.types(), ['connack', 'suback', 'publish', 'puback']);
      assert.deepEqual(b.types(), ['connack', 'suback', 'publish', 'puback', 'publish', 'puback']);
      for (const [peer, id] of [
        [a, 'partial-a'],
        [b, 'partial-b'],
      ] as const) {
        for (const delivered of peer.received.filter((p): p is PublishPacket => p.type === 'publish')) {
          assert.equal(new TextDecoder().decode(delivered.payload), `from ${id}`);
        }
        assert.equal(peer.ended, false);
      }
    });

    test('bytes left behind by a connection that closed mid-read reach no other connection', async () => {
      const { core } = rig();
      const leaving = new Peer(core, version);
      leaving.send(connect(version, 'leaving'));
      const bytes = leaving.encode({ type: 'disconnect' }, publish(version, 't/leaving', 'left behind'));
      // DISCONNECT and the start of a PUBLISH in one read: the connection closes with bytes in its decoder.
      leaving.read(bytes.subarray(0, bytes.length - 4));
      const next = new Peer(core, version);
      next.send(connect(version, 'next'), subscribe('t/next'), publish(version, 't/next', 'from next'));
      await nextTurn();
      assert.equal(leaving.ended, true);
      assert.deepEqual(next.types(), ['connack', 'suback', 'publish', 'puback']);
      assert.equal(new TextDecoder().decode((next.received[2] as PublishPacket).payload), 'from next');
    });

    test('packets read behind a CONNECT whose authentication is pending wait in their decoder while others read', async () => {
      let allow: (() => void) | undefined;
      const { core } = rig(undefined, (request) =>
        request.clientId === 'slow' ? new Promise((resolve) => (allow = () => resolve({ ok: true }))) : { ok: true },
      );
      const slow = new Peer(core, version);
      const slowBytes = session(slow, 'slow');
      // The whole session but its last 3 bytes in one read: SUBSCRIBE and PUBLISH wait behind the CONNECT.
      slow.read(slowBytes.subarray(0, slowBytes.length - 3));
      const fast = new Peer(core, other(version));
      fast.read(session(fast, 'fast'));
      await nextTurn();
      assertSession(fast, 'fast');
      fast.received.length = 0;
      assert.deepEqual(slow.types(), []);
      // A read arriving while paused (a socket may hand over one already made) joins the bytes waiting.
      slow.read(slowBytes.subarray(slowBytes.length - 3));
      fast.send({ type: 'pingreq' });
      allow!();
      // The authentication resolves in the microtasks after this line. When fast's read came long enough after the
      // one before to be written at once, no turn end is pending, so what slow's CONNECT lets through is written by a
      // setImmediate scheduled there, after nextTurn's own: a second turn sees it. (With one, the test failed when
      // the reads were over 50 µs apart: ~1 run in 20 here, every run with a clock that says so.)
      await nextTurn();
      await nextTurn();
      assertSession(slow, 'slow');
    });

    test('a second CONNECT is refused by the decoder after its connection gave the decoder back and took one again', async () => {
      const { core, closeReasons } = rig();
      const peer = new Peer(core, version);
      peer.send(connect(version, 'twice'));
      // Another connection's CONNECT goes through the decoder `peer` gave back.
      const between = new Peer(core, other(version));
      between.send(connect(between.version, 'twice-between'));
      peer.send(connect(version, 'twice'));
      await nextTurn();
      // The decoder's own check (not the CONNECT handler's "a second CONNECT"): it knew CONNECT was seen.
      assert.deepEqual(closeReasons, ['a client must send CONNECT only once']);
      assert.equal(peer.ended, true);
      if (version === 5) {
        const last = peer.received.at(-1);
        assert.equal(last?.type === 'disconnect' && last.reasonCode, 0x82);
      }
      assert.equal(between.ended, false);
    });

    test('a new connection must start with CONNECT, though the decoder it takes saw one', async () => {
      const { core, closeReasons } = rig();
      const first = new Peer(core, version);
      first.send(connect(version, 'first'));
      const second = new Peer(core, version);
      second.send(publish(version, 't/x', 'too early'));
      await nextTurn();
      assert.deepEqual(closeReasons, ['the first packet must be CONNECT, got publish']);
      assert.equal(second.ended, true);
      assert.equal(first.ended, false);
    });

    test("each connection's maximum packet size holds, whichever broker's connection used the decoder before", async () => {
      const small = rig(64);
      const large = rig();
      const l = new Peer(large.core, version);
      const s = new Peer(small.core, version);
      l.send(connect(version, 'large'), subscribe('t/large'));
      s.send(connect(version, 'small'), subscribe('t/small'));
      const payload = 'x'.repeat(100);
      l.send(publish(version, 't/large', payload));
      s.send(publish(version, 't/small', payload));
      l.send(publish(version, 't/large', payload));
      await nextTurn();
      assert.deepEqual(l.types(), ['connack', 'suback', 'publish', 'puback', 'publish', 'puback']);
      assert.equal(l.ended, false);
      assert.equal(s.ended, true);
      assert.equal(small.closeReasons.length, 1);
      assert.match(small.closeReasons[0]!, /exceeds the maximum packet size of 64/);
      if (version === 5) {
        const last = s.received.at(-1);
        assert.equal(last?.type === 'disconnect' && last.reasonCode, 0x95);
      }
    });
  });
}

test('idle connections hold no decoder: each read takes one from the pool and gives it back', async () => {
  const { core } = rig();
  const warm = new Peer(core, 4);
  warm.send(connect(4, 'warm'));
  const pooled = idleDecoderCount();
  assert.ok(pooled >= 1);
  const peers: Peer[] = [];
  for (let i = 0; i < 50; i++) {
    const peer = new Peer(core, i % 2 === 0 ? 4 : 5);
    peer.send(connect(peer.version, `idle-${i}`), subscribe(`t/idle-${i}`));
    peers.push(peer);
  }
  await nextTurn();
  assert.equal(idleDecoderCount(), pooled);
  // A connection holding part of a packet keeps its decoder until the packet is complete.
  const bytes = peers[0]!.encode({ type: 'pingreq' });
  peers[0]!.read(bytes.subarray(0, 1));
  assert.equal(idleDecoderCount(), pooled - 1);
  peers[0]!.read(bytes.subarray(1));
  assert.equal(idleDecoderCount(), pooled);
  await nextTurn();
  assert.equal(peers[0]!.types().at(-1), 'pingresp');
});

test('a connection that closes holding part of a packet, or for a bad packet, gives its decoder back', async () => {
  const { core } = rig();
  const warm = new Peer(core, 4);
  warm.send(connect(4, 'warm-close'));
  await nextTurn();
  const pooled = idleDecoderCount();
  // Half a PUBLISH, then the peer goes away.
  const partial = new Peer(core, 5);
  partial.send(connect(5, 'partial'));
  const bytes = partial.encode(publish(5, 't/p', 'half'));
  partial.read(bytes.subarray(0, 5));
  assert.equal(idleDecoderCount(), pooled - 1);
  partial.close();
  await nextTurn();
  assert.equal(idleDecoderCount(), pooled);
  // A packet of a reserved type: the connection is closed for it.
  const bad = new Peer(core, 4);
  bad.send(connect(4, 'bad'));
  bad.read(new Uint8Array([0x00, 0x00]));
  await nextTurn();
  assert.equal(bad.ended, true);
  assert.equal(idleDecoderCount(), pooled);
});
