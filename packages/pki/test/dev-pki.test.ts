// The dev PKI directory: created once with private keys at 0600, reused while good, repaired file by file, and a
// damaged CA never silently replaced.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BACKEND_IDENTITY,
  createKeyPair,
  loadOrCreateDevPki,
  loadOrIssueVehicleCerts,
  PkiError,
  vehicleCertPaths,
} from '../src/index.js';

describe('loadOrCreateDevPki', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'otalink-pki-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const mode = async (path: string) => (await stat(path)).mode & 0o777;

  test('first run creates the CA, the server and the backend client certificate', async () => {
    const pki = await loadOrCreateDevPki(join(dir, 'a'));
    assert.equal(pki.written.length, 6);
    for (const key of [pki.paths.ca.key, pki.paths.server.key, pki.paths.backendClient.key]) {
      assert.equal(await mode(key), 0o600, key);
    }
    assert.equal(await mode(pki.paths.dir), 0o700);
    const caCert = new X509Certificate(await readFile(pki.paths.ca.cert));
    const server = new X509Certificate(await readFile(pki.paths.server.cert));
    const client = new X509Certificate(await readFile(pki.paths.backendClient.cert));
    assert.ok(server.verify(caCert.publicKey));
    assert.ok(client.verify(caCert.publicKey));
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('::1'), '::1');
    assert.equal(client.subject, `CN=${BACKEND_IDENTITY}`);
  });

  test('a second run reuses every file; a missing leaf is re-issued alone', async () => {
    const first = await loadOrCreateDevPki(join(dir, 'b'));
    const second = await loadOrCreateDevPki(join(dir, 'b'));
    assert.deepEqual(second.written, []);
    assert.equal(second.ca.certPem, first.ca.certPem);
    assert.equal(second.server.certPem, first.server.certPem);
    assert.equal(second.backendClient.keyPem, first.backendClient.keyPem);

    await unlink(first.paths.server.key);
    const third = await loadOrCreateDevPki(join(dir, 'b'));
    assert.deepEqual(third.written.sort(), [first.paths.server.cert, first.paths.server.key].sort());
    assert.equal(third.ca.certPem, first.ca.certPem);
    assert.notEqual(third.server.certPem, first.server.certPem);
    assert.equal(third.backendClient.certPem, first.backendClient.certPem);
  });

  test('a leaf from another CA in the directory is replaced', async () => {
    const a = await loadOrCreateDevPki(join(dir, 'c1'));
    const b = await loadOrCreateDevPki(join(dir, 'c2'));
    await writeFile(b.paths.server.cert, a.server.certPem);
    await writeFile(b.paths.server.key, a.server.keyPem);
    const again = await loadOrCreateDevPki(join(dir, 'c2'));
    assert.ok(again.written.includes(b.paths.server.cert));
    assert.ok(new X509Certificate(again.server.certPem).verify(new X509Certificate(b.ca.certPem).publicKey));
  });

  test('a leaf whose key file holds another key (PKCS#8 or SEC1) is replaced', async () => {
    const pki = await loadOrCreateDevPki(join(dir, 'k'));
    const [vehicle] = await loadOrIssueVehicleCerts(pki, ['SIM-000009']);
    assert.ok(vehicle !== undefined);
    const other = await createKeyPair();
    await writeFile(vehicle.paths.key, other.keyPem);
    const [replaced] = await loadOrIssueVehicleCerts(pki, ['SIM-000009']);
    assert.notEqual(replaced?.certPem, vehicle.certPem);
    // The same key in SEC1 form is recognised as the certificate's own.
    const sec1 = createPrivateKey(replaced?.keyPem ?? '')
      .export({ type: 'sec1', format: 'pem' })
      .toString();
    await writeFile(vehicle.paths.key, sec1);
    const [kept] = await loadOrIssueVehicleCerts(pki, ['SIM-000009']);
    assert.equal(kept?.certPem, replaced?.certPem);
  });

  test('half a CA or an unreadable CA stops with an error instead of being replaced', async () => {
    const pki = await loadOrCreateDevPki(join(dir, 'd'));
    await unlink(pki.paths.ca.key);
    await assert.rejects(
      loadOrCreateDevPki(join(dir, 'd')),
      (err: unknown) => err instanceof PkiError && err.code === 'PKI_ERR_INVALID_PEM',
    );
    await writeFile(pki.paths.ca.key, 'garbage');
    await assert.rejects(loadOrCreateDevPki(join(dir, 'd')), PkiError);
  });

  test('vehicle certificates: issued per VIN under vehicles/, reused on the next call', async () => {
    const pki = await loadOrCreateDevPki(join(dir, 'e'));
    const vins = ['SIM-000001', 'SIM-000002', 'WVWZZZ1JZXW000003'];
    const first = await loadOrIssueVehicleCerts(pki, vins);
    assert.deepEqual(
      first.map((c) => new X509Certificate(c.certPem).subject),
      vins.map((v) => `CN=${v}`),
    );
    for (const c of first) assert.equal(await mode(c.paths.key), 0o600);
    assert.equal(first[1]?.paths.cert, vehicleCertPaths(pki.paths.dir, 'SIM-000002').cert);
    const second = await loadOrIssueVehicleCerts(pki, vins);
    assert.deepEqual(
      second.map((c) => c.certPem),
      first.map((c) => c.certPem),
    );
    assert.throws(() => vehicleCertPaths(pki.paths.dir, '../escape'), PkiError);
  });
});
