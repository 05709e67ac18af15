// Authentication and authorization changed while the broker runs (Broker.updateAuth; `otalink broker` on SIGHUP):
// revoked clients are disconnected and others keep going; subscriptions a narrower ACL refuses stop delivering at
// once for connected clients and on resumption for offline ones; a session resumed under another user name keeps
// nothing that user may not read.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { hashPassword } from '../src/auth/password-file.js';
import { reloadBroker, resolveBrokerConfig } from '../src/config/index.js';
import { type Authorize, createBroker } from '../src/index.js';
import {
  connectClient,
  connected,
  persistent,
  publishQos,
  type RawClient,
  str,
  subscribe,
  type TestBroker,
  text,
  withBroker,
} from './support/raw-client.js';
import { heldSyncs } from './support/store-fs.js';
import { tempDirs } from './support/temp-dirs.js';
import { authenticate, login } from './support/users.js';

const dataDir = tempDirs('otalink-auth-update-');

/** Each user under ota/<user>/..., plus whatever `extra` allows. */
const aclWith =
  (extra: (topic: string) => boolean): Authorize =>
  (client, _action, topic) =>
    topic.startsWith(`ota/${client.username}/`) || extra(topic);

async function received(client: RawClient, count: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < count) {
    const packet = await client.next();
    if (packet.type !== 'publish') continue;
    out.push(`${packet.topic}=${str(packet.payload)}`);
    if (packet.qos === 1) client.send({ type: 'puback', packetId: packet.packetId! });
  }
  return out;
}

/** Waits until the broker saw the client's connection end (its session is then offline). */
async function offline(b: TestBroker, clientId: string): Promise<void> {
  for (let i = 0; b.broker.clients().includes(clientId); i++) {
    if (i > 200) throw new Error(`${clientId} still connected`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const version of [4, 5] as const) {
  describe(`22 auth update, MQTT ${version === 4 ? '3.1.1' : '5.0'}`, () => {
    test('a revoked user is disconnected (5.0: 0x87) and its will goes out; the others keep going', async () => {
      await withBroker({ allowAnonymous: false, authenticate }, async (b) => {
        const alice = await connected(b.port, {
          ...login('alice', version),
          will: { topic: 'ota/bob/alice-gone', payload: text('bye'), qos: 0, retain: false },
        });
        const bob = await connected(b.port, login('bob', version));
        await subscribe(bob, 'ota/bob/#', 1);
        const result = b.broker.updateAuth({
          revoke: (client, by) => by === 'password' && client.username === 'alice',
        });
        assert.deepEqual(result, { disconnected: 1, subscriptionsRemoved: 0 });
        const last = await alice.expectClose();
        if (version === 5) {
          assert.deepEqual(
            last.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
            [0x87],
          );
        }
        assert.deepEqual(await received(bob, 1), ['ota/bob/alice-gone=bye'], 'its will, as for any server close');
        const sender = await connected(b.port, login('bob', version, `sender-${version}`));
        await publishQos(sender, 'ota/bob/x', 'still here', 1, 1);
        assert.deepEqual(await received(bob, 1), ['ota/bob/x=still here']);
        sender.end();
        bob.end();
      });
    });

    test('a narrower ACL removes a connected client’s refused subscriptions at once', async () => {
      await withBroker(
        { allowAnonymous: false, authenticate, authorize: aclWith((t) => t.startsWith('fleet/')) },
        async (b) => {
          const bob = await connected(b.port, login('bob', version));
          assert.deepEqual(await subscribe(bob, 'ota/bob/#', 1), [1]);
          assert.deepEqual(await subscribe(bob, 'fleet/#', 1, { packetId: 2 }), [1]);
          assert.deepEqual(await subscribe(bob, '$share/g/fleet/+', 1, { packetId: 3 }), [1]);
          const result = b.broker.updateAuth({ authorize: aclWith(() => false) });
          assert.deepEqual(result, { disconnected: 0, subscriptionsRemoved: 2 });
          const sender = await connected(b.port, { ...login('alice', version, `s-${version}`) });
          b.broker.publish({ topic: 'fleet/all', payload: text('stale'), qos: 1 });
          b.broker.publish({ topic: 'ota/bob/cmd', payload: text('fresh'), qos: 1 });
          assert.deepEqual(await received(bob, 1), ['ota/bob/cmd=fresh'], 'fleet/# and $share/g/fleet/+ are gone');
          assert.ok(await bob.silentFor(100));
          sender.end();
          bob.end();
        },
      );
    });

    test('a narrower ACL drops a message the client may no longer read that waited for its store commit', async () => {
      const sync = heldSyncs();
      await withBroker(
        {
          allowAnonymous: false,
          authenticate,
          authorize: aclWith((t) => t.startsWith('fleet/')),
          dataDir: dataDir(),
          storeOptions: { fs: sync.fs },
        },
        async (b) => {
          const bob = await connected(b.port, persistent(`bob-held-${version}`, version, login('bob', version)));
          await subscribe(bob, 'fleet/#', 2);
          const sender = await connected(b.port, login('alice', version, `held-s-${version}`));
          sync.hold();
          sender.send({
            type: 'publish',
            topic: 'fleet/all',
            payload: text('held'),
            qos: 2,
            retain: false,
            dup: false,
            packetId: 1,
          });
          await new Promise((resolve) => setTimeout(resolve, 50));
          // The message is routed to bob and waits for fdatasync; the ACL narrows meanwhile (SIGHUP).
          b.broker.updateAuth({ authorize: aclWith(() => false) });
          sync.release();
          assert.ok(await bob.silentFor(300), 'bob got a message his ACL no longer lets him read');
          assert.equal(b.broker.stats.droppedNotAuthorized, 1);
          sender.end();
          bob.end();
        },
      );
    });

    test('an offline session resumed under a narrower ACL keeps only what it may read, queue included', async () => {
      await withBroker(
        { allowAnonymous: false, authenticate, authorize: aclWith((t) => t.startsWith('fleet/')) },
        async (b) => {
          const session = persistent(`bob-offline-${version}`, version, login('bob', version));
          const bob = await connected(b.port, session);
          await subscribe(bob, 'ota/bob/#', 1);
          await subscribe(bob, 'fleet/#', 1, { packetId: 2 });
          bob.end();
          await offline(b, session.clientId!);
          b.broker.publish({ topic: 'fleet/all', payload: text('queued-fleet'), qos: 1 });
          b.broker.publish({ topic: 'ota/bob/cmd', payload: text('queued-own'), qos: 1 });
          assert.equal(b.broker.stats.queuedCurrent, 2);
          // Offline sessions are not walked here: the next CONNECT checks them.
          assert.deepEqual(b.broker.updateAuth({ authorize: aclWith(() => false) }), {
            disconnected: 0,
            subscriptionsRemoved: 0,
          });
          const back = await connectClient(b.port, session);
          assert.equal(back.connack.sessionPresent, true);
          assert.deepEqual(await received(back.client, 1), ['ota/bob/cmd=queued-own']);
          assert.ok(await back.client.silentFor(100), 'the fleet message queued under the old ACL is dropped');
          assert.equal(b.broker.stats.droppedNotAuthorized, 1);
          b.broker.publish({ topic: 'fleet/all', payload: text('later'), qos: 1 });
          assert.ok(await back.client.silentFor(100));
          back.client.end();
        },
      );
    });

    test('a session resumed by another user keeps none of the first user’s subscriptions, queue or window', async () => {
      await withBroker({ allowAnonymous: false, authenticate, authorize: aclWith(() => false) }, async (b) => {
        const clientId = `shared-${version}`;
        const alice = await connected(b.port, persistent(clientId, version, login('alice', version, clientId)));
        await subscribe(alice, 'ota/alice/#', 1);
        b.broker.publish({ topic: 'ota/alice/unacked', payload: text('in flight'), qos: 1 });
        const inFlight = await alice.expect('publish');
        assert.equal(str(inFlight.payload), 'in flight', 'delivered, never acknowledged');
        alice.end();
        await offline(b, clientId);
        b.broker.publish({ topic: 'ota/alice/secret', payload: text('for alice'), qos: 1 });
        const bob = await connectClient(b.port, persistent(clientId, version, login('bob', version, clientId)));
        assert.equal(bob.connack.sessionPresent, false, 'the session is alice’s: bob starts a new one');
        assert.ok(await bob.client.silentFor(150), 'nothing queued or in flight for alice reaches bob');
        b.broker.publish({ topic: 'ota/alice/secret', payload: text('again'), qos: 1 });
        assert.ok(await bob.client.silentFor(100), 'and alice’s subscription is gone');
        bob.client.end();
      });
    });
  });
}

test('22 auth update: turning anonymous access off through revoke, and hooks removed with null', async () => {
  await withBroker({ allowAnonymous: true }, async (b) => {
    const anonymous = await connected(b.port, { version: 5, clientId: 'anon' });
    const result = b.broker.updateAuth({
      allowAnonymous: false,
      authenticate,
      revoke: (_client, by) => by === 'anonymous',
    });
    assert.equal(result.disconnected, 1);
    await anonymous.expectClose();
    const refused = await connectClient(b.port, { version: 5, clientId: 'anon-2' });
    assert.equal(refused.connack.reasonCode, 0x86, 'no user name: the hook refuses it');
    const alice = await connected(b.port, login('alice', 5));
    b.broker.updateAuth({ authenticate: null, allowAnonymous: true });
    const again = await connectClient(b.port, { version: 5, clientId: 'anon-3' });
    assert.equal(again.connack.reasonCode, 0);
    again.client.end();
    alice.end();
  });
});

describe('22 reload from a config file', () => {
  test('user names taken on trust (no password file, allow_anonymous) must log in again once names are checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otalink-reload-trust-'));
    const conf = join(dir, 'broker.conf');
    try {
      writeFileSync(conf, 'allow_anonymous true\nsys_interval 0\nlistener 0 127.0.0.1\n');
      const first = await resolveBrokerConfig({ configFile: conf, env: {} });
      const b = createBroker({ ...first.options, logger: pino({ level: 'silent' }) });
      await b.listen();
      try {
        const port = b.addresses()[0]!.port;
        // Any name and password were let in: nothing checked them.
        const claimed = await connected(port, {
          version: 5,
          clientId: 'c1',
          username: 'intruder',
          password: text('x'),
        });
        const anonymous = await connected(port, { version: 5, clientId: 'c2' });
        writeFileSync(join(dir, 'users'), `vin1:${await hashPassword('pw1', { N: 1024, r: 8, p: 1 })}\n`);
        writeFileSync(conf, 'password_file users\nallow_anonymous true\nsys_interval 0\nlistener 0 127.0.0.1\n');
        const reload = await reloadBroker(b, { configFile: conf, env: {} }, first);
        // A name the new file does not know (nor changed: it was never in a file) is no credential at all.
        assert.equal(reload.auth.disconnected, 1, 'the unverified "intruder", not the anonymous client still allowed');
        const last = await claimed.expectClose();
        assert.deepEqual(
          last.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
          [0x87],
        );
        anonymous.send({ type: 'pingreq' });
        await anonymous.expect('pingresp');
        anonymous.end();
      } finally {
        await b.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
