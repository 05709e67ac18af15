// What a kept payload holds on to. A payload is a view into the socket read it came in; a retained one, which may be
// kept for months, is copied into memory of its own when its read carried other packets too, so that it does not
// keep the whole read alive. Driven with in-memory sockets, so that each read is exactly the bytes given.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, type Packet } from '@otalink/mqtt';
import { bareCore } from './support/bare-core.js';
import { connected } from './support/memory-peer.js';

const retained = (topic: string, payload: number[]): Packet => ({
  type: 'publish',
  topic,
  payload: new Uint8Array(payload),
  qos: 1,
  packetId: 1,
  retain: true,
  dup: false,
});

/** `bytes` as a read of its own: a Buffer that is all of its ArrayBuffer, as the broker's TCP reads are. */
function ownRead(bytes: Uint8Array): Buffer {
  const read = Buffer.allocUnsafeSlow(bytes.length);
  read.set(bytes);
  return read;
}

test('a retained payload that shared its read with other packets is copied into memory of its own', async () => {
  const core = bareCore();
  const publisher = await connected(core, 'shared-read');
  const filler = { type: 'publish', topic: 'filler', payload: new Uint8Array(4000), qos: 0, retain: false, dup: false };
  const bytes = Buffer.concat([encode(retained('kept/a', [1, 2, 3]), 4), encode(filler as Packet, 4)]);
  publisher.socket.emit('data', ownRead(bytes));
  const message = core.router.retained.get('kept/a');
  assert.deepEqual([...(message?.payload ?? [])], [1, 2, 3]);
  assert.equal(message?.payload.buffer.byteLength, 3, 'not the 4 KB read it came in');
});

test('a retained payload that had its read to itself stays a view into it: nothing else is kept', async () => {
  const core = bareCore();
  const publisher = await connected(core, 'own-read');
  const frame = encode(retained('kept/b', [4, 5]), 4);
  const read = ownRead(frame);
  publisher.socket.emit('data', read);
  const message = core.router.retained.get('kept/b');
  assert.deepEqual([...(message?.payload ?? [])], [4, 5]);
  assert.equal(message?.payload.buffer, read.buffer, 'no copy');
});
