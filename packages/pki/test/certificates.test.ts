// Certificates as an independent parser sees them: node:crypto's X509Certificate (OpenSSL) for chain, names,
// validity and extended key usage, @peculiar/x509 for the key usage bits and basic constraints.
import '../src/reflect-metadata.js';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import {
  createCa,
  createKeyPair,
  issueClientCert,
  issueClientCerts,
  issueServerCert,
  loadCa,
  PkiError,
} from '../src/index.js';
import { ipAddressBytes } from '../src/ip.js';

const DAY_MS = 24 * 3600 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function assertWithin(actual: Date, expected: number, toleranceMs: number): void {
  assert.ok(
    Math.abs(actual.getTime() - expected) <= toleranceMs,
    `${actual.toISOString()} vs ${new Date(expected).toISOString()}`,
  );
}

function keyUsageBits(pem: string): number | undefined {
  return new x509.X509Certificate(pem).getExtension(x509.KeyUsagesExtension)?.usages;
}

describe('certificate authority', () => {
  test('createCa: a self-signed CA limited to signing leaves, valid for validDays', async () => {
    const started = Date.now();
    const ca = await createCa({ commonName: 'Test Fleet CA', validDays: 30 });
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.subject, 'CN=Test Fleet CA');
    assert.equal(cert.issuer, 'CN=Test Fleet CA');
    assert.equal(cert.ca, true);
    assert.ok(cert.verify(cert.publicKey), 'self-signature verifies');
    assertWithin(new Date(cert.validTo), started + 30 * DAY_MS, 60_000);
    assert.ok(new Date(cert.validFrom).getTime() <= started, 'valid from before now (clock skew)');
    const parsed = new x509.X509Certificate(ca.certPem);
    const constraints = parsed.getExtension(x509.BasicConstraintsExtension);
    assert.equal(constraints?.ca, true);
    assert.equal(constraints?.pathLength, 0);
    assert.equal(keyUsageBits(ca.certPem), x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(createPrivateKey(ca.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  test('loadCa round-trips PEM and refuses a foreign key or a leaf certificate', async () => {
    const ca = await createCa({ commonName: 'Round Trip CA', validDays: 10 });
    const loaded = loadCa({ certPem: ca.certPem, keyPem: ca.keyPem });
    assert.equal(loaded.commonName, 'Round Trip CA');
    assert.deepEqual(loaded.keyId, ca.keyId);
    const leaf = await issueClientCert(loaded, { commonName: 'VIN1' });
    assert.ok(new X509Certificate(leaf.certPem).verify(new X509Certificate(ca.certPem).publicKey));

    const other = await createCa({ commonName: 'Other CA', validDays: 10 });
    assert.throws(
      () => loadCa({ certPem: ca.certPem, keyPem: other.keyPem }),
      (err: unknown) => err instanceof PkiError && err.code === 'PKI_ERR_KEY_MISMATCH',
    );
    assert.throws(
      () => loadCa({ certPem: leaf.certPem, keyPem: leaf.keyPem }),
      (err: unknown) => err instanceof PkiError && err.code === 'PKI_ERR_NOT_A_CA',
    );
    assert.throws(
      () => loadCa({ certPem: 'not a certificate', keyPem: ca.keyPem }),
      (err: unknown) => err instanceof PkiError && err.code === 'PKI_ERR_INVALID_PEM',
    );
  });
});

describe('leaf certificates', () => {
  test('issueServerCert: chained to the CA, CN, SAN DNS and IPv4/IPv6, serverAuth, digitalSignature', async () => {
    const ca = await createCa({ commonName: 'Server CA', validDays: 30 });
    const started = Date.now();
    const server = await issueServerCert(ca, {
      commonName: 'broker.local',
      dnsNames: ['broker.local', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1', '2001:db8::8:800:200c:417a'],
      validDays: 90,
    });
    const cert = new X509Certificate(server.certPem);
    const caCert = new X509Certificate(ca.certPem);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.equal(cert.subject, 'CN=broker.local');
    assert.equal(cert.issuer, 'CN=Server CA');
    assert.equal(cert.ca, false);
    assert.equal(cert.checkHost('broker.local'), 'broker.local');
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkHost('example.com'), undefined);
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkIP('::1'), '::1');
    assert.equal(cert.checkIP('2001:db8::8:800:200c:417a'), '2001:db8::8:800:200c:417a');
    assert.equal(cert.checkIP('10.0.0.1'), undefined);
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH]);
    assert.equal(keyUsageBits(server.certPem), x509.KeyUsageFlags.digitalSignature);
    assertWithin(new Date(cert.validTo), started + 90 * DAY_MS, 60_000);
    assert.equal(server.serialNumber, cert.serialNumber);
    assert.equal(server.notAfter.getTime(), new Date(cert.validTo).getTime());
    assert.ok(
      createPublicKey(server.keyPem)
        .export({ type: 'spki', format: 'der' })
        .equals(cert.publicKey.export({ type: 'spki', format: 'der' })),
      'the key belongs to the certificate',
    );
    const aki = new x509.X509Certificate(server.certPem).getExtension(x509.AuthorityKeyIdentifierExtension);
    const ski = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension);
    assert.equal(aki?.keyId, ski?.keyId);
  });

  test('issueClientCert: the identity in the CN, clientAuth, no SAN, a fresh key and serial each time', async () => {
    const ca = await createCa({ commonName: 'Client CA', validDays: 30 });
    const a = await issueClientCert(ca, { commonName: 'WVWZZZ1JZXW000001' });
    const b = await issueClientCert(ca, { commonName: 'otalink-backend', validDays: 2 });
    const certA = new X509Certificate(a.certPem);
    assert.equal(certA.subject, 'CN=WVWZZZ1JZXW000001');
    assert.deepEqual(certA.keyUsage, [CLIENT_AUTH]);
    assert.equal(certA.subjectAltName, undefined);
    assert.ok(certA.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(new X509Certificate(b.certPem).subject, 'CN=otalink-backend');
    assert.notEqual(a.keyPem, b.keyPem);
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.match(a.serialNumber, /^[0-9A-F]{32}$/);
  });

  test('issueClientCerts: one certificate per name, in order; a shared key pair when asked', async () => {
    const ca = await createCa({ commonName: 'Fleet CA', validDays: 30 });
    const names = Array.from({ length: 40 }, (_, i) => `SIM-${String(i).padStart(6, '0')}`);
    const own = await issueClientCerts(ca, names, { concurrency: 7 });
    assert.deepEqual(
      own.map((c) => new X509Certificate(c.certPem).subject),
      names.map((n) => `CN=${n}`),
    );
    assert.equal(new Set(own.map((c) => c.keyPem)).size, names.length);
    const keyPair = await createKeyPair();
    const shared = await issueClientCerts(ca, names.slice(0, 5), { keyPair });
    assert.equal(new Set(shared.map((c) => c.keyPem)).size, 1);
    assert.equal(new Set(shared.map((c) => c.serialNumber)).size, 5);
  });

  test('bad names, addresses and validity are refused with stable codes', async () => {
    const ca = await createCa({ commonName: 'Strict CA', validDays: 30 });
    const code = (expected: string) => (err: unknown) => err instanceof PkiError && err.code === expected;
    await assert.rejects(issueClientCert(ca, { commonName: '' }), code('PKI_ERR_INVALID_NAME'));
    await assert.rejects(issueClientCert(ca, { commonName: 'a\nb' }), code('PKI_ERR_INVALID_NAME'));
    await assert.rejects(issueClientCert(ca, { commonName: 'x'.repeat(65) }), code('PKI_ERR_INVALID_NAME'));
    await assert.rejects(
      issueServerCert(ca, { commonName: 'ok', dnsNames: ['bad name'] }),
      code('PKI_ERR_INVALID_NAME'),
    );
    await assert.rejects(
      issueServerCert(ca, { commonName: 'ok', ipAddresses: ['300.1.1.1'] }),
      code('PKI_ERR_INVALID_IP'),
    );
    await assert.rejects(issueClientCert(ca, { commonName: 'ok', validDays: 0 }), code('PKI_ERR_INVALID_OPTION'));
    await assert.rejects(createCa({ commonName: 'ok', validDays: -1 }), code('PKI_ERR_INVALID_OPTION'));
  });

  test('IP addresses become the 4 or 16 bytes of an iPAddress name', () => {
    const hex = (ip: string) => Buffer.from(ipAddressBytes(ip)).toString('hex');
    assert.equal(hex('127.0.0.1'), '7f000001');
    assert.equal(hex('::1'), '00000000000000000000000000000001');
    assert.equal(hex('::'), '00000000000000000000000000000000');
    assert.equal(hex('fe80::1:2'), 'fe800000000000000000000000010002');
    assert.equal(hex('2001:db8::'), '20010db8000000000000000000000000');
    assert.equal(hex('::ffff:10.1.2.3'), '00000000000000000000ffff0a010203');
    assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  });
});
