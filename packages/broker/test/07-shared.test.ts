// Shared subscriptions $share/{group}/{filter}: one member per group gets each message (round-robin), groups
// are independent of each other and of ordinary subscriptions, no retained messages on subscribe, both versions.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  connected,
  delay,
  type RawClient,
  startBroker,
  str,
  subscribe,
  type TestBroker,
} from './support/raw-client.js';

for (const version of [4, 5] as const) {
  describe(`07 shared subscriptions, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    let b: TestBroker;
    let n = 0;
    const id = (name: string) => `${name}-${version}-${++n}`;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    async function drain(client: RawClient, max: number): Promise<string[]> {
      const got: string[] = [];
      while (got.length < max && !(await client.silentFor(150))) {
        const m = await client.expect('publish');
        got.push(str(m.payload));
        if (m.qos === 1) client.send({ type: 'puback', packetId: m.packetId! });
      }
      return got;
    }

    test('each message goes to exactly one member of the group, spread round-robin', async () => {
      const members: RawClient[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await connected(b.port, { version, clientId: id('member') });
        assert.deepEqual(await subscribe(m, `$share/g${version}/jobs/+`, 1), [1]);
        members.push(m);
      }
      const plain = await connected(b.port, { version, clientId: id('plain') });
      await subscribe(plain, 'jobs/+', 0);
      for (let i = 0; i < 9; i++) b.broker.publish({ topic: 'jobs/x', payload: `job${i}`, qos: 1 });
      const counts = await Promise.all(members.map((m) => drain(m, 9)));
      const all = counts.flat().sort();
      assert.deepEqual(all, Array.from({ length: 9 }, (_, i) => `job${i}`).sort());
      for (const got of counts) assert.equal(got.length, 3);
      // The ordinary subscription sees every message.
      assert.equal((await drain(plain, 9)).length, 9);
      for (const m of [...members, plain]) m.end();
    });

    test('two groups on the same filter each get every message', async () => {
      const a = await connected(b.port, { version, clientId: id('a') });
      const c = await connected(b.port, { version, clientId: id('c') });
      await subscribe(a, '$share/one/two/t', 0);
      await subscribe(c, '$share/two/two/t', 0);
      b.broker.publish({ topic: 'two/t', payload: 'both' });
      assert.equal(str((await a.expect('publish')).payload), 'both');
      assert.equal(str((await c.expect('publish')).payload), 'both');
      a.end();
      c.end();
    });

    test('no retained messages are sent for a shared subscription', async () => {
      b.broker.publish({ topic: 'sr/t', payload: 'kept', retain: true });
      const m = await connected(b.port, { version, clientId: id('sr') });
      await subscribe(m, '$share/g/sr/t', 0);
      assert.ok(await m.silentFor(200));
      m.end();
    });

    test('a member that leaves no longer receives; unsubscribe from the group works', async () => {
      const a = await connected(b.port, { version, clientId: id('leave-a') });
      const c = await connected(b.port, { version, clientId: id('leave-c') });
      await subscribe(a, '$share/lv/lv/t', 0);
      await subscribe(c, '$share/lv/lv/t', 0);
      a.send({ type: 'unsubscribe', packetId: 3, topicFilters: ['$share/lv/lv/t'] });
      await a.expect('unsuback');
      for (let i = 0; i < 4; i++) b.broker.publish({ topic: 'lv/t', payload: `m${i}` });
      assert.equal((await drain(c, 4)).length, 4);
      assert.ok(await a.silentFor(100));
      a.end();
      c.end();
    });

    test('an unacknowledged message of a member whose session ends goes to another member', async () => {
      const a = await connected(b.port, { version, clientId: id('orphan-a') });
      await subscribe(a, '$share/or/or/t', 1);
      const c = await connected(b.port, { version, clientId: id('orphan-c') });
      await subscribe(c, '$share/or/or/t', 1);
      b.broker.publish({ topic: 'or/t', payload: 'first', qos: 1 });
      b.broker.publish({ topic: 'or/t', payload: 'second', qos: 1 });
      // Round-robin: one message each. A never acknowledges and leaves (clean session: the session ends).
      const toA = await a.expect('publish');
      const toC = await c.expect('publish');
      c.send({ type: 'puback', packetId: toC.packetId! });
      a.end();
      const moved = await c.expect('publish');
      assert.equal(str(moved.payload), str(toA.payload));
      assert.equal(moved.dup, false);
      c.end();
    });

    if (version === 5) {
      test('a queued message of a member whose session ends is dropped, not handed on, once it expired', async () => {
        // [MQTT-3.3.2-5]: its delivery to the other member has not begun, so an expired message goes.
        const a = await connected(b.port, { version, clientId: id('expiry-a'), properties: { receiveMaximum: 1 } });
        await subscribe(a, '$share/ex/ex/t', 1);
        b.broker.publish({ topic: 'ex/t', payload: 'first', qos: 1 });
        b.broker.publish({ topic: 'ex/t', payload: 'short', qos: 1, properties: { messageExpiryInterval: 1 } });
        b.broker.publish({ topic: 'ex/t', payload: 'long', qos: 1, properties: { messageExpiryInterval: 600 } });
        // A holds "first" unacknowledged; the other two wait in its queue behind the full window.
        assert.equal(str((await a.expect('publish')).payload), 'first');
        const c = await connected(b.port, { version, clientId: id('expiry-c') });
        await subscribe(c, '$share/ex/ex/t', 1);
        await delay(1100); // "short" expires while queued for A
        a.end(); // a clean session: it ends, and its shared messages go to C
        assert.deepEqual(await drain(c, 5), ['first', 'long']);
        c.end();
      });
    }

    test('a malformed shared filter is refused', async () => {
      const m = await connected(b.port, { version, clientId: id('bad') });
      // The encoder refuses this filter, so the bytes are written by hand: SUBSCRIBE id 1, "$share/g", QoS 0.
      const filter = [0, 8, ...new TextEncoder().encode('$share/g'), 0];
      const body = version === 5 ? [0, 1, 0, ...filter] : [0, 1, ...filter];
      m.writeRaw([0x82, body.length, ...body]);
      // The codec rejects it as an invalid topic filter: the connection is closed (5.0 with a reason code).
      const packets = await m.expectClose();
      if (version === 5) assert.equal(packets[0]?.type === 'disconnect' && packets[0].reasonCode, 0x8f);
    });
  });
}
