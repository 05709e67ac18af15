// What a failed write does to the records that are not a client's message (docs/durable-store.md, "What a failed
// write means"): a SUBSCRIBE or UNSUBSCRIBE whose commit fails is taken back and the client told so, before and after
// a restart alike; a QoS 2 will or Broker.publish() message whose records a failed write holds back reaches nobody
// until they are written, then exactly once (or, stopped while the disk is still full, once after the restart); a
// refused retained QoS 2 message leaves the previous retained message in place, in memory and in the log.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connected,
  delay,
  persistent,
  publishQos,
  type RawClient,
  str,
  subscribe,
  type TestBroker,
  text,
  withBroker,
} from './support/raw-client.js';
import { failingSyncs, fillableDisk } from './support/store-fs.js';
import { tempDirs } from './support/temp-dirs.js';

const dataDir = tempDirs('otalink-failed-records-');

async function receiveQos2(client: RawClient, timeoutMs = 3000): Promise<string> {
  const p = await client.expect('publish', timeoutMs);
  assert.equal(p.qos, 2);
  client.send({ type: 'pubrec', packetId: p.packetId! });
  await client.expect('pubrel');
  client.send({ type: 'pubcomp', packetId: p.packetId! });
  return str(p.payload);
}

async function receiveQos1(client: RawClient): Promise<string> {
  const p = await client.expect('publish', 3000);
  client.send({ type: 'puback', packetId: p.packetId! });
  return str(p.payload);
}

/** Waits until the store takes messages again (its free-space recheck runs once a second). */
async function writable(b: TestBroker): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!b.broker.store.writable && Date.now() < deadline) await delay(50);
  assert.equal(b.broker.store.writable, true, 'the store did not take messages again');
}

async function closed(client: RawClient, ms: number): Promise<boolean> {
  return Promise.race([client.closedPromise.then(() => true), delay(ms).then(() => false)]);
}

describe('20 durable broker: subscriptions and wills while the store fails', () => {
  for (const version of [5, 4] as const) {
    const name = version === 5 ? '5.0' : '3.1.1';
    test(`MQTT ${name}: a SUBSCRIBE whose write fails gets a failure SUBACK and is taken back, before and after a restart`, async () => {
      const dir = dataDir();
      const disk = fillableDisk();
      await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
        const sub = await connected(b.port, persistent('sub', version));
        assert.deepEqual(await subscribe(sub, 'kept/#', 1), [1]);
        const retainer = await connected(b.port, persistent('retainer'));
        await publishQos(retainer, 'new/r', 'retained', 2, 1, true);
        disk.fill();
        assert.deepEqual(await subscribe(sub, 'new/#', 2, { packetId: 2 }), [version === 5 ? 0x97 : 0x80]);
        assert.ok(await sub.silentFor(300), 'the retained message came for a refused subscription');
        disk.free();
        await writable(b);
        const pub = await connected(b.port, { version: 5, clientId: 'pub' });
        await publishQos(pub, 'new/1', 'refused', 1, 1);
        await publishQos(pub, 'kept/1', 'kept', 1, 2);
        assert.equal(await receiveQos1(sub), 'kept', 'a message for the refused subscription came first');
        assert.ok(await sub.silentFor(200));
        pub.end();
        sub.end();
        retainer.end();
      });
      await withBroker({ dataDir: dir }, async (b) => {
        const sub = await connected(b.port, persistent('sub', version));
        const pub = await connected(b.port, { version: 5, clientId: 'pub' });
        await publishQos(pub, 'new/2', 'refused', 1, 1);
        await publishQos(pub, 'kept/2', 'kept', 1, 2);
        assert.equal(await receiveQos1(sub), 'kept', 'the refused subscription is back after the restart');
        assert.ok(await sub.silentFor(200));
        // With room, the same SUBSCRIBE is granted: SUBACK first, then its retained message (held behind it).
        assert.deepEqual(await subscribe(sub, 'new/#', 2, { packetId: 3 }), [2]);
        assert.equal(await receiveQos2(sub), 'retained');
        pub.end();
        sub.end();
      });
    });

    test(`MQTT ${name}: an UNSUBSCRIBE whose write fails is answered as failed (5.0: 0x80; 3.1.1: closed, no UNSUBACK) and the subscription stays`, async () => {
      const dir = dataDir();
      const disk = fillableDisk();
      await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
        let sub = await connected(b.port, persistent('sub', version));
        assert.deepEqual(await subscribe(sub, 'u/#', 1), [1]);
        disk.fill();
        sub.send({ type: 'unsubscribe', packetId: 3, topicFilters: ['u/#'] });
        if (version === 5) assert.deepEqual((await sub.expect('unsuback')).reasonCodes, [0x80]);
        else assert.ok(await closed(sub, 2000), '3.1.1: the connection stayed open after a failed UNSUBSCRIBE');
        disk.free();
        await writable(b);
        if (version === 4) sub = await connected(b.port, persistent('sub', version));
        const pub = await connected(b.port, { version: 5, clientId: 'pub' });
        await publishQos(pub, 'u/1', 'still', 1, 1);
        assert.equal(await receiveQos1(sub), 'still');
        pub.end();
        sub.end();
      });
      await withBroker({ dataDir: dir }, async (b) => {
        const sub = await connected(b.port, persistent('sub', version));
        const pub = await connected(b.port, { version: 5, clientId: 'pub' });
        await publishQos(pub, 'u/2', 'after restart', 1, 1);
        // 'still' may come again first: its PUBACK need not have been read before the first broker stopped.
        let got = await receiveQos1(sub);
        if (got === 'still') got = await receiveQos1(sub);
        assert.equal(got, 'after restart');
        pub.end();
        sub.end();
      });
    });
  }

  for (const freed of [true, false]) {
    test(`a QoS 2 will whose records a failed write holds back reaches nobody until they are written, then each subscriber once (${freed ? 'space back while running' : 'stopped while still full'})`, async () => {
      const dir = dataDir();
      const disk = fillableDisk();
      await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
        const away = await connected(b.port, persistent('away'));
        await subscribe(away, 'will/#', 2);
        away.send({ type: 'disconnect' });
        await away.closedPromise;
        const live = await connected(b.port, persistent('live'));
        await subscribe(live, 'will/#', 2);
        const dying = await connected(b.port, {
          version: 5,
          clientId: 'dying',
          will: { topic: 'will/dying', payload: text('gone'), qos: 2, retain: false },
        });
        disk.fill();
        dying.end();
        assert.ok(await live.silentFor(500), 'the will reached a subscriber before its records were written');
        if (freed) {
          disk.free();
          assert.equal(await receiveQos2(live, 5000), 'gone');
          assert.ok(await live.silentFor(300), 'the will came twice');
        }
        live.end();
      });
      // Freed: the records were written (the will's deletion with them), the offline subscriber has it queued.
      // Stopped while full: nothing was written, nobody had it, and the armed will is published at start-up.
      await withBroker({ dataDir: dir }, async (b) => {
        const away = await connected(b.port, persistent('away'));
        assert.equal(await receiveQos2(away), 'gone');
        assert.ok(await away.silentFor(300), 'the offline subscriber got the will twice');
        const live = await connected(b.port, persistent('live'));
        if (freed) assert.ok(await live.silentFor(300), 'the will came again after the restart');
        else {
          assert.equal(await receiveQos2(live), 'gone');
          assert.ok(await live.silentFor(300), 'the will came twice');
        }
        away.end();
        live.end();
      });
    });
  }

  test('a QoS 2 Broker.publish() whose records a failed write holds back is delivered once they are written, once', async () => {
    const dir = dataDir();
    const disk = fillableDisk();
    await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
      const away = await connected(b.port, persistent('away'));
      await subscribe(away, 'api/#', 2);
      away.send({ type: 'disconnect' });
      await away.closedPromise;
      const live = await connected(b.port, persistent('live'));
      await subscribe(live, 'api/#', 2);
      disk.fill();
      assert.equal(b.broker.publish({ topic: 'api/cmd', payload: 'once', qos: 2 }), 2);
      assert.ok(await live.silentFor(500), 'delivered before its records were written');
      disk.free();
      assert.equal(await receiveQos2(live, 5000), 'once');
      assert.ok(await live.silentFor(300), 'delivered twice');
      live.end();
    });
    await withBroker({ dataDir: dir }, async (b) => {
      const away = await connected(b.port, persistent('away'));
      assert.equal(await receiveQos2(away), 'once');
      assert.ok(await away.silentFor(300));
      const live = await connected(b.port, persistent('live'));
      assert.ok(await live.silentFor(300), 'delivered again after the restart');
      away.end();
      live.end();
    });
  });

  test('a retained QoS 2 message refused by a failed write leaves the previous retained message, also after a restart', async () => {
    const dir = dataDir();
    const disk = fillableDisk();
    await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
      const pub = await connected(b.port, persistent('pub'));
      await publishQos(pub, 'r/1', 'old', 1, 1, true);
      disk.fill();
      pub.send({ type: 'publish', topic: 'r/1', payload: text('new'), qos: 2, retain: true, dup: false, packetId: 2 });
      assert.equal((await pub.expect('pubrec')).reasonCode, 0x97);
      disk.free();
      await writable(b);
      const sub = await connected(b.port, { version: 5, clientId: 'sub' });
      await subscribe(sub, 'r/#', 1);
      assert.equal(await receiveQos1(sub), 'old');
      pub.end();
      sub.end();
    });
    await withBroker({ dataDir: dir }, async (b) => {
      const sub = await connected(b.port, { version: 5, clientId: 'sub' });
      await subscribe(sub, 'r/#', 1);
      assert.equal(await receiveQos1(sub), 'old');
      sub.end();
    });
  });

  test('a PUBREL whose release a failed write holds back gets no PUBCOMP, nor does its resend, until the release is written', async () => {
    const dir = dataDir();
    const disk = fillableDisk();
    await withBroker({ dataDir: dir, storeOptions: { fs: disk.fs } }, async (b) => {
      const sub = await connected(b.port, persistent('sub'));
      await subscribe(sub, 'p/#', 2);
      const pub = await connected(b.port, persistent('pub'));
      pub.send({
        type: 'publish',
        topic: 'p/1',
        payload: text('first'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 5,
      });
      assert.equal((await pub.expect('pubrec')).reasonCode ?? 0, 0);
      assert.equal(await receiveQos2(sub), 'first');
      disk.fill();
      pub.send({ type: 'pubrel', packetId: 5 });
      assert.ok(await pub.silentFor(300), 'PUBCOMP before the release was written');
      // The resend finds the id released in memory; the release is still not in the log.
      pub.send({ type: 'pubrel', packetId: 5 });
      assert.ok(await pub.silentFor(300), 'PUBCOMP for a resent PUBREL before the release was written');
      disk.free();
      await writable(b);
      pub.send({ type: 'pubrel', packetId: 5 });
      assert.equal((await pub.expect('pubcomp')).packetId, 5);
      pub.end();
      sub.end();
    });
    // The id is free after the restart: a new message under it is delivered, not taken for a duplicate.
    await withBroker({ dataDir: dir }, async (b) => {
      const sub = await connected(b.port, persistent('sub'));
      const pub = await connected(b.port, persistent('pub'));
      pub.send({
        type: 'publish',
        topic: 'p/1',
        payload: text('second'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 5,
      });
      assert.equal((await pub.expect('pubrec')).reasonCode ?? 0, 0);
      assert.equal(await receiveQos2(sub), 'second');
      pub.end();
      sub.end();
    });
  });

  test('after a failed fdatasync a QoS 2 delivery is never sent: its subscriber is disconnected, and gets it once after the restart', async () => {
    const dir = dataDir();
    const { fs, fail: failSyncs } = failingSyncs();
    await withBroker({ dataDir: dir, storeOptions: { fs } }, async (b) => {
      const live = await connected(b.port, persistent('live'));
      await subscribe(live, 'b/#', 2);
      const ping = await connected(b.port, { version: 5, clientId: 'ping' });
      failSyncs(true);
      // Its batch is written and its sync fails: on disk or not, only the restart knows.
      b.broker.publish({ topic: 'b/1', payload: 'unsure', qos: 2 });
      assert.ok(await closed(live, 3000), 'the subscriber stayed connected');
      assert.equal(live.received.filter((p) => p.type === 'publish').length, 0, 'a QoS 2 delivery left unsynced');
      // Output that needs nothing from the store still goes.
      ping.send({ type: 'pingreq' });
      await ping.expect('pingresp');
      ping.end();
    });
    await withBroker({ dataDir: dir }, async (b) => {
      const live = await connected(b.port, persistent('live'));
      assert.equal(await receiveQos2(live), 'unsure');
      assert.ok(await live.silentFor(300), 'delivered twice');
      live.end();
    });
  });
});
