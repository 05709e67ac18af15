// Where one identity ends and another begins: a session resumed (or re-authenticated) under another user keeps
// nothing the first may read and it may not, credentials revoked mid-check still count, and no client speaks as
// the broker ($SYS). Found by a security review; each failed before its fix.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Authenticate, AuthenticationResult, Authorize } from '../src/index.js';
import {
  connectClient,
  connected,
  persistent,
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

const dataDir = tempDirs('otalink-identity-');

/** Each user may read and write ota/<user>/... only. */
const ownTree: Authorize = (client, _action, topic) => topic.startsWith(`ota/${client.username}/`);

async function offline(b: TestBroker, clientId: string): Promise<void> {
  for (let i = 0; b.broker.clients().includes(clientId); i++) {
    if (i > 200) throw new Error(`${clientId} still connected`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function publishesWithin(client: RawClient, ms: number): Promise<string[]> {
  const out: string[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return out;
    try {
      const packet = await client.next(left);
      if (packet.type !== 'publish') continue;
      out.push(`${packet.topic}=${str(packet.payload)}`);
      if (packet.qos === 1) client.send({ type: 'puback', packetId: packet.packetId! });
    } catch {
      return out;
    }
  }
}

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: a session resumed by another user after UNSUBSCRIBE does not resend the first user's messages`, async () => {
    await withBroker(
      { allowAnonymous: false, authenticate, authorize: ownTree, limits: { receiveMaximum: 1 } },
      async (b) => {
        const clientId = `unsub-${version}`;
        const alice = await connected(b.port, persistent(clientId, version, login('alice', version, clientId)));
        await subscribe(alice, 'ota/alice/#', 1);
        b.broker.publish({ topic: 'ota/alice/secret-1', payload: text('in flight'), qos: 1 });
        b.broker.publish({ topic: 'ota/alice/secret-2', payload: text('queued'), qos: 1 });
        const first = await alice.expect('publish');
        assert.equal(str(first.payload), 'in flight', 'delivered, never acknowledged; the second waits in the queue');
        alice.send({ type: 'unsubscribe', packetId: 9, topicFilters: ['ota/alice/#'] });
        await alice.expect('unsuback');
        alice.end();
        await offline(b, clientId);
        const bob = await connectClient(b.port, persistent(clientId, version, login('bob', version, clientId)));
        assert.equal(bob.connack.sessionPresent, false);
        const leaked = await publishesWithin(bob.client, 300);
        bob.client.end();
        assert.deepEqual(leaked, [], 'bob must not get alice’s in-flight or queued messages');
      },
    );
  });
}

// A session belongs to the identity that made it. Another user naming its client id used to take it over, keeping
// the subscriptions its own ACL allowed: under `pattern read ota/%u/#` that removed the vehicle's subscription, and
// the vehicle, back with its session present, never subscribed again and missed every later command (a security
// review, against `otalink up`'s broker). Now the other user starts a new session and the vehicle is told its
// own is gone, so that its client subscribes again. Kept across a restart of a durable broker.
for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: another user naming a vehicle's client id starts a new session; the vehicle learns its own is gone`, async () => {
    const dir = dataDir();
    const clientId = `vin-${version}`;
    const options = { allowAnonymous: false, authenticate, authorize: ownTree, dataDir: dir };
    await withBroker(options, async (b) => {
      const alice = await connected(b.port, persistent(clientId, version, login('alice', version, clientId)));
      await subscribe(alice, 'ota/alice/#', 1);
      alice.end();
      await offline(b, clientId);
    });
    await withBroker(options, async (b) => {
      const bob = await connectClient(b.port, persistent(clientId, version, login('bob', version, clientId)));
      assert.equal(bob.connack.sessionPresent, false, 'bob resumed alice’s session');
      bob.client.end();
      await offline(b, clientId);
      const alice = await connectClient(b.port, persistent(clientId, version, login('alice', version, clientId)));
      assert.equal(alice.connack.sessionPresent, false, 'told her session is present, with her subscription gone');
      alice.client.end();
      await offline(b, clientId);
      // Her own session again, resumed as before.
      const again = await connectClient(b.port, persistent(clientId, version, login('alice', version, clientId)));
      assert.equal(again.connack.sessionPresent, true);
      again.client.end();
    });
  });
}

test('use_username_as_clientid: a client without a user name is refused (0x87), as Mosquitto does', async () => {
  await withBroker({ allowAnonymous: true, authenticate, clientIdFromUsername: true }, async (b) => {
    const alice = await connected(b.port, persistent('whatever', 5, login('alice', 5, 'whatever')));
    alice.end();
    await offline(b, 'alice');
    for (const version of [4, 5] as const) {
      const anonymous = await connectClient(b.port, persistent('alice', version));
      assert.equal(anonymous.connack.reasonCode, version === 5 ? 0x87 : 5, 'anonymous took the id alice’s session has');
      anonymous.client.end();
    }
    const back = await connectClient(b.port, persistent('x', 5, login('alice', 5, 'x')));
    assert.equal(back.connack.sessionPresent, true, 'alice’s session untouched');
    back.client.end();
  });
  // No password file: a user name taken on trust. An empty one is none (all such clients shared client id "").
  await withBroker({ allowAnonymous: true, clientIdFromUsername: true }, async (b) => {
    const empty = await connectClient(b.port, { version: 5, clientId: 'e', username: '' });
    assert.equal(empty.connack.reasonCode, 0x87);
    empty.client.end();
  });
});

// A durable broker holds a QoS 2 message, and a retained one a SUBSCRIBE brings, until the commit that records it
// resolves; it then joined whatever session had the client id by then. A takeover by another user in that window
// got it (a security review: 10 of 10 QoS 2 messages, 4-8 of 10 retained ones, against a real store).
for (const kind of ['qos 2 publish', 'retained on subscribe'] as const) {
  test(`a session taken over by another user while a ${kind} waits for its commit does not get it`, async () => {
    const sync = heldSyncs();
    await withBroker(
      {
        allowAnonymous: false,
        authenticate,
        authorize: ownTree,
        dataDir: dataDir(),
        storeOptions: { fs: sync.fs },
      },
      async (b) => {
        const clientId = `held-${kind.length}`;
        const publisher = await connected(b.port, login('alice', 5, 'alice-backend'));
        let alice = await connected(b.port, persistent(clientId, 5, login('alice', 5, clientId)));
        if (kind === 'qos 2 publish') {
          await subscribe(alice, 'ota/alice/#', 2);
          sync.hold();
          publisher.send({
            type: 'publish',
            topic: 'ota/alice/cmd',
            payload: text('secret'),
            qos: 2,
            retain: false,
            dup: false,
            packetId: 1,
          });
        } else {
          publisher.send({
            type: 'publish',
            topic: 'ota/alice/cmd',
            payload: text('secret'),
            qos: 1,
            retain: true,
            dup: false,
            packetId: 1,
          });
          await publisher.expect('puback');
          alice.end();
          await offline(b, clientId);
          alice = await connected(b.port, persistent(clientId, 5, login('alice', 5, clientId)));
          sync.hold();
          alice.send({
            type: 'subscribe',
            packetId: 2,
            subscriptions: [{ topicFilter: 'ota/alice/#', qos: 1 }],
          });
        }
        // The message is routed and its records wait for fdatasync; bob takes the client id meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 50));
        const bob = connectClient(b.port, persistent(clientId, 5, login('bob', 5, clientId)));
        await new Promise((resolve) => setTimeout(resolve, 100));
        sync.release();
        const taken = await bob;
        const leaked = await publishesWithin(taken.client, 400);
        taken.client.end();
        publisher.end();
        assert.deepEqual(leaked, [], 'bob got a message of alice’s');
      },
    );
  });
}

test('a client may not publish into $SYS, whatever the ACL (as Mosquitto; MQTT 4.7.2 says SHOULD)', async () => {
  await withBroker({ allowAnonymous: true }, async (b) => {
    const watcher = await connected(b.port, { version: 5, clientId: 'watcher' });
    await subscribe(watcher, '$SYS/broker/#', 0);
    const spoofer = await connected(b.port, { version: 5, clientId: 'spoofer' });
    spoofer.send({
      type: 'publish',
      topic: '$SYS/broker/version',
      payload: text('evil 6.6.6'),
      qos: 0,
      retain: true,
      dup: false,
    });
    const got = await publishesWithin(watcher, 200);
    spoofer.end();
    watcher.end();
    assert.deepEqual(got, [], 'a client’s $SYS publish reached a $SYS subscriber');
  });
});

test('updateAuth revoking a user also refuses a CONNECT of that user whose authentication is still running', async () => {
  let release: (result: AuthenticationResult) => void = () => {};
  const slow: Authenticate = () =>
    new Promise<AuthenticationResult>((resolve) => {
      release = resolve;
    });
  await withBroker({ allowAnonymous: false, authenticate: slow }, async (b) => {
    const pending = connectClient(b.port, { version: 5, clientId: 'thief', username: 'stolen', password: text('x') });
    for (let i = 0; b.broker.stats.connectionsCurrent === 0 && i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    // SIGHUP: the user's credentials are gone; the old hook's verification is already under way.
    const refuseAll: Authenticate = () => ({ ok: false, reasonCode: 0x86 });
    b.broker.updateAuth({ authenticate: refuseAll, revoke: (client) => client.username === 'stolen' });
    release({ ok: true, username: 'stolen' });
    const { client, connack } = await pending;
    client.end();
    assert.notEqual(connack.reasonCode, 0, 'accepted under credentials revoked while it was authenticating');
  });
});

test('enhanced re-authentication as another user keeps none of the first identity’s subscriptions', async () => {
  await withBroker(
    {
      allowAnonymous: false,
      authorize: ownTree,
      enhancedAuth: [
        {
          method: 'TOKEN',
          // The token names the user: the identity becomes whoever the (verified) token says.
          step: (_state, data) => ({ result: 'success', username: str(data ?? new Uint8Array()) }),
        },
      ],
    },
    async (b) => {
      const client = await connected(b.port, {
        version: 5,
        clientId: 'reauth',
        properties: { authenticationMethod: 'TOKEN', authenticationData: text('alice') },
      });
      assert.deepEqual(await subscribe(client, 'ota/alice/#', 1), [1]);
      client.send({
        type: 'auth',
        reasonCode: 0x19,
        properties: { authenticationMethod: 'TOKEN', authenticationData: text('bob') },
      });
      const ok = await client.expect('auth');
      assert.equal(ok.reasonCode, 0);
      // Now bob: may not subscribe to alice's tree...
      client.send({ type: 'subscribe', packetId: 2, subscriptions: [{ topicFilter: 'ota/alice/x', qos: 1 }] });
      assert.deepEqual((await client.expect('suback')).reasonCodes, [0x87], 'bob may not subscribe to alice’s tree');
      // ...and must not keep receiving it either.
      b.broker.publish({ topic: 'ota/alice/cmd', payload: text('for alice'), qos: 0 });
      const got = await publishesWithin(client, 200);
      client.end();
      assert.deepEqual(got, [], 'the subscription made as alice still delivers to bob');
    },
  );
});

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: use_username_as_clientid: naming another vehicle's client id takes nothing of its session`, async () => {
    await withBroker({ allowAnonymous: false, authenticate, clientIdFromUsername: true }, async (b) => {
      const alice = await connected(b.port, persistent('alice', version, login('alice', version, 'alice')));
      await subscribe(alice, 'ota/alice/#', 1);
      // bob names alice's client id, with a clean start that would wipe her session.
      const bob = await connectClient(b.port, { ...login('bob', version, 'alice'), clean: true });
      assert.equal(bob.connack.reasonCode, 0);
      if (version === 5) assert.equal(bob.connack.properties?.assignedClientIdentifier, 'bob');
      assert.deepEqual(b.broker.clients().sort(), ['alice', 'bob']);
      alice.send({ type: 'pingreq' });
      await alice.expect('pingresp');
      b.broker.publish({ topic: 'ota/alice/cmd', payload: text('update'), qos: 1 });
      assert.equal(str((await alice.expect('publish')).payload), 'update', 'alice keeps her session and subscription');
      bob.client.end();
      alice.end();
    });
  });
}
