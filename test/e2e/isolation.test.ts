// Identity and isolation in the OTA stack's broker, proven with our own client over real TLS: the VIN in a
// vehicle's client certificate is its identity, and the stack's ACL confines it to ota/<VIN>/... .
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type Message, type MqttClient, MqttError } from '@otalink/mqtt';
import { createCa, type DevPki, type IssuedCertificate, issueClientCert, loadOrCreateDevPki } from '@otalink/pki';
import pino from 'pino';
import { type StackBroker, startStackBroker } from '../../packages/cli/src/stack/broker.js';

const silent = pino({ level: 'silent' });
const NOT_AUTHORIZED = 0x87;
const VIN_A = 'SIM-A00001';
const VIN_B = 'SIM-B00002';
const BACKEND_PASSWORD = 'test-only-backend-secret';

describe('OTA broker: identity from the certificate, isolation by ACL', () => {
  let dir: string;
  let pki: DevPki;
  let stack: StackBroker;
  let certA: IssuedCertificate;
  let certB: IssuedCertificate;
  const clients: MqttClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'otalink-isolation-'));
    pki = await loadOrCreateDevPki(join(dir, 'pki'));
    certA = await issueClientCert(pki.ca, { commonName: VIN_A });
    certB = await issueClientCert(pki.ca, { commonName: VIN_B });
    stack = await startStackBroker({
      pki,
      tls: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: 0, password: BACKEND_PASSWORD },
      logger: silent,
      sysIntervalSeconds: 0,
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.end({ force: true })));
    await stack.broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function vehicle(
    cert: { certPem: string; keyPem: string } | undefined,
    clientId: string,
    protocolVersion: 4 | 5 = 5,
  ): Promise<MqttClient> {
    const client = await connect(stack.tlsUrl, {
      clientId,
      // The tests leave a vehicle connected while the next one connects with the same id: no shared store.
      store: false,
      protocolVersion,
      reconnect: false,
      connectTimeoutMs: 10_000,
      tls: { ca: pki.ca.certPem, servername: 'localhost', ...(cert && { cert: cert.certPem, key: cert.keyPem }) },
    });
    clients.push(client);
    return client;
  }

  async function backend(): Promise<MqttClient> {
    const url = stack.backendUrl;
    assert.ok(url !== undefined);
    const client = await connect(url, {
      clientId: 'backend-test',
      store: false,
      username: 'otalink-backend',
      password: BACKEND_PASSWORD,
      reconnect: false,
    });
    clients.push(client);
    return client;
  }

  /** Collects what a client receives; `settle` publishes a marker the client may receive and waits for it. */
  function inbox(client: MqttClient): Message[] {
    const received: Message[] = [];
    client.on('message', (m) => received.push(m));
    return received;
  }

  /** A 5.0 PUBACK with 0x87 rejects the publish with MQTT_ERR_PUBLISH_FAILED carrying the reason code. */
  async function refusedPublish(client: MqttClient, topic: string): Promise<void> {
    await assert.rejects(
      client.publish(topic, 'forged', { qos: 1 }),
      (err: unknown) =>
        err instanceof MqttError && err.code === 'MQTT_ERR_PUBLISH_FAILED' && err.reasonCode === NOT_AUTHORIZED,
    );
  }

  async function until(condition: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(condition(), `timed out waiting for ${what}`);
  }

  test('vehicle A cannot subscribe to B’s commands and receives only its own', async () => {
    const a = await vehicle(certA, VIN_A);
    const b = await vehicle(certB, VIN_B);
    const aInbox = inbox(a);
    const bInbox = inbox(b);
    const own = await a.subscribe(`ota/${VIN_A}/command`, { qos: 1 });
    assert.deepEqual(own.reasonCodes, [1]);
    const foreign = await a.subscribe(`ota/${VIN_B}/command`, { qos: 1 });
    assert.deepEqual(foreign.reasonCodes, [NOT_AUTHORIZED]);
    assert.deepEqual((await b.subscribe(`ota/${VIN_B}/command`, { qos: 1 })).reasonCodes, [1]);

    const server = await backend();
    await server.publish(`ota/${VIN_B}/command`, 'for B', { qos: 1 });
    await server.publish(`ota/${VIN_A}/command`, 'for A', { qos: 1 });
    await until(() => aInbox.length >= 1 && bInbox.length >= 1, 'both commands');
    // A's own command arrived after B's, so B's would have been delivered by now if it were going to be.
    assert.deepEqual(
      aInbox.map((m) => m.topic),
      [`ota/${VIN_A}/command`],
    );
    assert.deepEqual(
      bInbox.map((m) => m.topic),
      [`ota/${VIN_B}/command`],
    );
  });

  test('vehicle A cannot publish B’s status: refused and never delivered to the backend', async () => {
    const a = await vehicle(certA, `${VIN_A}`);
    const server = await backend();
    const seen = inbox(server);
    const ingest = await server.subscribe(
      ['$share/otalink-backend/ota/+/status', 'ota/+/request', 'ota/+/presence'].map((topicFilter) => ({
        topicFilter,
        qos: 1 as const,
      })),
    );
    assert.deepEqual(ingest.reasonCodes, [1, 1, 1]);
    await refusedPublish(a, `ota/${VIN_B}/status`);
    await refusedPublish(a, `ota/${VIN_B}/request`);
    await refusedPublish(a, `ota/${VIN_B}/presence`);
    // Not even its own command topic: commands come from the backend only.
    await refusedPublish(a, `ota/${VIN_A}/command`);
    assert.equal((await a.publish(`ota/${VIN_A}/status`, 'mine', { qos: 1 })).reasonCode, 0);
    assert.equal((await a.publish(`ota/${VIN_A}/presence`, 'online', { qos: 1 })).reasonCode, 0);
    await until(() => seen.length >= 2, 'A’s own status and presence');
    assert.deepEqual(seen.map((m) => `${m.topic} ${new TextDecoder().decode(m.payload)}`).sort(), [
      `ota/${VIN_A}/presence online`,
      `ota/${VIN_A}/status mine`,
    ]);
  });

  test('vehicle A cannot subscribe to wildcards that reach other vehicles', async () => {
    const a = await vehicle(certA, `${VIN_A}-wild`);
    const filters = ['ota/#', 'ota/+/command', 'ota/+/status', '#', `$share/g/ota/${VIN_B}/command`, 'ota/fleet/#'];
    const result = await a.subscribe(filters.map((topicFilter) => ({ topicFilter, qos: 1 as const })));
    assert.deepEqual(
      result.reasonCodes,
      filters.map(() => NOT_AUTHORIZED),
    );
    // Its own subtree is fine, but only the topics it may read: `ota/<A>/#` would also cover status.
    const own = await a.subscribe(
      [`ota/${VIN_A}/command`, `ota/${VIN_A}/#`].map((topicFilter) => ({ topicFilter, qos: 1 as const })),
    );
    assert.deepEqual(own.reasonCodes, [1, NOT_AUTHORIZED]);
  });

  test('over MQTT 3.1.1 the same refusals come as SUBACK 0x80', async () => {
    const a = await vehicle(certA, `${VIN_A}-v311`, 4);
    const result = await a.subscribe(
      [`ota/${VIN_B}/command`, `ota/${VIN_A}/command`].map((topicFilter) => ({ topicFilter, qos: 1 as const })),
    );
    assert.deepEqual(result.reasonCodes, [0x80, 1]);
  });

  test('the identity is the certificate’s, whatever user name the vehicle claims', async () => {
    const client = await connect(stack.tlsUrl, {
      clientId: 'claims-backend',
      username: 'otalink-backend',
      password: 'guess',
      reconnect: false,
      tls: { ca: pki.ca.certPem, servername: 'localhost', cert: certA.certPem, key: certA.keyPem },
    });
    clients.push(client);
    const result = await client.subscribe('ota/#', { qos: 1 });
    assert.deepEqual(result.reasonCodes, [NOT_AUTHORIZED]);
  });

  test('the backend’s own client certificate gets the backend’s rights on the TLS listener', async () => {
    const server = await vehicle(pki.backendClient, 'backend-over-tls');
    const result = await server.subscribe('$share/otalink-backend/ota/+/status', { qos: 1 });
    assert.deepEqual(result.reasonCodes, [1]);
    assert.equal((await server.publish(`ota/${VIN_B}/command`, 'x', { qos: 1 })).reasonCode, 0);
  });

  test('connecting without a client certificate fails', async () => {
    await assert.rejects(vehicle(undefined, 'no-cert'));
  });

  test('a client certificate from another CA fails, even with a valid VIN', async () => {
    const rogueCa = await createCa({ commonName: 'Rogue CA', validDays: 1 });
    const rogue = await issueClientCert(rogueCa, { commonName: VIN_B });
    await assert.rejects(vehicle(rogue, 'rogue'));
  });

  test('the backend listener wants the backend password', async () => {
    const url = stack.backendUrl;
    assert.ok(url !== undefined);
    await assert.rejects(
      connect(url, { clientId: 'x', username: 'otalink-backend', password: 'wrong', reconnect: false }),
    );
    await assert.rejects(
      connect(url, { clientId: 'y', username: VIN_A, password: BACKEND_PASSWORD, reconnect: false }),
    );
    await assert.rejects(connect(url, { clientId: 'z', reconnect: false }));
  });
});
