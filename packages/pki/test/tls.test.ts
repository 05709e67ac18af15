// The certificates in a real node:tls handshake with mutual authentication: the client checks the server's name
// and chain, the server checks the client's chain and reads the identity from its CN.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import {
  type CertificateAuthority,
  createCa,
  type IssuedCertificate,
  issueClientCert,
  issueServerCert,
} from '../src/index.js';

describe('mutual TLS with issued certificates', () => {
  let ca: CertificateAuthority;
  let server: Server;
  let port: number;
  let vehicle: IssuedCertificate;
  const identities: Array<string | undefined> = [];

  before(async () => {
    ca = await createCa({ commonName: 'TLS Test CA', validDays: 2 });
    const serverCert = await issueServerCert(ca, {
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    vehicle = await issueClientCert(ca, { commonName: 'SIM-000001' });
    server = createServer(
      { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
      (socket: TLSSocket) => {
        const subject = socket.getPeerCertificate().subject as { CN?: string } | undefined;
        identities.push(subject?.CN);
        socket.end(`hello ${subject?.CN ?? '?'}`);
      },
    );
    server.on('tlsClientError', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.close();
    await once(server, 'close');
  });

  async function handshake(options: { cert?: string; key?: string; servername?: string; host?: string; ca?: string }) {
    const socket = connect({ host: options.host ?? '127.0.0.1', port, ca: options.ca ?? ca.certPem, ...options });
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    try {
      await once(socket, 'end');
      return { text: Buffer.concat(chunks).toString(), authorized: socket.authorized };
    } finally {
      socket.destroy();
    }
  }

  /** With TLS 1.3 the server judges the client certificate after the client's handshake is done, so a refusal
   * reaches the client as an error or as a connection closed without the greeting. */
  async function refusedByServer(options: { cert?: string; key?: string; servername?: string }): Promise<boolean> {
    try {
      return !(await handshake(options)).text.startsWith('hello');
    } catch {
      return true;
    }
  }

  test('a vehicle certificate authenticates both ways; the server sees the VIN', async () => {
    const result = await handshake({ cert: vehicle.certPem, key: vehicle.keyPem, servername: 'localhost' });
    assert.equal(result.text, 'hello SIM-000001');
    assert.equal(result.authorized, true);
    assert.ok(identities.includes('SIM-000001'));
  });

  test('the server name is checked against the SAN by IP address too', async () => {
    const result = await handshake({ cert: vehicle.certPem, key: vehicle.keyPem });
    assert.equal(result.text, 'hello SIM-000001');
  });

  test('a client without a certificate is refused', async () => {
    assert.equal(await refusedByServer({ servername: 'localhost' }), true);
  });

  test('a client certificate from another CA is refused', async () => {
    const otherCa = await createCa({ commonName: 'Rogue CA', validDays: 2 });
    const rogue = await issueClientCert(otherCa, { commonName: 'SIM-000001' });
    assert.equal(await refusedByServer({ cert: rogue.certPem, key: rogue.keyPem, servername: 'localhost' }), true);
    assert.equal(await refusedByServer({ cert: vehicle.certPem, key: vehicle.keyPem, servername: 'localhost' }), false);
  });

  test('a client that does not trust our CA refuses the server', async () => {
    const otherCa = await createCa({ commonName: 'Unrelated CA', validDays: 2 });
    await assert.rejects(
      handshake({ cert: vehicle.certPem, key: vehicle.keyPem, servername: 'localhost', ca: otherCa.certPem }),
      (err: NodeJS.ErrnoException) => {
        // The server sends its chain up to our CA, which this client does not have as a trust anchor.
        assert.equal(err.code, 'SELF_SIGNED_CERT_IN_CHAIN');
        return true;
      },
    );
  });

  test('a server name outside the SAN is refused by the client', async () => {
    await assert.rejects(
      handshake({ cert: vehicle.certPem, key: vehicle.keyPem, servername: 'example.com' }),
      (err: NodeJS.ErrnoException) => err.code === 'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });
});
