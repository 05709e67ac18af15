// The identity a client certificate gives (use_identity_as_username): its first CN, when that is a name an MQTT
// string can carry. Found by an exploratory session: an empty CN made every such vehicle share client id "", and
// a CN holding U+0000 got a 5.0 client DISCONNECT 0x81 (the broker could not encode its Assigned Client Identifier)
// and a 3.1.1 client a client id with a NUL in it. Mosquitto refuses both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { certificateCommonName } from '../src/listeners/common.js';

const peer = (CN: string | string[] | undefined, authorized = true) =>
  ({ authorized, getPeerCertificate: () => ({ subject: CN === undefined ? {} : { CN } }) }) as unknown as TLSSocket;

test('a certificate names its first CN; none, an empty one or one with U+0000 names nobody', () => {
  assert.equal(certificateCommonName(peer('VIN1')), 'VIN1');
  assert.equal(certificateCommonName(peer(['VIN1', 'VIN2'])), 'VIN1');
  assert.equal(certificateCommonName(peer('VIN1', false)), undefined, 'not verified');
  assert.equal(certificateCommonName(peer(undefined)), undefined);
  assert.equal(certificateCommonName(peer('')), undefined);
  assert.equal(certificateCommonName(peer('VIN1\u0000evil')), undefined);
  assert.equal(certificateCommonName(peer(['', 'VIN2'])), undefined, 'the first CN is the one that counts');
});
