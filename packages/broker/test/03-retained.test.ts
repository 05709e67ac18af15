// Retained messages: stored, cleared with an empty payload, delivered on subscribe (retain flag set), retain as
// published and retain handling 0/1/2 in 5.0, expiry of a retained message.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { QoS } from '@otalink/mqtt';
import { MemoryStore } from '../src/store/memory.js';
import {
  connected,
  delay,
  type RawClient,
  startBroker,
  str,
  subscribe,
  type TestBroker,
  text,
} from './support/raw-client.js';

function publish(
  client: RawClient,
  topic: string,
  payload: string,
  qos: QoS = 0,
  retain = true,
  properties?: { messageExpiryInterval?: number },
) {
  client.send({
    type: 'publish',
    topic,
    payload: text(payload),
    qos,
    retain,
    dup: false,
    packetId: qos ? 1 : undefined,
    properties,
  });
}

for (const version of [4, 5] as const) {
  describe(`03 retained, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    const root = `r${version}`;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    test('a retained message reaches later subscribers with the retain flag, at the lower QoS', async () => {
      const pub = await connected(b.port, { version, clientId: id('pub') });
      publish(pub, `${root}/a`, 'kept', 1);
      await pub.expect('puback');
      publish(pub, `${root}/b`, 'not kept', 0, false);
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, `${root}/+`, 0);
      const m = await sub.expect('publish');
      assert.equal(m.topic, `${root}/a`);
      assert.equal(str(m.payload), 'kept');
      assert.equal(m.retain, true);
      assert.equal(m.qos, 0);
      assert.ok(await sub.silentFor(150));
      const sub1 = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub1, `${root}/a`, 2);
      const m1 = await sub1.expect('publish');
      assert.equal(m1.qos, 1);
      sub.end();
      sub1.end();
      pub.end();
    });

    test('an empty retained payload clears the topic', async () => {
      const pub = await connected(b.port, { version, clientId: id('pub') });
      publish(pub, `${root}/clear`, 'x');
      publish(pub, `${root}/clear`, '');
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, `${root}/clear`, 0);
      assert.ok(await sub.silentFor(200));
      sub.end();
      pub.end();
    });

    test('a live message to an existing subscription has the retain flag cleared unless retain-as-published', async () => {
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, `${root}/live`, 0);
      const rap = await connected(b.port, { version, clientId: id('rap') });
      if (version === 5) await subscribe(rap, `${root}/live`, 0, { retainAsPublished: true });
      const pub = await connected(b.port, { version, clientId: id('pub') });
      publish(pub, `${root}/live`, 'now');
      const m = await sub.expect('publish');
      assert.equal(m.retain, false);
      if (version === 5) assert.equal((await rap.expect('publish')).retain, true);
      sub.end();
      rap.end();
      pub.end();
    });

    if (version === 5) {
      test('retain handling 1 sends retained messages only for a new subscription, 2 never', async () => {
        const pub = await connected(b.port, { version, clientId: id('pub') });
        publish(pub, `${root}/rh`, 'stored');
        const sub = await connected(b.port, { version, clientId: id('sub') });
        await subscribe(sub, `${root}/rh`, 0, { retainHandling: 1 });
        assert.equal(str((await sub.expect('publish')).payload), 'stored');
        await subscribe(sub, `${root}/rh`, 0, { retainHandling: 1 });
        assert.ok(await sub.silentFor(150), 'resubscription resent retained with retain handling 1');
        await subscribe(sub, `${root}/rh`, 0, { retainHandling: 0 });
        assert.equal((await sub.expect('publish')).retain, true);
        const never = await connected(b.port, { version, clientId: id('never') });
        await subscribe(never, `${root}/rh`, 0, { retainHandling: 2 });
        assert.ok(await never.silentFor(150));
        sub.end();
        never.end();
        pub.end();
      });

      test('a retained message past its expiry is not delivered', async () => {
        const pub = await connected(b.port, { version, clientId: id('pub') });
        publish(pub, `${root}/exp`, 'short', 0, true, { messageExpiryInterval: 1 });
        publish(pub, `${root}/exp2`, 'long', 0, true, { messageExpiryInterval: 100 });
        const early = await connected(b.port, { version, clientId: id('early') });
        await subscribe(early, `${root}/exp2`, 0);
        const m = await early.expect('publish');
        assert.ok((m.properties?.messageExpiryInterval ?? 0) <= 100);
        await delay(1200);
        const late = await connected(b.port, { version, clientId: id('late') });
        await subscribe(late, `${root}/exp`, 0);
        assert.ok(await late.silentFor(200));
        early.end();
        late.end();
        pub.end();
      });

      test('a retained message a SUBSCRIBE finds expired leaves the store and the retained count too', async () => {
        const store = new MemoryStore();
        const own = await startBroker({ store });
        const pub = await connected(own.port, { version, clientId: id('pub') });
        publish(pub, `${root}/gone`, 'short', 0, true, { messageExpiryInterval: 1 });
        while (own.broker.stats.retainedCurrent === 0) await delay(5);
        await delay(1100);
        const late = await connected(own.port, { version, clientId: id('late') });
        await subscribe(late, `${root}/gone`, 0);
        assert.ok(await late.silentFor(150));
        assert.equal(own.broker.stats.retainedCurrent, 0);
        late.end();
        pub.end();
        await own.close();
        // What a broker started on this store next would read: the expired message is gone from it already.
        assert.equal((await store.load()).retained.has(`${root}/gone`), false);
      });

      test('the subscription identifier comes with retained messages', async () => {
        const pub = await connected(b.port, { version, clientId: id('pub') });
        publish(pub, `${root}/sid`, 'x');
        const sub = await connected(b.port, { version, clientId: id('sub') });
        await subscribe(sub, `${root}/sid`, 0, {}, { subscriptionIdentifiers: [42] });
        assert.deepEqual((await sub.expect('publish')).properties?.subscriptionIdentifiers, [42]);
        sub.end();
        pub.end();
      });
    }

    test('broker.publish with retain is stored like a client message', async () => {
      b.broker.publish({ topic: `${root}/embedded`, payload: 'from code', retain: true, qos: 1 });
      const sub = await connected(b.port, { version, clientId: id('sub') });
      await subscribe(sub, `${root}/embedded`, 1);
      const m = await sub.expect('publish');
      assert.equal(str(m.payload), 'from code');
      assert.equal(m.qos, 1);
      assert.ok(b.broker.stats.retainedCurrent >= 1);
      sub.end();
    });
  });
}
