// Subscribe, publish and the QoS 0/1/2 flows in both directions, both versions; the QoS 2 duplicate rule;
// unsubscribe; wildcards; overlapping subscriptions; the outbound in-flight window.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { QoS } from '@otalink/mqtt';
import { connected, type RawClient, startBroker, str, subscribe, type TestBroker, text } from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`02 subscribe/publish/QoS, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    before(async () => {
      b = await startBroker({ sysIntervalSeconds: 1 });
    });
    after(() => b.close());

    async function publishFrom(publisher: RawClient, topic: string, payload: string, qos: QoS, packetId = 1) {
      publisher.send({
        type: 'publish',
        topic,
        payload: text(payload),
        qos,
        retain: false,
        dup: false,
        packetId: qos ? packetId : undefined,
      });
      if (qos === 1) return publisher.expect('puback');
      if (qos === 2) {
        const pubrec = await publisher.expect('pubrec');
        publisher.send({ type: 'pubrel', packetId });
        await publisher.expect('pubcomp');
        return pubrec;
      }
      return undefined;
    }

    for (const subQos of [0, 1, 2] as const) {
      for (const pubQos of [0, 1, 2] as const) {
        test(`publish QoS ${pubQos} to a QoS ${subQos} subscription arrives at QoS ${Math.min(subQos, pubQos)}`, async () => {
          const topic = `q/${subQos}/${pubQos}`;
          const sub = await connected(b.port, { version, clientId: id('sub') });
          assert.deepEqual(await subscribe(sub, topic, subQos), [subQos]);
          const pub = await connected(b.port, { version, clientId: id('pub') });
          await publishFrom(pub, topic, 'hello', pubQos, 11);
          const message = await sub.expect('publish');
          assert.equal(message.topic, topic);
          assert.equal(str(message.payload), 'hello');
          assert.equal(message.qos, Math.min(subQos, pubQos));
          assert.equal(message.retain, false);
          if (message.qos === 1) sub.send({ type: 'puback', packetId: message.packetId! });
          if (message.qos === 2) {
            sub.send({ type: 'pubrec', packetId: message.packetId! });
            const pubrel = await sub.expect('pubrel');
            assert.equal(pubrel.packetId, message.packetId);
            sub.send({ type: 'pubcomp', packetId: message.packetId! });
          }
          assert.ok(await sub.silentFor(100));
          sub.end();
          pub.end();
        });
      }
    }

    test('QoS 2: a repeated PUBLISH before PUBREL gets PUBREC again and is delivered once', async () => {
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, 'dup/q2', 2);
      const pub = await connected(b.port, { version, clientId: id('pub') });
      const packet = {
        type: 'publish',
        topic: 'dup/q2',
        payload: text('once'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 7,
      } as const;
      pub.send(packet);
      assert.equal((await pub.expect('pubrec')).packetId, 7);
      pub.send({ ...packet, dup: true });
      assert.equal((await pub.expect('pubrec')).packetId, 7);
      pub.send({ ...packet, dup: true });
      assert.equal((await pub.expect('pubrec')).packetId, 7);
      pub.send({ type: 'pubrel', packetId: 7 });
      assert.equal((await pub.expect('pubcomp')).packetId, 7);
      const message = await sub.expect('publish');
      assert.equal(str(message.payload), 'once');
      sub.send({ type: 'pubrec', packetId: message.packetId! });
      await sub.expect('pubrel');
      sub.send({ type: 'pubcomp', packetId: message.packetId! });
      assert.ok(await sub.silentFor(200), 'delivered more than once');
      // After PUBREL the id is free again: the same id is a new message.
      pub.send(packet);
      await pub.expect('pubrec');
      assert.equal(str((await sub.expect('publish')).payload), 'once');
      sub.end();
      pub.end();
    });

    test('PUBREL for an unknown packet id is still completed', async () => {
      const pub = await connected(b.port, { version, clientId: id('pub') });
      pub.send({ type: 'pubrel', packetId: 99 });
      const pubcomp = await pub.expect('pubcomp');
      assert.equal(pubcomp.packetId, 99);
      if (version === 5) assert.equal(pubcomp.reasonCode, 0x92);
      pub.end();
    });

    if (version === 5) {
      test('PUBACK and PUBREC say 0x10 when no subscriber matched', async () => {
        const pub = await connected(b.port, { version, clientId: id('pub') });
        const puback = await publishFrom(pub, 'nobody/listens', 'x', 1, 3);
        assert.equal(puback?.type === 'puback' && puback.reasonCode, 0x10);
        const pubrec = await publishFrom(pub, 'nobody/listens', 'x', 2, 4);
        assert.equal(pubrec?.type === 'pubrec' && pubrec.reasonCode, 0x10);
        pub.end();
      });
    }

    test('unsubscribe stops delivery', async () => {
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, 'unsub/t', 1);
      sub.send({ type: 'unsubscribe', packetId: 5, topicFilters: ['unsub/t', 'never/subscribed'] });
      const unsuback = await sub.expect('unsuback');
      assert.equal(unsuback.packetId, 5);
      if (version === 5) assert.deepEqual(unsuback.reasonCodes, [0x00, 0x11]);
      const pub = await connected(b.port, { version, clientId: id('pub') });
      await publishFrom(pub, 'unsub/t', 'x', 1);
      assert.ok(await sub.silentFor(200));
      sub.end();
      pub.end();
    });

    test('wildcards + and # match, $SYS topics are not matched by #', async () => {
      const sub = await connected(b.port, { version, clientId: id('sub') });
      sub.send({
        type: 'subscribe',
        packetId: 2,
        subscriptions: [
          { topicFilter: 'w/+/x', qos: 0 },
          { topicFilter: '#', qos: 0 },
        ],
      });
      assert.deepEqual((await sub.expect('suback')).reasonCodes, [0, 0]);
      const pub = await connected(b.port, { version, clientId: id('pub') });
      await publishFrom(pub, 'w/a/x', 'one', 0);
      const first = await sub.expect('publish');
      assert.equal(first.topic, 'w/a/x');
      // $SYS is published every second; # must not see it.
      assert.ok(await sub.silentFor(1300));
      const sys = await connected(b.port, { version, clientId: id('sys') });
      await subscribe(sys, '$SYS/broker/uptime', 0);
      const uptime = await sys.expect('publish', 3000);
      assert.match(str(uptime.payload), /^\d+ seconds$/);
      sub.end();
      pub.end();
      sys.end();
    });

    test('overlapping subscriptions deliver one copy at the highest QoS', async () => {
      const sub = await connected(b.port, { version, clientId: id('sub') });
      sub.send({
        type: 'subscribe',
        packetId: 2,
        subscriptions: [
          { topicFilter: 'ov/+', qos: 0 },
          { topicFilter: 'ov/#', qos: 1 },
        ],
      });
      await sub.expect('suback');
      const pub = await connected(b.port, { version, clientId: id('pub') });
      await publishFrom(pub, 'ov/a', 'x', 2);
      const message = await sub.expect('publish');
      assert.equal(message.qos, 1);
      sub.send({ type: 'puback', packetId: message.packetId! });
      assert.ok(await sub.silentFor(200));
      sub.end();
      pub.end();
    });

    test('many subscribers each get the message with their own packet id', async () => {
      const subs: RawClient[] = [];
      for (let i = 0; i < 5; i++) {
        const sub = await connected(b.port, { version, clientId: id('fan') });
        await subscribe(sub, 'fan/out', 1);
        subs.push(sub);
      }
      // Give one subscriber an in-flight message so its next id differs.
      const pub = await connected(b.port, { version, clientId: id('pub') });
      await publishFrom(pub, 'fan/out', 'first', 1);
      for (const sub of subs) {
        const m = await sub.expect('publish');
        sub.send({ type: 'puback', packetId: m.packetId! });
      }
      await publishFrom(pub, 'fan/out', 'second', 1);
      for (const sub of subs) {
        const m = await sub.expect('publish');
        assert.equal(str(m.payload), 'second');
        assert.equal(m.qos, 1);
        assert.ok(m.packetId !== undefined && m.packetId > 0);
        sub.end();
      }
      pub.end();
    });

    test('the in-flight window holds further QoS 1 messages until PUBACK', async () => {
      const sub = await connected(b.port, {
        version,
        clientId: id('window'),
        properties: version === 5 ? { receiveMaximum: 2 } : undefined,
      });
      await subscribe(sub, 'win/t', 1);
      const pub = await connected(b.port, { version, clientId: id('pub') });
      const count = version === 5 ? 2 : 100; // 3.1.1 gets the broker's window (100)
      for (let i = 1; i <= count + 1; i++) await publishFrom(pub, 'win/t', `m${i}`, 1, i);
      const first: number[] = [];
      for (let i = 0; i < count; i++) first.push((await sub.expect('publish')).packetId!);
      assert.ok(await sub.silentFor(200), 'sent beyond the window');
      sub.send({ type: 'puback', packetId: first[0]! });
      const next = await sub.expect('publish');
      assert.equal(str(next.payload), `m${count + 1}`);
      sub.end();
      pub.end();
    });
  });
}
