// The otalink client against the otalink broker, both protocol versions: every QoS, retained, wills, persistent
// sessions, the 5.0 features both ends implement (topic aliases, Receive Maximum, message expiry, subscription
// identifiers, shared subscriptions), authentication and ACL refusals, TLS with client certificates, WebSocket,
// and a broker process killed with SIGKILL mid-stream while a client publishes from a file store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Broker, type BrokerOptions, createBroker } from '@otalink/broker';
import { Decoder, MqttError, type Packet, type ProtocolVersion } from '@otalink/mqtt';
import { pino } from 'pino';
import { makeCertificates } from '../../packages/broker/test/support/certs.js';
import {
  type ClientOptions,
  connect,
  type Message,
  type MqttClient,
  openFileStore,
  type TransportFactory,
} from '../../packages/mqtt/src/client/index.js';
import { tcpTransport } from '../../packages/mqtt/src/client/transports/tcp.js';
import { BrokerProcess } from '../support/broker-process.js';

const fast = { initialDelayMs: 20, maxDelayMs: 250 };
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const versionName = (v: ProtocolVersion) => (v === 5 ? '5.0' : '3.1.1');

async function until(predicate: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await delay(10);
  }
}

/** A broker in this process on 127.0.0.1:0, plus the clients a test opens, all closed by `close()`. */
class Harness {
  readonly clients: MqttClient[] = [];
  private constructor(readonly broker: Broker) {}

  static async start(options: Partial<BrokerOptions> = {}): Promise<Harness> {
    const broker = createBroker({
      listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
      allowAnonymous: true,
      logger: pino({ level: 'silent' }),
      sysIntervalSeconds: 0,
      ...options,
    });
    await broker.listen();
    return new Harness(broker);
  }

  port(index = 0): number {
    const address = this.broker.addresses()[index];
    if (address === undefined) throw new Error(`no listener ${index}`);
    return address.port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port()}`;
  }

  async client(options: ClientOptions): Promise<MqttClient> {
    const client = await connect({ url: this.url, reconnect: false, ...options });
    this.clients.push(client);
    return client;
  }

  async close(): Promise<void> {
    for (const c of this.clients) await c.end({ force: true });
    await this.broker.close();
  }
}

/** Collects every message a client receives, with a wait for a count. */
function collect(client: MqttClient): { messages: Message[]; waitFor(n: number, ms?: number): Promise<void> } {
  const messages: Message[] = [];
  client.on('message', (m) => messages.push(m));
  return {
    messages,
    waitFor: (n, ms = 5000) =>
      until(
        () => messages.length >= n,
        ms,
        () => `${n} messages (have ${messages.length}: ${messages.map((m) => m.topic).join(' ')})`,
      ),
  };
}

/**
 * A wire tap around the TCP transport: decodes both directions so a test can see what really crossed the line
 * (topic aliases, how many QoS 1 messages were unacknowledged at once), not what either end believes it did.
 */
function wireTap(version: ProtocolVersion) {
  const tap = {
    sent: [] as Packet[],
    received: [] as Packet[],
    /** QoS 1 publishes we sent and the server has not acknowledged yet, by packet id; and the largest it got. */
    outgoingUnacked: new Set<number>(),
    maxOutgoingUnacked: 0,
    /** QoS 1 publishes the server sent and we have not acknowledged yet; and the largest it got. */
    incomingUnacked: new Set<number>(),
    maxIncomingUnacked: 0,
    factory: undefined as unknown as TransportFactory,
  };
  tap.factory = async (target, handlers) => {
    const outgoing = new Decoder({ role: 'server' });
    const incoming = new Decoder({ role: 'client', protocolVersion: version });
    const inner = await tcpTransport(target, {
      data(chunk) {
        incoming.push(chunk);
        for (let p = incoming.next(); p !== undefined; p = incoming.next()) {
          tap.received.push(p);
          if (p.type === 'puback') tap.outgoingUnacked.delete(p.packetId);
          if (p.type === 'publish' && p.qos === 1 && p.packetId !== undefined) {
            tap.incomingUnacked.add(p.packetId);
            tap.maxIncomingUnacked = Math.max(tap.maxIncomingUnacked, tap.incomingUnacked.size);
          }
        }
        handlers.data(chunk);
      },
      close: (error) => handlers.close(error),
    });
    return {
      write(chunk) {
        outgoing.push(chunk);
        for (let p = outgoing.next(); p !== undefined; p = outgoing.next()) {
          tap.sent.push(p);
          if (p.type === 'puback') tap.incomingUnacked.delete(p.packetId);
          if (p.type === 'publish' && p.qos === 1 && p.packetId !== undefined) {
            tap.outgoingUnacked.add(p.packetId);
            tap.maxOutgoingUnacked = Math.max(tap.maxOutgoingUnacked, tap.outgoingUnacked.size);
          }
        }
        inner.write(chunk);
      },
      end: () => inner.end(),
      destroy: () => inner.destroy(),
    };
  };
  return tap;
}

for (const version of [4, 5] as ProtocolVersion[]) {
  describe(`otalink client ↔ otalink broker, MQTT ${versionName(version)}`, () => {
    test('every QoS pair: a message published at QoS p to a subscription at QoS s arrives at min(p, s)', async () => {
      const h = await Harness.start();
      try {
        const sub = await h.client({ protocolVersion: version });
        for (const s of [0, 1, 2] as const) {
          const granted = await sub.subscribe(`rt/${s}/#`, { qos: s });
          assert.deepEqual(granted.reasonCodes, [s]);
        }
        const got = collect(sub);
        const pub = await h.client({ protocolVersion: version });
        for (const s of [0, 1, 2] as const) {
          for (const p of [0, 1, 2] as const) {
            const result = await pub.publish(`rt/${s}/${p}`, `s${s}p${p}`, { qos: p });
            assert.equal(result.reasonCode, 0);
          }
        }
        await got.waitFor(9);
        await delay(50);
        assert.equal(got.messages.length, 9, 'each message once');
        const byTopic = new Map(got.messages.map((m) => [m.topic, m]));
        for (const s of [0, 1, 2]) {
          for (const p of [0, 1, 2]) {
            const m = byTopic.get(`rt/${s}/${p}`);
            assert.ok(m !== undefined, `rt/${s}/${p} arrived`);
            assert.equal(m.qos, Math.min(s, p), `rt/${s}/${p} QoS`);
            assert.equal(text(m.payload), `s${s}p${p}`);
            assert.equal(m.retain, false);
          }
        }
        // Order per publisher is kept for messages on one subscription.
        assert.deepEqual(
          got.messages.filter((m) => m.topic.startsWith('rt/2/')).map((m) => m.topic),
          ['rt/2/0', 'rt/2/1', 'rt/2/2'],
        );
      } finally {
        await h.close();
      }
    });

    test('retained: a late subscriber gets it with retain set; an empty retained payload clears it', async () => {
      const h = await Harness.start();
      try {
        const pub = await h.client({ protocolVersion: version });
        await pub.publish('ret/x', 'kept', { qos: 1, retain: true });
        const late = await h.client({ protocolVersion: version });
        const got = collect(late);
        await late.subscribe('ret/#', { qos: 1 });
        await got.waitFor(1);
        assert.deepEqual(
          got.messages.map((m) => [m.topic, m.retain, text(m.payload), m.qos]),
          [['ret/x', true, 'kept', 1]],
        );
        // A live subscriber gets a retained publish as a normal message (retain cleared, 3.1.1 §3.3.1.3).
        await pub.publish('ret/x', 'again', { qos: 1, retain: true });
        await got.waitFor(2);
        assert.equal(got.messages[1]?.retain, false);
        await pub.publish('ret/x', '', { qos: 1, retain: true });
        await got.waitFor(3);
        const later = await h.client({ protocolVersion: version });
        const laterGot = collect(later);
        await later.subscribe('ret/#', { qos: 1 });
        await pub.publish('ret/marker', 'after', { qos: 1 });
        await laterGot.waitFor(1);
        assert.deepEqual(
          laterGot.messages.map((m) => m.topic),
          ['ret/marker'],
          'nothing retained is left on ret/x',
        );
        assert.equal(h.broker.stats.retainedCurrent, 0);
      } finally {
        await h.close();
      }
    });

    test('will: published when a client drops without DISCONNECT, not when it ends cleanly', async () => {
      const h = await Harness.start();
      try {
        const sub = await h.client({ protocolVersion: version });
        await sub.subscribe('will/#', { qos: 1 });
        const got = collect(sub);
        const will = { topic: 'will/gone', payload: 'lost', qos: 1 as const };
        const polite = await connect({ url: h.url, protocolVersion: version, reconnect: false, will });
        await polite.end();
        const doomed = await connect({ url: h.url, protocolVersion: version, reconnect: false, will });
        await doomed.end({ force: true }); // no DISCONNECT: the socket is destroyed
        await got.waitFor(1);
        const pub = await h.client({ protocolVersion: version });
        await pub.publish('will/marker', 'm', { qos: 1 });
        await got.waitFor(2);
        assert.deepEqual(
          got.messages.map((m) => [m.topic, text(m.payload), m.qos]),
          [
            ['will/gone', 'lost', 1],
            ['will/marker', 'm', 1],
          ],
          'one will: the abrupt drop; none for the clean end',
        );
      } finally {
        await h.close();
      }
    });

    test('persistent session: QoS 1/2 published while away arrive on return, exactly once', async () => {
      const h = await Harness.start();
      try {
        const opts = { protocolVersion: version, clientId: `persist-${version}`, clean: false };
        const sub = await h.client(opts);
        assert.equal(sub.connack?.sessionPresent, false);
        await sub.subscribe('away/#', { qos: 2 });
        await sub.end();
        await until(
          () => h.broker.stats.sessionsOffline === 1,
          3000,
          () => 'the session to go offline',
        );
        const pub = await h.client({ protocolVersion: version });
        const sent = [
          ['away/1', 1],
          ['away/2', 2],
          ['away/1', 1],
          ['away/2', 2],
          ['away/2', 2],
        ] as const;
        for (const [i, [topic, qos]] of sent.entries()) await pub.publish(topic, `m${i}`, { qos });
        const back = await h.client(opts);
        assert.equal(back.connack?.sessionPresent, true);
        const got = collect(back);
        await got.waitFor(sent.length);
        await pub.publish('away/marker', 'end', { qos: 1 });
        await got.waitFor(sent.length + 1);
        assert.deepEqual(
          got.messages.map((m) => [m.topic, m.qos, text(m.payload)]),
          [...sent.map(([topic, qos], i) => [topic, qos, `m${i}`]), ['away/marker', 1, 'end']],
        );
        await back.end();
        // Acknowledged before the end: nothing comes again on the next return.
        const again = await h.client(opts);
        assert.equal(again.connack?.sessionPresent, true);
        const gotAgain = collect(again);
        await pub.publish('away/marker', 'end2', { qos: 1 });
        await gotAgain.waitFor(1);
        await delay(50);
        assert.deepEqual(
          gotAgain.messages.map((m) => text(m.payload)),
          ['end2'],
        );
      } finally {
        await h.close();
      }
    });

    test('manualAck: an unacknowledged message comes back after reconnect, an acknowledged one does not', async () => {
      const h = await Harness.start();
      try {
        const tap = wireTap(version);
        const opts = { protocolVersion: version, clientId: `manual-${version}`, clean: false, manualAck: true };
        const sub = await h.client({ ...opts, transport: tap.factory });
        await sub.subscribe('manual/#', { qos: 2 });
        const got = collect(sub);
        const pub = await h.client({ protocolVersion: version });
        // The acknowledged ones first: an ack waits for every earlier message's (MQTT's order).
        for (const [topic, qos] of [
          ['manual/acked1', 1],
          ['manual/acked2', 2],
          ['manual/unacked1', 1],
          ['manual/unacked2', 2],
        ] as const) {
          await pub.publish(topic, topic, { qos });
        }
        await got.waitFor(4);
        assert.equal(sub.unackedCount, 4);
        const byTopic = (list: Message[], topic: string) => list.find((m) => m.topic === topic);
        byTopic(got.messages, 'manual/acked1')?.ack();
        byTopic(got.messages, 'manual/acked2')?.ack();
        // Both acknowledgements completed on the wire: PUBACK for QoS 1; PUBREC, PUBREL, PUBCOMP for QoS 2.
        await until(
          () => tap.sent.some((p) => p.type === 'puback') && tap.sent.some((p) => p.type === 'pubcomp'),
          5000,
          () => `the acknowledgements (sent: ${tap.sent.map((p) => p.type).join(' ')})`,
        );
        assert.equal(sub.unackedCount, 2);
        await sub.end();
        // An ack after the connection is gone sends nothing and does not throw: the broker redelivers instead.
        byTopic(got.messages, 'manual/unacked1')?.ack();
        const back = await h.client(opts);
        assert.equal(back.connack?.sessionPresent, true);
        const again = collect(back);
        await again.waitFor(2);
        await pub.publish('manual/marker', 'm', { qos: 1 });
        await again.waitFor(3);
        await delay(50);
        assert.deepEqual(
          again.messages.map((m) => [m.topic, m.qos, m.dup]),
          [
            ['manual/unacked1', 1, true],
            ['manual/unacked2', 2, true],
            ['manual/marker', 1, false],
          ],
          'only the unacknowledged ones come back',
        );
        for (const m of again.messages) m.ack();
        await until(
          () => back.unackedCount === 0,
          5000,
          () => 'the acks',
        );
        await back.end();
        const third = await h.client(opts);
        const last = collect(third);
        await pub.publish('manual/final', 'f', { qos: 1 });
        await last.waitFor(1);
        await delay(50);
        assert.deepEqual(
          last.messages.map((m) => m.topic),
          ['manual/final'],
          'acknowledged after a redelivery: not sent again',
        );
      } finally {
        await h.close();
      }
    });

    test('authentication: a wrong password is refused with the version’s code; the right one connects', async () => {
      const h = await Harness.start({
        allowAnonymous: false,
        authenticate: (request) =>
          request.username === 'car' && request.password !== undefined && text(request.password) === 'secret'
            ? { ok: true }
            : { ok: false, reasonCode: 0x86 },
      });
      try {
        await assert.rejects(
          connect({ url: h.url, protocolVersion: version, reconnect: false, username: 'car', password: 'wrong' }),
          (err: unknown) => {
            assert.ok(err instanceof MqttError);
            assert.equal(err.code, 'MQTT_ERR_CONNECTION_REFUSED');
            assert.equal(err.reasonCode, version === 5 ? 0x86 : 4);
            return true;
          },
        );
        await assert.rejects(connect({ url: h.url, protocolVersion: version, reconnect: false }), {
          code: 'MQTT_ERR_CONNECTION_REFUSED',
        });
        const ok = await h.client({ protocolVersion: version, username: 'car', password: 'secret' });
        assert.equal(ok.state, 'connected');
      } finally {
        await h.close();
      }
    });

    test('ACL: a denied publish is not delivered (5.0: PUBACK 0x87 rejects the publish); a denied subscribe fails', async () => {
      const h = await Harness.start({ authorize: (_client, _action, topic) => !topic.startsWith('secret') });
      try {
        const sub = await h.client({ protocolVersion: version });
        const denied = await sub.subscribe('secret/#', { qos: 1 });
        assert.deepEqual(denied.reasonCodes, [version === 5 ? 0x87 : 0x80]);
        await sub.subscribe('#', { qos: 1 });
        const got = collect(sub);
        const pub = await h.client({ protocolVersion: version });
        if (version === 5) {
          await assert.rejects(pub.publish('secret/key', 'x', { qos: 1 }), (err: unknown) => {
            assert.ok(err instanceof MqttError);
            assert.equal(err.code, 'MQTT_ERR_PUBLISH_FAILED');
            assert.equal(err.reasonCode, 0x87);
            return true;
          });
          await assert.rejects(pub.publish('secret/key', 'x', { qos: 2 }), { reasonCode: 0x87 });
        } else {
          // 3.1.1 cannot refuse a publish: it is acknowledged and dropped.
          assert.equal((await pub.publish('secret/key', 'x', { qos: 1 })).reasonCode, 0);
          assert.equal((await pub.publish('secret/key', 'x', { qos: 2 })).reasonCode, 0);
        }
        await pub.publish('open/x', 'y', { qos: 1 });
        await got.waitFor(1);
        await delay(50);
        assert.deepEqual(
          got.messages.map((m) => m.topic),
          ['open/x'],
        );
        assert.equal(h.broker.stats.droppedNotAuthorized, 2);
      } finally {
        await h.close();
      }
    });

    test('WebSocket transport against the broker’s ws listener', async () => {
      const h = await Harness.start({
        listeners: [{ protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' }],
      });
      try {
        const url = `ws://127.0.0.1:${h.port()}/mqtt`;
        const sub = await h.client({ url, protocolVersion: version });
        await sub.subscribe('ws/#', { qos: 2 });
        const got = collect(sub);
        const pub = await h.client({ url, protocolVersion: version });
        for (const qos of [0, 1, 2] as const) await pub.publish(`ws/${qos}`, `over ws ${qos}`, { qos });
        await got.waitFor(3);
        assert.deepEqual(
          got.messages.map((m) => [m.topic, m.qos, text(m.payload)]),
          [
            ['ws/0', 0, 'over ws 0'],
            ['ws/1', 1, 'over ws 1'],
            ['ws/2', 2, 'over ws 2'],
          ],
        );
      } finally {
        await h.close();
      }
    });

    test('TLS with client certificates (mutual TLS): accepted with one, refused without', async (t) => {
      const certs = makeCertificates();
      if (certs === undefined) return t.skip('openssl CLI not installed');
      let seenIdentity: string | undefined;
      const h = await Harness.start({
        listeners: [
          {
            protocol: 'mqtts',
            host: '127.0.0.1',
            port: 0,
            tls: {
              cert: certs.serverCert,
              key: certs.serverKey,
              ca: certs.ca,
              requireClientCertificate: true,
              identityFromCertificate: true,
            },
          },
        ],
        authorize: (client) => {
          seenIdentity = client.username;
          return true;
        },
      });
      try {
        const url = `mqtts://127.0.0.1:${h.port()}`;
        const vehicle = certs.client('vehicle-7');
        const tls = { ca: certs.ca, cert: vehicle.cert, key: vehicle.key };
        const sub = await h.client({ url, protocolVersion: version, tls });
        await sub.subscribe('tls/#', { qos: 1 });
        const got = collect(sub);
        const pub = await h.client({ url, protocolVersion: version, tls });
        assert.equal((await pub.publish('tls/a', 'secure', { qos: 1 })).reasonCode, 0);
        await got.waitFor(1);
        assert.equal(text(got.messages[0]?.payload ?? new Uint8Array()), 'secure');
        assert.equal(seenIdentity, 'vehicle-7', 'the identity came from the certificate CN');
        for (const without of [{ ca: certs.ca }, { ca: certs.ca, ...certs.stranger }]) {
          await assert.rejects(
            connect({ url, protocolVersion: version, reconnect: false, tls: without, connectTimeoutMs: 5000 }),
          );
        }
      } finally {
        await h.close();
        certs.remove();
      }
    });
  });
}

describe('otalink client ↔ otalink broker, 5.0 specifics', () => {
  test('backpressure: a consumer that awaits its own QoS 1 publish in the loop does not deadlock', {
    timeout: 60_000,
  }, async () => {
    const h = await Harness.start();
    try {
      const sub = await h.client({ highWaterMark: 5 });
      const stream = (await sub.subscribe('loop/in', { qos: 1 })).messages();
      const pub = await h.client({});
      const total = 200;
      const published = Promise.all(
        Array.from({ length: total }, (_, i) => pub.publish('loop/in', `${i}`, { qos: 1 })),
      );
      let seen = 0;
      for await (const m of stream) {
        // Its PUBACK comes behind messages the server already sent: reading must go on while it is awaited.
        await sub.publish('loop/out', m.payload, { qos: 1 });
        if (++seen === total) break;
      }
      await published;
      assert.equal(seen, total);
    } finally {
      await h.close();
    }
  });

  test('backpressure: a slow iterator holds the client at its high-water mark; QoS 1 nothing lost, in order', async () => {
    const h = await Harness.start();
    try {
      const highWaterMark = 10;
      const sub = await h.client({ highWaterMark });
      const subscription = await sub.subscribe('bp/#', { qos: 1 });
      const stream = subscription.messages();
      let mostBuffered = 0;
      let pauses = 0;
      // Sampled at every delivery, when the backlog peaks (the listener runs just before the iterator's push).
      sub.on('message', () => {
        mostBuffered = Math.max(mostBuffered, sub.bufferedCount + 1);
        if (sub.readingPaused) pauses++;
      });
      const pub = await h.client({});
      const total = 600;
      const published = Promise.all(Array.from({ length: total }, (_, i) => pub.publish('bp/t', `${i}`, { qos: 1 })));
      const got: string[] = [];
      for await (const m of stream) {
        got.push(text(m.payload));
        if (got.length === total) break;
        await delay(1); // the slow consumer
      }
      await published;
      assert.deepEqual(
        got,
        Array.from({ length: total }, (_, i) => `${i}`),
        'every message, in order',
      );
      assert.ok(mostBuffered <= highWaterMark, `at most ${highWaterMark} buffered, saw ${mostBuffered}`);
      assert.ok(mostBuffered === highWaterMark, 'the publisher did outpace the consumer');
      assert.equal(pauses, 0, 'nothing is delivered while reading is paused');
      assert.equal(sub.readingPaused, false);
      assert.equal(sub.bufferedCount, 0, 'the iterator detached when the loop broke');
    } finally {
      await h.close();
    }
  });

  test('backpressure while the vehicle publishes: an unread iterator stays bounded, no QoS 1 command lost', {
    timeout: 60_000,
  }, async () => {
    // QoS 1 telemetry always in flight: reading cannot pause (its PUBACK is behind the messages). Before, the
    // iterator then took everything the broker sent.
    const window = 100;
    const h = await Harness.start({ limits: { receiveMaximum: window } });
    let telemetry = 0;
    let running = true;
    try {
      const highWaterMark = 10;
      const vehicle = await h.client({ highWaterMark });
      await vehicle.subscribe(['cmd/#', 'status/#'], { qos: 1 });
      const stream = vehicle.messages();
      let most = 0;
      vehicle.on('message', () => {
        most = Math.max(most, vehicle.bufferedCount);
      });
      const sending = (async () => {
        while (running) {
          await vehicle.publish('tele/v1', `${telemetry}`, { qos: 1 });
          telemetry++;
        }
      })();
      // A failed assertion closes the client under the loop: its rejection is not this test's finding.
      sending.catch(() => {});
      const backend = await h.client({});
      const commands = 800;
      const sent: Promise<unknown>[] = [];
      for (let i = 0; i < commands; i++) {
        sent.push(backend.publish('cmd/v1', `${i}`, { qos: 1 }));
        for (let j = 0; j < 4; j++) sent.push(backend.publish('status/v1', `${i}.${j}`, { qos: 0 }));
      }
      await Promise.all(sent);
      const before = telemetry;
      await until(
        () => telemetry >= before + 50,
        20_000,
        () => `telemetry going on while the iterator is unread (${telemetry - before})`,
      );
      // The broker's window to the vehicle holds the QoS 1 commands whose acks wait.
      const bound = 2 * highWaterMark + window;
      assert.ok(most <= bound, `at most ${bound} buffered, saw ${most}`);
      assert.ok(vehicle.droppedCount > 0, 'QoS 0 status messages were dropped for the iterator behind');
      running = false;
      await sending;
      const got: string[] = [];
      let status = 0;
      for await (const m of stream) {
        if (m.topic === 'cmd/v1') got.push(text(m.payload));
        else status++;
        if (got.length === commands) break;
      }
      assert.deepEqual(
        got,
        Array.from({ length: commands }, (_, i) => `${i}`),
        'every command, in order',
      );
      assert.ok(status + vehicle.droppedCount <= 4 * commands);
    } finally {
      running = false;
      await h.close();
    }
  });

  test('re-authentication: AUTH 0x19 through the broker’s enhanced authenticator; a refused one ends the line', async () => {
    const encode = (v: string) => new TextEncoder().encode(v);
    let accepted = 'signed';
    const h = await Harness.start({
      allowAnonymous: false,
      enhancedAuth: [
        {
          method: 'CHALLENGE',
          step: (state, data) => {
            if (state.step === 0)
              return { result: 'continue', data: encode(`nonce-${text(data ?? new Uint8Array())}`) };
            return text(data ?? new Uint8Array()) === accepted
              ? { result: 'success', data: encode('welcome'), username: 'vehicle' }
              : { result: 'fail', reasonCode: 0x87 };
          },
        },
      ],
    });
    try {
      const seen: string[] = [];
      const client = await h.client({
        auth: {
          method: 'CHALLENGE',
          step: (data, { reasonCode }) => {
            seen.push(`${reasonCode.toString(16)}:${data === undefined ? '-' : text(data)}`);
            return data === undefined ? encode('hi') : reasonCode === 0x18 ? encode('signed') : undefined;
          },
        },
      });
      await client.reauthenticate();
      assert.deepEqual(seen, ['0:-', '18:nonce-hi', '19:-', '18:nonce-hi', '0:welcome']);
      const sub = await client.subscribe('reauth/t', { qos: 1 });
      const got = collect(client);
      await client.publish('reauth/t', 'still connected', { qos: 1 });
      await got.waitFor(1);
      assert.deepEqual(sub.reasonCodes, [1]);
      accepted = 'rotated';
      await assert.rejects(client.reauthenticate(), { code: 'MQTT_ERR_CONNECTION_CLOSED', reasonCode: 0x87 });
      await until(
        () => client.state === 'closed',
        5000,
        () => `the client to close (reconnect is off; state ${client.state})`,
      );
    } finally {
      await h.close();
    }
  });

  test('topic aliases used by both ends on the wire; every message arrives with its full topic', async () => {
    const h = await Harness.start({ limits: { topicAliasMaximum: 10 } });
    try {
      const subTap = wireTap(5);
      const sub = await h.client({ transport: subTap.factory, properties: { topicAliasMaximum: 10 } });
      await sub.subscribe('alias/#', { qos: 1 });
      const got = collect(sub);
      const pubTap = wireTap(5);
      const pub = await h.client({ transport: pubTap.factory });
      assert.equal(pub.serverLimits.topicAliasMaximum, 10);
      for (let i = 0; i < 5; i++) await pub.publish('alias/long/topic/name', `a${i}`, { qos: 1 });
      await pub.publish('alias/other', 'b', { qos: 0 });
      await got.waitFor(6);
      const sentPublishes = pubTap.sent.filter((p) => p.type === 'publish');
      assert.equal(sentPublishes.length, 6);
      const wire = (p: Packet) => (p.type === 'publish' ? [p.topic, p.properties?.topicAlias] : []);
      assert.deepEqual(wire(sentPublishes[0]!), ['alias/long/topic/name', 1], 'the first sets the alias');
      for (const p of sentPublishes.slice(1, 5)) assert.deepEqual(wire(p), ['', 1], 'repeats use the alias alone');
      const receivedPublishes = subTap.received.filter((p) => p.type === 'publish');
      assert.ok(
        receivedPublishes.some((p) => wire(p)[0] === '' && typeof wire(p)[1] === 'number'),
        `the broker used an alias towards the subscriber: ${JSON.stringify(receivedPublishes.map(wire))}`,
      );
      assert.deepEqual(
        got.messages.map((m) => [m.topic, text(m.payload)]),
        [...[0, 1, 2, 3, 4].map((i) => ['alias/long/topic/name', `a${i}`]), ['alias/other', 'b']],
      );
    } finally {
      await h.close();
    }
  });

  test('an explicit topicAlias in publish properties does not hijack an alias the client assigned itself', async () => {
    const h = await Harness.start();
    try {
      const sub = await h.client({});
      await sub.subscribe('hijack/#', { qos: 1 });
      const got = collect(sub);
      const pub = await h.client({});
      await pub.publish('hijack/b', '1', { qos: 1 }); // the client assigns alias 1 to hijack/b
      // Received messages carry properties.topicAlias, so forwarding m.properties does exactly this.
      await pub.publish('hijack/a', '2', { qos: 1, properties: { topicAlias: 1 } });
      await pub.publish('hijack/b', '3', { qos: 1 });
      await got.waitFor(3);
      assert.deepEqual(
        got.messages.map((m) => `${m.topic}=${text(m.payload)}`),
        ['hijack/b=1', 'hijack/a=2', 'hijack/b=3'],
      );
    } finally {
      await h.close();
    }
  });

  test('will delay: a client that comes back within the delay has no will published; one that does not has', async () => {
    const h = await Harness.start();
    try {
      const sub = await h.client({});
      await sub.subscribe('delayed/#', { qos: 1 });
      const got = collect(sub);
      const will = (willDelayInterval: number) => ({
        topic: 'delayed/will',
        payload: 'gone',
        qos: 1 as const,
        properties: { willDelayInterval },
      });
      const session = { sessionExpiryInterval: 60 };
      // 3 s to come back in: a machine stalled for 1 s between the two steps must not make it late.
      const back = await connect({
        url: h.url,
        clientId: 'will-back',
        will: will(3),
        properties: session,
        reconnect: false,
      });
      await back.end({ force: true });
      const left = Date.now();
      const returned = await h.client({ clientId: 'will-back', clean: false, properties: session });
      assert.equal(returned.connack?.sessionPresent, true);
      const away = await connect({
        url: h.url,
        clientId: 'will-away',
        will: will(1),
        properties: session,
        reconnect: false,
      });
      await away.end({ force: true });
      await got.waitFor(1, 5000);
      await delay(Math.max(0, left + 3500 - Date.now())); // past will-back's delay too: its will must not come late
      const pub = await h.client({});
      await pub.publish('delayed/marker', 'm', { qos: 1 });
      await got.waitFor(2);
      assert.deepEqual(
        got.messages.map((m) => [m.topic, text(m.payload)]),
        [
          ['delayed/will', 'gone'],
          ['delayed/marker', 'm'],
        ],
      );
    } finally {
      await h.close();
    }
  });

  test('end() with DISCONNECT properties: a session expiry of 0 there ends the session the CONNECT kept', async () => {
    const h = await Harness.start();
    try {
      const session = { sessionExpiryInterval: 600 };
      const kept = await connect({ url: h.url, clientId: 'kept', properties: session, reconnect: false });
      await kept.end();
      const ended = await connect({ url: h.url, clientId: 'ended', properties: session, reconnect: false });
      await ended.end({ properties: { sessionExpiryInterval: 0, userProperties: [['why', 'done']] } });
      const keptAgain = await h.client({ clientId: 'kept', clean: false, properties: session });
      const endedAgain = await h.client({ clientId: 'ended', clean: false, properties: session });
      assert.equal(keptAgain.connack?.sessionPresent, true);
      assert.equal(endedAgain.connack?.sessionPresent, false, 'the DISCONNECT carried Session Expiry Interval 0');
    } finally {
      await h.close();
    }
  });

  test('Receive Maximum 5: 200 QoS 1 publishes all acknowledged, never more than 5 in flight either way', async () => {
    const h = await Harness.start({ limits: { receiveMaximum: 5 } });
    try {
      const subTap = wireTap(5);
      const sub = await h.client({ transport: subTap.factory, properties: { receiveMaximum: 5 } });
      await sub.subscribe('window/#', { qos: 1 });
      const got = collect(sub);
      const pubTap = wireTap(5);
      const pub = await h.client({ transport: pubTap.factory });
      assert.equal(pub.serverLimits.receiveMaximum, 5);
      const total = 200;
      const results = await Promise.all(
        Array.from({ length: total }, (_, i) => pub.publish('window/a', `w${i}`, { qos: 1 })),
      );
      assert.ok(
        results.every((r) => r.reasonCode === 0),
        'all acknowledged with success',
      );
      assert.equal(pubTap.sent.filter((p) => p.type === 'publish').length, total, 'each sent once');
      assert.equal(pubTap.maxOutgoingUnacked, 5, 'the client filled the window and never exceeded it');
      await got.waitFor(total, 10_000);
      assert.deepEqual(
        got.messages.map((m) => text(m.payload)),
        Array.from({ length: total }, (_, i) => `w${i}`),
      );
      assert.ok(subTap.maxIncomingUnacked <= 5, `broker → subscriber in flight: ${subTap.maxIncomingUnacked}`);
      assert.ok(subTap.maxIncomingUnacked >= 2, 'the broker used a window, not one at a time');
    } finally {
      await h.close();
    }
  });

  test('manualAck with Receive Maximum 2: the broker sends no more while two messages wait for ack()', async () => {
    const h = await Harness.start();
    try {
      const tap = wireTap(5);
      const sub = await h.client({ transport: tap.factory, manualAck: true, properties: { receiveMaximum: 2 } });
      await sub.subscribe('held/#', { qos: 1 });
      const got = collect(sub);
      const pub = await h.client({});
      const total = 6;
      for (let i = 0; i < total; i++) await pub.publish('held/a', `h${i}`, { qos: 1 });
      await got.waitFor(2);
      await delay(200);
      assert.equal(got.messages.length, 2, 'held back while two are unacknowledged');
      // Acknowledging the second first frees nothing: its PUBACK waits for the first's (arrival order).
      got.messages[1]?.ack();
      await delay(200);
      assert.equal(got.messages.length, 2, 'the held ack is not on the wire');
      assert.deepEqual([sub.unackedCount, sub.heldAckCount], [1, 1]);
      // Then in arrival order: every ack lets the next message in, until all have come.
      for (let next = 0; next < total; next++) {
        got.messages[next]?.ack();
        await got.waitFor(Math.min(total, Math.max(next + 1, 2) + 2));
      }
      await until(
        () => sub.unackedCount === 0,
        5000,
        () => `every message acknowledged (${sub.unackedCount} left)`,
      );
      assert.deepEqual(
        got.messages.map((m) => text(m.payload)),
        Array.from({ length: total }, (_, i) => `h${i}`),
      );
      assert.equal(tap.maxIncomingUnacked, 2, 'never more than two unacknowledged on the wire');
    } finally {
      await h.close();
    }
  });

  test('message expiry: an expired queued message is dropped; a live one arrives with the remaining time', async () => {
    const h = await Harness.start();
    try {
      const opts = { clientId: 'expiry-sub', clean: false };
      const sub = await h.client(opts);
      await sub.subscribe('exp/#', { qos: 1 });
      await sub.end();
      const pub = await h.client({});
      await pub.publish('exp/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publish('exp/long', 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
      await delay(2100);
      const back = await h.client(opts);
      const got = collect(back);
      await pub.publish('exp/marker', 'm', { qos: 1 });
      await got.waitFor(2);
      assert.deepEqual(
        got.messages.map((m) => m.topic),
        ['exp/long', 'exp/marker'],
      );
      const remaining = got.messages[0]?.properties?.messageExpiryInterval;
      assert.ok(remaining !== undefined && remaining < 60 && remaining > 0, `remaining expiry ${remaining}`);
      assert.equal(got.messages[1]?.properties?.messageExpiryInterval, undefined);
      assert.equal(h.broker.stats.droppedExpired, 1);
    } finally {
      await h.close();
    }
  });

  test('subscription identifiers come back with the messages each subscription matched', async () => {
    const h = await Harness.start();
    try {
      const sub = await h.client({});
      await sub.subscribe('sid/#', { qos: 1, properties: { subscriptionIdentifiers: [7] } });
      await sub.subscribe('sid/a', { qos: 1, properties: { subscriptionIdentifiers: [300] } });
      await sub.subscribe('sid/plain', { qos: 1 });
      const got = collect(sub);
      const pub = await h.client({});
      await pub.publish('sid/b', 'b', { qos: 1 });
      await pub.publish('sid/a', 'a', { qos: 1 });
      await pub.publish('sid/plain', 'p', { qos: 1 });
      await got.waitFor(3);
      await delay(50);
      const ids = (topic: string) =>
        got.messages
          .filter((m) => m.topic === topic)
          .flatMap((m) => m.properties?.subscriptionIdentifiers ?? [])
          .sort((a, b) => a - b);
      assert.deepEqual(ids('sid/b'), [7]);
      assert.deepEqual(ids('sid/a'), [7, 300], 'both matching subscriptions are named');
      // sid/plain matches sid/# (id 7) and the plain subscription (no id).
      assert.deepEqual(ids('sid/plain'), [7]);
      assert.equal(got.messages.filter((m) => m.topic === 'sid/b').length, 1);
    } finally {
      await h.close();
    }
  });

  test('shared subscription: two clients share the stream, each message to exactly one', async () => {
    const h = await Harness.start();
    try {
      const a = await h.client({});
      const b = await h.client({});
      await a.subscribe('$share/workers/jobs/#', { qos: 1 });
      await b.subscribe('$share/workers/jobs/#', { qos: 1 });
      const gotA = collect(a);
      const gotB = collect(b);
      const pub = await h.client({});
      const total = 40;
      for (let i = 0; i < total; i++) await pub.publish(`jobs/${i % 3}`, `j${i}`, { qos: 1 });
      await until(
        () => gotA.messages.length + gotB.messages.length >= total,
        5000,
        () => `${total} shared deliveries`,
      );
      await delay(50);
      const all = [...gotA.messages, ...gotB.messages].map((m) => text(m.payload));
      assert.equal(all.length, total, 'no message delivered twice');
      assert.deepEqual(new Set(all), new Set(Array.from({ length: total }, (_, i) => `j${i}`)));
      assert.ok(gotA.messages.length > 0 && gotB.messages.length > 0, 'both members got work');
    } finally {
      await h.close();
    }
  });
});

for (const qos of [1, 2] as const) {
  test(`broker process SIGKILLed mid-stream and restarted on its port: the client reconnects and every queued QoS ${qos} message is acknowledged`, async () => {
    const broker = new BrokerProcess();
    const dir = mkdtempSync(join(tmpdir(), 'otalink-client-broker-kill-'));
    let client: MqttClient | undefined;
    try {
      await broker.run();
      const port = broker.port;
      const storePath = join(dir, 'store.log');
      client = await connect({
        url: `mqtt://127.0.0.1:${port}`,
        clientId: `kill-restart-pub-${qos}`,
        clean: false,
        keepalive: 5,
        reconnect: fast,
        maxInflight: 10,
        store: await openFileStore(storePath),
      });
      const reconnects: number[] = [];
      client.on('reconnecting', (info) => reconnects.push(info.delayMs));
      let connects = 0;
      client.on('connected', () => connects++);
      const total = 2000;
      let acked = 0;
      const results = Array.from({ length: total }, (_, i) =>
        (client as MqttClient).publish('kill/s', `m${i}`, { qos }).then((r) => {
          acked++;
          return r;
        }),
      );
      await until(
        () => acked >= 100,
        15_000,
        () => `the stream to start (acked ${acked})`,
      );
      await broker.kill('SIGKILL');
      const ackedAtKill = acked;
      // Down long enough for at least one reconnect attempt to be refused.
      await until(
        () => reconnects.length >= 2,
        10_000,
        () => 'reconnect attempts while the broker is down',
      );
      await broker.run(port);
      assert.equal(broker.port, port, 'restarted on the same port');
      const settled = await Promise.all(results);
      assert.ok(ackedAtKill < total, `killed mid-stream (${ackedAtKill} of ${total} acknowledged)`);
      assert.equal(settled.length, total);
      // Nobody subscribes (only the publisher's guarantee is asserted): PUBACK says 0x10 no matching subscribers, a
      // success code; PUBCOMP has no such code and says 0. A QoS 2 message the broker took at PUBREC before it was
      // killed (it runs in memory, so its session went too) completes with 0x92, as the client reports it.
      const codes = new Set(settled.map((r) => r.reasonCode));
      const allowed = qos === 1 ? [0x10] : [0, 0x92];
      assert.ok(
        [...codes].every((c) => allowed.includes(c ?? -1)),
        `every message acknowledged with success: ${[...codes]}`,
      );
      assert.ok(codes.has(allowed[0]!), 'acknowledged by the restarted broker');
      assert.ok(connects >= 1, 'reconnected by itself');
      assert.equal(client.state, 'connected');
      assert.deepEqual(client.pendingCount, { inflight: 0, queued: 0 });
      await client.end();
      client = undefined;
      const reopened = await openFileStore(storePath);
      assert.deepEqual(await reopened.list(), [], 'the file store holds nothing once everything was acknowledged');
      await reopened.close?.();
    } finally {
      await client?.end({ force: true });
      await broker.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
