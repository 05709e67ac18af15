// Broker.clients(): the ids of the clients connected now. It is read from the sessions' outlets (the broker keeps no
// map of connections by id), so an offline session is not listed and a taken-over client is listed once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connected, delay, startBroker } from './support/raw-client.js';

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await delay(10);
  assert.ok(check());
}

describe('Broker.clients()', () => {
  test('lists connected clients, not offline sessions, and a taken-over id once', async () => {
    const b = await startBroker();
    try {
      const list = () => b.broker.clients().sort();
      assert.deepEqual(list(), []);
      const a = await connected(b.port, { clientId: 'list-a', clean: false });
      const c = await connected(b.port, { clientId: 'list-c' });
      assert.deepEqual(list(), ['list-a', 'list-c']);
      // Taken over: the new connection is the one listed, and the old one's close does not remove it.
      const a2 = await connected(b.port, { clientId: 'list-a', clean: false });
      await a.expectClose();
      assert.deepEqual(list(), ['list-a', 'list-c']);
      // Gone: a persistent session stays offline, unlisted; a clean one ends.
      a2.end();
      c.end();
      await until(() => b.broker.clients().length === 0);
      assert.equal(b.broker.stats.sessionsOffline, 1);
    } finally {
      await b.close();
    }
  });
});
