// MQTT 5.0 enhanced authentication against a scripted fake broker running a SCRAM-like two-step exchange (client
// first → server challenge → client proof → server signature): at CONNECT, and re-authentication started by the
// client with reauthenticate() (AUTH 0x19), its success, the server's refusal and a server that fails the
// client's check.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { type AuthHook, connect } from '../../src/client/index.js';
import type { AuthPacket, Packet } from '../../src/codec/packets.js';
import { FakeBroker, type FakeConnection } from './fake-broker.js';

const METHOD = 'SCRAM-LIKE';
const encoder = new TextEncoder();
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array());
const mac = (key: string, data: string) => createHmac('sha256', key).update(data).digest('base64');
const field = (message: string, name: string) =>
  message
    .split(',')
    .find((part) => part.startsWith(`${name}=`))
    ?.slice(name.length + 1) ?? '';

/** The client side: a fresh nonce per exchange, a proof over both messages, the server signature checked. */
function scramClient(user: string, password: string, seen: number[]): AuthHook {
  let first = '';
  let serverFirst = '';
  return {
    method: METHOD,
    step(data, { reasonCode }) {
      seen.push(reasonCode);
      if (data === undefined) {
        first = `n=${user},r=${randomBytes(6).toString('hex')}`;
        return encoder.encode(first);
      }
      const message = text(data);
      if (reasonCode === 0x18) {
        serverFirst = message;
        return encoder.encode(`r=${field(message, 'r')},p=${mac(password, `${first};${serverFirst}`)}`);
      }
      if (field(message, 'v') !== mac(`server:${password}`, `${first};${serverFirst}`)) {
        throw new Error('the server signature does not match');
      }
      return undefined;
    },
  };
}

/**
 * The server side for one connection: answers CONNECT or AUTH 0x19 with a challenge, checks the proof, and ends
 * with CONNACK (connect) or AUTH 0x00 (re-authentication) carrying its signature; a wrong proof gets DISCONNECT
 * 0x87 (re-authentication) or CONNACK 0x87. `password()` is read at each check, so a test can change it.
 */
function scramServer(broker: FakeBroker, password: () => string, signature = (good: string) => good): void {
  const exchanges = new WeakMap<FakeConnection, { first: string; serverFirst: string; reauth: boolean }>();
  const challenge = (conn: FakeConnection, data: Uint8Array | undefined, reauth: boolean) => {
    const first = text(data);
    const serverFirst = `r=${field(first, 'r')}${randomBytes(6).toString('hex')},s=salt`;
    exchanges.set(conn, { first, serverFirst, reauth });
    const properties = { authenticationMethod: METHOD, authenticationData: encoder.encode(serverFirst) };
    conn.send({ type: 'auth', reasonCode: 0x18, properties });
  };
  broker.script = {
    connack: (connect, _present, conn) => {
      assert.equal(connect.properties?.authenticationMethod, METHOD);
      challenge(conn, connect.properties?.authenticationData, false);
      return null;
    },
    onAuth: (packet: AuthPacket, conn) => {
      assert.equal(packet.properties?.authenticationMethod, METHOD);
      if (packet.reasonCode === 0x19) return challenge(conn, packet.properties?.authenticationData, true);
      const exchange = exchanges.get(conn);
      assert.ok(exchange !== undefined && packet.reasonCode === 0x18);
      const signed = `${exchange.first};${exchange.serverFirst}`;
      if (field(text(packet.properties?.authenticationData), 'p') !== mac(password(), signed)) {
        if (exchange.reauth) conn.send({ type: 'disconnect', reasonCode: 0x87 });
        else conn.send({ type: 'connack', sessionPresent: false, reasonCode: 0x87 });
        conn.socket.end();
        return;
      }
      const properties = {
        authenticationMethod: METHOD,
        authenticationData: encoder.encode(`v=${signature(mac(`server:${password()}`, signed))}`),
      };
      if (exchange.reauth) conn.send({ type: 'auth', reasonCode: 0x00, properties });
      else conn.send({ type: 'connack', sessionPresent: false, reasonCode: 0, properties });
    },
  };
}

const auths = (received: Packet[]) =>
  received
    .filter((p): p is AuthPacket => p.type === 'auth')
    .map((p) => `${(p.reasonCode ?? 0).toString(16)}:${text(p.properties?.authenticationData).split('=')[0]}`);

test('re-authentication: AUTH 0x19, the challenge answered through the hook, resolved on AUTH 0x00', async () => {
  const broker = await FakeBroker.start();
  try {
    scramServer(broker, () => 'secret');
    const seen: number[] = [];
    const client = await connect({ url: broker.url, reconnect: false, auth: scramClient('tcu', 'secret', seen) });
    assert.deepEqual(seen, [0, 0x18], 'CONNECT data, then the challenge');
    const conn = broker.latest;
    assert.ok(conn !== undefined);
    await client.reauthenticate();
    assert.deepEqual(seen, [0, 0x18, 0x19, 0x18, 0x00], 'the hook also checked the server signature');
    assert.deepEqual(auths(conn.received), ['18:r', '19:n', '18:r'], 'same method on every AUTH');
    // Twice in a row, and the session goes on over the same line.
    await client.reauthenticate();
    assert.equal(broker.connections.length, 1, 'no reconnect');
    assert.equal((await client.publish('after/reauth', 'x', { qos: 1 })).reasonCode, 0);
    await client.end();
  } finally {
    await broker.close();
  }
});

test('re-authentication refused: DISCONNECT 0x87 rejects with MQTT_ERR_CONNECTION_CLOSED and the code', async () => {
  const broker = await FakeBroker.start();
  try {
    let password = 'secret';
    scramServer(broker, () => password);
    const client = await connect({ url: broker.url, reconnect: false, auth: scramClient('tcu', 'secret', []) });
    password = 'rotated';
    await assert.rejects(client.reauthenticate(), { code: 'MQTT_ERR_CONNECTION_CLOSED', reasonCode: 0x87 });
    await client.end();
  } finally {
    await broker.close();
  }
});

test('a server signature the hook refuses: rejected, and the client disconnects with 0x87', async () => {
  const broker = await FakeBroker.start();
  try {
    let forge = false;
    scramServer(
      broker,
      () => 'secret',
      (good) => (forge ? 'forged' : good),
    );
    const client = await connect({ url: broker.url, reconnect: false, auth: scramClient('tcu', 'secret', []) });
    const conn = broker.latest;
    assert.ok(conn !== undefined);
    forge = true;
    await assert.rejects(client.reauthenticate(), (err: Error & { code?: string; reasonCode?: number }) => {
      assert.equal(err.code, 'MQTT_ERR_CONNECTION_CLOSED');
      assert.equal(err.reasonCode, 0x87);
      assert.match(err.message, /signature does not match/);
      return true;
    });
    await broker.until(() => conn.received.some((p) => p.type === 'disconnect'), 5000, 'DISCONNECT');
    assert.deepEqual(conn.received.at(-1), { type: 'disconnect', reasonCode: 0x87 });
    await client.end();
  } finally {
    await broker.close();
  }
});

test('reauthenticate(data) sends the data given; misuse is refused with MQTT_ERR_INVALID_OPTION', async () => {
  const broker = await FakeBroker.start();
  try {
    scramServer(broker, () => 'secret');
    const hook = scramClient('tcu', 'secret', []);
    const client = await connect({ url: broker.url, reconnect: false, auth: hook });
    const conn = broker.latest;
    assert.ok(conn !== undefined);
    const given = encoder.encode('n=tcu,r=given');
    const running = client.reauthenticate(given);
    await assert.rejects(client.reauthenticate(), { code: 'MQTT_ERR_INVALID_OPTION' }, 'one at a time');
    // The hook never made this client-first, so its proof is over another message: the server refuses it.
    await assert.rejects(running, { code: 'MQTT_ERR_CONNECTION_CLOSED', reasonCode: 0x87 });
    const sent = conn.received.find((p): p is AuthPacket => p.type === 'auth' && p.reasonCode === 0x19);
    assert.equal(text(sent?.properties?.authenticationData), 'n=tcu,r=given');
    await client.end();
    broker.script = {};
    const plain = await connect({ url: broker.url, reconnect: false });
    await assert.rejects(plain.reauthenticate(), { code: 'MQTT_ERR_INVALID_OPTION' }, 'no hook');
    await plain.end();
    const old = await connect({ url: broker.url, reconnect: false, protocolVersion: 4, auth: hook });
    await assert.rejects(old.reauthenticate(), { code: 'MQTT_ERR_INVALID_OPTION' }, '3.1.1');
    await old.end();
    await assert.rejects(old.reauthenticate(), { code: 'MQTT_ERR_INVALID_OPTION' }, 'closed, and still 3.1.1');
  } finally {
    await broker.close();
  }
});

test('an AUTH challenge the client did not ask for: DISCONNECT 0x82, the hook not called', async () => {
  const broker = await FakeBroker.start();
  try {
    scramServer(broker, () => 'secret');
    const seen: number[] = [];
    const client = await connect({ url: broker.url, reconnect: false, auth: scramClient('tcu', 'secret', seen) });
    const conn = broker.latest!;
    const calls = seen.length;
    const offline = new Promise<Error>((resolve) => client.on('offline', resolve));
    conn.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD } });
    assert.equal(((await offline) as Error & { reasonCode?: number }).reasonCode, 0x82);
    await broker.until(() => conn.received.some((p) => p.type === 'disconnect'), 5000, 'DISCONNECT');
    assert.deepEqual(conn.received.at(-1), { type: 'disconnect', reasonCode: 0x82 });
    assert.equal(seen.length, calls, 'the hook answered no challenge');
    await client.end({ force: true });
  } finally {
    await broker.close();
  }
});
