// Protocol semantics checked against MQTT 3.1.1 / 5.0 and compared with Mosquitto 2.0 packet by packet: session
// takeover (wills, in-flight resend, bursts), clean session / clean start, overlapping and shared subscriptions,
// $SYS, retained topics with empty levels, acknowledgements of the wrong kind, QoS 2 interrupted at every step.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Packet } from '@otalink/mqtt';
import {
  type RawClient as Client,
  connectClient,
  connected,
  delay,
  persistent,
  publishQos,
  RawClient,
  startBroker,
  str,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`26 semantics, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `sem-${name}-${version}-${++n}`;
    const keep = (clientId: string) => persistent(clientId, version);
    before(async () => {
      b = await startBroker({
        authenticate: (request) =>
          request.username === undefined || str(request.password ?? new Uint8Array()) === 'ok'
            ? { ok: true }
            : { ok: false, reasonCode: 0x86 },
      });
    });
    after(() => b.close());

    async function publish(topic: string, payload: string, qos: 0 | 1 | 2, retain = false) {
      const pub = await connected(b.port, { version, clientId: id('pub') });
      if (qos > 0) await publishQos(pub, topic, payload, qos as 1 | 2, 1, retain);
      else {
        pub.send({ type: 'publish', topic, payload: text(payload), qos, retain, dup: false });
        // Answered in order: the PUBLISH was taken once PINGRESP comes.
        pub.send({ type: 'pingreq' });
        await pub.expect('pingresp');
      }
      pub.end();
    }

    const publishes = (packets: Packet[]) =>
      packets.flatMap((p) => (p.type === 'publish' ? [`${p.topic}:${str(p.payload)}:q${p.qos}`] : []));

    async function watcher(topic: string): Promise<Client> {
      const w = await connected(b.port, { version, clientId: id('watch') });
      await subscribe(w, topic, 1);
      return w;
    }

    describe('acknowledgements of the wrong kind ([MQTT-4.3.3-3], [MQTT-4.3.3-5]; Mosquitto closes too)', () => {
      async function inflight(qos: 1 | 2) {
        const clientId = id('ack');
        const topic = `sem/ack/${clientId}`;
        const client = await connected(b.port, keep(clientId));
        await subscribe(client, topic, qos);
        await publish(topic, 'm', qos);
        const message = await client.expect('publish');
        assert.equal(message.qos, qos);
        return { clientId, client, packetId: message.packetId! };
      }

      async function closedAsProtocolError(client: Client) {
        const packets = await client.expectClose();
        if (version === 5) {
          const last = packets.at(-1);
          assert.equal(last?.type === 'disconnect' && last.reasonCode, 0x82);
        }
      }

      test('PUBACK for a QoS 2 message is a protocol error and does not end its delivery', async () => {
        const { clientId, client, packetId } = await inflight(2);
        client.send({ type: 'puback', packetId });
        await closedAsProtocolError(client);
        const again = await connected(b.port, keep(clientId));
        const resent = await again.expect('publish');
        assert.deepEqual([resent.packetId, resent.dup, resent.qos], [packetId, true, 2]);
        again.send({ type: 'pubrec', packetId });
        await again.expect('pubrel');
        again.send({ type: 'pubcomp', packetId });
        assert.ok(await again.silentFor(100));
        again.end();
      });

      test('PUBCOMP for a QoS 2 message not yet PUBRECed is a protocol error', async () => {
        const { clientId, client, packetId } = await inflight(2);
        client.send({ type: 'pubcomp', packetId });
        await closedAsProtocolError(client);
        const again = await connected(b.port, keep(clientId));
        const resent = await again.expect('publish');
        assert.deepEqual([resent.packetId, resent.dup], [packetId, true]);
        again.end();
      });

      test('PUBREC for a QoS 1 message is a protocol error, not a PUBREL', async () => {
        const { clientId, client, packetId } = await inflight(1);
        client.send({ type: 'pubrec', packetId });
        const packets = await client.expectClose();
        assert.ok(!packets.some((p) => p.type === 'pubrel'), 'a QoS 1 message was released as QoS 2');
        const again = await connected(b.port, keep(clientId));
        const resent = await again.expect('publish');
        assert.deepEqual([resent.packetId, resent.dup, resent.qos], [packetId, true, 1]);
        again.send({ type: 'puback', packetId });
        assert.ok(await again.silentFor(100));
        again.end();
      });

      test('acknowledgements for ids not in flight: PUBACK/PUBCOMP ignored, PUBREL/PUBREC answered (5.0: 0x92)', async () => {
        const client = await connected(b.port, { version, clientId: id('unknown') });
        client.send({ type: 'puback', packetId: 11 });
        client.send({ type: 'pubcomp', packetId: 12 });
        client.send({ type: 'pubrel', packetId: 13 });
        client.send({ type: 'pubrec', packetId: 14 });
        const pubcomp = await client.expect('pubcomp');
        const pubrel = await client.expect('pubrel');
        assert.equal(pubcomp.packetId, 13);
        assert.equal(pubrel.packetId, 14);
        if (version === 5) {
          assert.equal(pubcomp.reasonCode, 0x92);
          assert.equal(pubrel.reasonCode, 0x92);
        }
        client.send({ type: 'pingreq' });
        await client.expect('pingresp');
        client.end();
      });
    });

    describe('takeover', () => {
      test('three CONNECTs in one burst: each earlier one is closed (5.0: 0x8E), the last holds the session', async () => {
        const clientId = id('burst');
        const first = await connected(b.port, keep(clientId));
        await subscribe(first, 'sem/burst', 1);
        const [second, third] = await Promise.all([RawClient.open(b.port, version), RawClient.open(b.port, version)]);
        for (const c of [second, third]) {
          c.send({
            type: 'connect',
            protocolVersion: version,
            clientId,
            clean: false,
            keepalive: 60,
            ...keep(clientId),
          });
        }
        for (const old of [first, second]) {
          const last = (await old.expectClose()).at(-1);
          if (version === 5) assert.equal(last?.type === 'disconnect' && last.reasonCode, 0x8e);
        }
        const connack = third.received.find((p) => p.type === 'connack');
        assert.equal(connack?.type === 'connack' && connack.sessionPresent, true);
        third.received.length = 0;
        await publish('sem/burst', 'kept', 1);
        const message = await third.expect('publish');
        assert.equal(str(message.payload), 'kept');
        third.end();
      });

      test('an unacknowledged QoS 1/2 message of the old connection is resent, with DUP, on the new one', async () => {
        const clientId = id('resend');
        const old = await connected(b.port, keep(clientId));
        await subscribe(old, 'sem/resend/#', 2);
        await publish('sem/resend/1', 'one', 1);
        await publish('sem/resend/2', 'two', 2);
        const sent = [await old.expect('publish'), await old.expect('publish')];
        const fresh = await connectClient(b.port, keep(clientId));
        assert.equal(fresh.connack.sessionPresent, true);
        const resent = [await fresh.client.expect('publish'), await fresh.client.expect('publish')];
        assert.deepEqual(
          resent.map((p) => [p.packetId, p.qos, p.dup]),
          sent.map((p) => [p.packetId, p.qos, true]),
        );
        // A new message takes an id that is not in flight.
        await publish('sem/resend/3', 'three', 1);
        const next = await fresh.client.expect('publish');
        assert.ok(!sent.some((p) => p.packetId === next.packetId));
        fresh.client.end();
      });

      if (version === 5) {
        test('a delayed will: not sent when the takeover resumes the session, sent when it starts clean', async () => {
          for (const clean of [false, true]) {
            const clientId = id('delay');
            const topic = `sem/will/${clientId}`;
            const w = await watcher(topic);
            const will = {
              topic,
              payload: text('gone'),
              qos: 0 as const,
              retain: false,
              properties: { willDelayInterval: 30 },
            };
            await connected(b.port, { ...keep(clientId), will });
            const fresh = await connected(b.port, { ...keep(clientId), clean });
            if (clean) assert.equal(str((await w.expect('publish')).payload), 'gone');
            else assert.ok(await w.silentFor(300), 'the will of a resumed session was sent');
            fresh.end();
            w.end();
          }
        });
      }
    });

    describe('clean session / clean start ([MQTT-3.2.2-2], [MQTT-3.2.2-3])', () => {
      test('clean after a persistent session discards it and its queue; Session Present 0', async () => {
        const clientId = id('clean');
        const c = await connected(b.port, keep(clientId));
        await subscribe(c, 'sem/clean', 1);
        c.send({ type: 'disconnect' });
        await c.closedPromise;
        await publish('sem/clean', 'queued', 1);
        const clean = await connectClient(b.port, { ...keep(clientId), clean: true });
        assert.equal(clean.connack.sessionPresent, false);
        assert.ok(await clean.client.silentFor(200));
        clean.client.send({ type: 'disconnect' });
        await clean.client.closedPromise;
        await publish('sem/clean', 'after', 1);
        const back = await connectClient(b.port, keep(clientId));
        assert.equal(back.connack.sessionPresent, version === 5);
        assert.ok(await back.client.silentFor(200), 'the discarded subscription still delivered');
        back.client.end();
      });

      test('a refused CONNECT for a client id leaves its connection and session alone', async () => {
        const clientId = id('refused');
        const c = await connected(b.port, keep(clientId));
        await subscribe(c, 'sem/refused', 1);
        const refused = await connectClient(b.port, {
          ...keep(clientId),
          clean: true,
          username: 'u',
          password: text('wrong'),
        });
        assert.equal(refused.connack.reasonCode, version === 5 ? 0x86 : 0x04);
        assert.equal(refused.connack.sessionPresent, false);
        await publish('sem/refused', 'still', 1);
        assert.equal(str((await c.expect('publish')).payload), 'still');
        assert.equal(c.closed, false);
        c.end();
      });

      if (version === 5) {
        test('Clean Start 0 with expiry 0 resumes the session, which then ends with the connection', async () => {
          const clientId = id('expiry0');
          const c = await connected(b.port, keep(clientId));
          c.send({ type: 'disconnect' });
          await c.closedPromise;
          const resumed = await connectClient(b.port, { version, clientId, clean: false });
          assert.equal(resumed.connack.sessionPresent, true);
          resumed.client.send({ type: 'disconnect' });
          await resumed.client.closedPromise;
          const after = await connectClient(b.port, { version, clientId, clean: false });
          assert.equal(after.connack.sessionPresent, false);
          after.client.end();
        });
      }
    });

    describe('subscriptions', () => {
      test('overlapping filters: one copy at the highest granted QoS, never above the publish QoS', async () => {
        const c = await connected(b.port, { version, clientId: id('overlap') });
        c.send({
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topicFilter: 'sem/ov/#', qos: 0 },
            { topicFilter: 'sem/ov/+', qos: 2 },
          ],
          properties: version === 5 ? { subscriptionIdentifiers: [4] } : undefined,
        });
        await c.expect('suback');
        await publish('sem/ov/x', 'two', 2);
        const message = await c.expect('publish');
        assert.equal(message.qos, 2);
        // [MQTT-3.3.4-4]: one copy carries the identifier of every matching subscription (repeated if shared).
        if (version === 5) assert.deepEqual(message.properties?.subscriptionIdentifiers, [4, 4]);
        await publish('sem/ov/x', 'one', 1);
        assert.equal((await c.expect('publish')).qos, 1);
        assert.ok(await c.silentFor(150));
        c.end();
      });

      test('UNSUBSCRIBE: an unknown filter (5.0 0x11); a QoS 2 message in flight still completes', async () => {
        const c = await connected(b.port, { version, clientId: id('unsub') });
        await subscribe(c, 'sem/unsub', 2);
        await publish('sem/unsub', 'm', 2);
        const message = await c.expect('publish');
        c.send({ type: 'unsubscribe', packetId: 2, topicFilters: ['sem/unsub', 'sem/none'] });
        const unsuback = await c.expect('unsuback');
        if (version === 5) assert.deepEqual(unsuback.reasonCodes, [0x00, 0x11]);
        c.send({ type: 'pubrec', packetId: message.packetId! });
        assert.equal((await c.expect('pubrel')).packetId, message.packetId);
        c.send({ type: 'pubcomp', packetId: message.packetId! });
        await publish('sem/unsub', 'later', 1);
        assert.ok(await c.silentFor(150));
        c.end();
      });

      test('shared: no retained message on subscribe, one copy per group, same group name with another filter apart', async () => {
        await publish('sem/sh/t', 'retained', 1, true);
        const a = await connected(b.port, { version, clientId: id('sha') });
        a.send({
          type: 'subscribe',
          packetId: 1,
          subscriptions: [
            { topicFilter: '$share/g/sem/sh/t', qos: 1 },
            { topicFilter: '$share/h/sem/sh/t', qos: 1 },
            { topicFilter: '$share/g/sem/sh/+', qos: 1 },
          ],
        });
        await a.expect('suback');
        assert.ok(await a.silentFor(150), 'a retained message went to a shared subscription');
        await publish('sem/sh/t', 'live', 1);
        const got = [await a.expect('publish'), await a.expect('publish'), await a.expect('publish')];
        assert.deepEqual(
          got.map((p) => [str(p.payload), p.retain]),
          [
            ['live', false],
            ['live', false],
            ['live', false],
          ],
        );
        for (const p of got) a.send({ type: 'puback', packetId: p.packetId! });
        assert.ok(await a.silentFor(100));
        a.end();
        await publish('sem/sh/t', '', 0, true);
      });

      test('a clean member leaving with an unacknowledged shared message: it goes to another member', async () => {
        const a = await connected(b.port, { version, clientId: id('orphan-a') });
        const c = await connected(b.port, { version, clientId: id('orphan-b') });
        await subscribe(a, '$share/o/sem/orphan', 1);
        await subscribe(c, '$share/o/sem/orphan', 1);
        await publish('sem/orphan', 'm0', 1);
        await publish('sem/orphan', 'm1', 1);
        await delay(50);
        const heldByA = publishes(a.received);
        assert.equal(heldByA.length, 1);
        a.end();
        const seen = [str((await c.expect('publish')).payload), str((await c.expect('publish')).payload)];
        assert.deepEqual(seen.sort(), ['m0', 'm1']);
        c.end();
      });
    });

    test('$SYS: not matched by leading wildcards (shared ones included), not publishable by clients', async () => {
      const c = await connected(b.port, { version, clientId: id('sys') });
      c.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: '#', qos: 0 },
          { topicFilter: '+/broker/#', qos: 0 },
          { topicFilter: '$share/s/#', qos: 0 },
        ],
      });
      await c.expect('suback');
      b.broker.publish({ topic: '$SYS/broker/test', payload: text('x'), qos: 0, retain: false });
      await publish('$SYS/broker/test', 'fake', 1, true);
      const d = await connected(b.port, { version, clientId: id('sys-d') });
      await subscribe(d, '$SYS/broker/test', 0);
      assert.ok(await d.silentFor(150), 'a client published into $SYS');
      assert.ok(!publishes(c.received).some((m) => m.startsWith('$')), 'a leading wildcard matched $SYS');
      c.end();
      d.end();
    });

    test('retained topics with empty levels are kept, matched and cleared apart', async () => {
      const topics = ['sem/rt//b', '/sem/rt', 'sem/rt/', 'sem/rt'];
      for (const topic of topics) await publish(topic, `v:${topic}`, 2, true);
      await publish('sem/rt//b', 'replaced', 1, true);
      const c = await connected(b.port, { version, clientId: id('rt') });
      c.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: 'sem/rt/+/b', qos: 1 },
          { topicFilter: '+/sem/rt', qos: 2 },
          { topicFilter: 'sem/rt/#', qos: 0 },
        ],
      });
      await c.expect('suback');
      await delay(150);
      assert.deepEqual(publishes(c.received.splice(0)).sort(), [
        '/sem/rt:v:/sem/rt:q2',
        'sem/rt//b:replaced:q0',
        'sem/rt//b:replaced:q1',
        'sem/rt/:v:sem/rt/:q0',
        'sem/rt:v:sem/rt:q0',
      ]);
      for (const topic of topics) await publish(topic, '', 0, true);
      c.end();
      const d = await connected(b.port, { version, clientId: id('rt2') });
      await subscribe(d, 'sem/rt/#', 1);
      await subscribe(d, '+/sem/rt', 1, { packetId: 2 });
      assert.ok(await d.silentFor(150), 'a cleared retained message was sent');
      d.end();
    });

    for (const step of ['publish', 'pubrec', 'pubrel'] as const) {
      test(`QoS 2 interrupted after ${step}, resumed: exactly once in both directions`, async () => {
        const clientId = id(`q2-${step}`);
        const topic = `sem/q2/${clientId}`;
        const w = await connected(b.port, { version, clientId: id('q2w') });
        await subscribe(w, `${topic}/in`, 2);
        let c = await connected(b.port, keep(clientId));
        await subscribe(c, `${topic}/out`, 2);
        await publish(`${topic}/out`, 'down', 2);
        const down = await c.expect('publish');
        c.send({
          type: 'publish',
          topic: `${topic}/in`,
          payload: text('up'),
          qos: 2,
          retain: false,
          dup: false,
          packetId: 9,
        });
        if (step !== 'publish') {
          await c.expect('pubrec');
          c.send({ type: 'pubrec', packetId: down.packetId! });
          await c.expect('pubrel');
        }
        if (step === 'pubrel') c.send({ type: 'pubrel', packetId: 9 });
        await delay(50);
        c.end();
        await c.closedPromise;
        c = await connected(b.port, keep(clientId));
        if (step === 'publish') {
          const again = await c.expect('publish');
          assert.deepEqual([again.packetId, again.dup], [down.packetId, true]);
          c.send({ type: 'pubrec', packetId: down.packetId! });
        }
        assert.equal((await c.expect('pubrel')).packetId, down.packetId);
        c.send({ type: 'pubcomp', packetId: down.packetId! });
        if (step !== 'pubrel') {
          c.send({
            type: 'publish',
            topic: `${topic}/in`,
            payload: text('up'),
            qos: 2,
            retain: false,
            dup: true,
            packetId: 9,
          });
          await c.expect('pubrec');
        }
        c.send({ type: 'pubrel', packetId: 9 });
        await c.expect('pubcomp');
        assert.ok(await c.silentFor(150));
        await delay(50);
        assert.deepEqual(publishes(w.received), [`${topic}/in:up:q2`]);
        c.end();
        w.end();
      });
    }

    test('PINGREQ before CONNECT closes; right after CONNECT (one write) it is answered after CONNACK', async () => {
      const early = await RawClient.open(b.port, version);
      early.send({ type: 'pingreq' });
      assert.deepEqual(await early.expectClose(), []);
      const c = await RawClient.open(b.port, version);
      c.send({ type: 'connect', protocolVersion: version, clientId: id('ping'), clean: true, keepalive: 0 });
      c.send({ type: 'pingreq' });
      await c.expect('connack');
      await c.expect('pingresp');
      c.end();
    });
  });
}
