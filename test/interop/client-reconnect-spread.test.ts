// 1000 clients lose their broker at the same instant (SIGKILL) and it comes back on the same port: with the
// default backoff (full jitter, 1 s doubling to 60 s, Paho's schedule) they come back spread over seconds, not as
// one burst in the first milliseconds after the restart (the thundering herd that MQTT.js#1825 / #561 describe),
// and every one of them does come back by itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, type MqttClient } from '../../packages/mqtt/src/client/index.js';
import { BrokerProcess } from '../support/broker-process.js';

const CLIENTS = 1000;
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

test(`${CLIENTS} clients after a broker restart reconnect spread out, and all of them`, {
  timeout: 150_000,
}, async (t) => {
  const broker = new BrokerProcess();
  await broker.run();
  const port = broker.port;
  const clients: MqttClient[] = [];
  try {
    // Connected 50 at a time: the point is the reconnect, not the first connect.
    for (let i = 0; i < CLIENTS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CLIENTS - i) }, (_, j) =>
          connect({ url: `mqtt://127.0.0.1:${port}`, clientId: `spread-${i + j}`, keepalive: 30 }),
        ),
      );
      clients.push(...batch);
    }
    const back: number[] = [];
    // When each client's successful attempt was due to start (its last 'reconnecting' + delay): the spread is the
    // clients' doing. Their CONNACK times also carry the broker's start-up: one that comes up slowly (seconds on a
    // loaded machine) accepts a backlog of queued connects in one burst, whatever the clients did.
    const attemptedAt: number[] = [];
    const failedAttempts = { count: 0 };
    for (const client of clients) {
      let dueAt = 0;
      client.on('reconnecting', ({ delayMs }) => {
        dueAt = Date.now() + delayMs;
      });
      client.on('connected', () => {
        back.push(Date.now());
        attemptedAt.push(dueAt);
      });
      client.on('error', () => failedAttempts.count++);
    }

    await broker.kill('SIGKILL');
    const killedAt = Date.now();
    // Down for a while, as a real broker restart is: the early attempts are refused and back off further.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await broker.run(port);
    const restartedAt = Date.now();

    const deadline = Date.now() + 65_000;
    while (back.length < CLIENTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(back.length, CLIENTS, `${back.length} of ${CLIENTS} reconnected within 65 s of the restart`);
    assert.ok(
      clients.every((c) => c.state === 'connected'),
      'every client is connected',
    );

    const sinceRestart = back.map((t) => t - restartedAt).sort((a, b) => a - b);
    const last = sinceRestart[sinceRestart.length - 1] as number;
    const attempts = attemptedAt.map((t) => t - restartedAt).sort((a, b) => a - b);
    const p10 = percentile(attempts, 10);
    const p50 = percentile(attempts, 50);
    const p90 = percentile(attempts, 90);
    // The herd: how many successful attempts started in the busiest 100 ms.
    let busiest = 0;
    for (let i = 0, j = 0; i < attempts.length; i++) {
      while ((attempts[i] as number) - (attempts[j] as number) > 100) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    const summary = `down ${restartedAt - killedAt} ms; successful attempts after restart p10 ${p10.toFixed(0)} p50 ${p50.toFixed(0)} p90 ${p90.toFixed(0)} ms; last back ${last} ms (p50 ${percentile(sinceRestart, 50)}); busiest 100 ms: ${busiest}; refused attempts ${failedAttempts.count}`;
    // Every client retried while the broker was down (attempt 0 and 1 land within 0-3 s), so the comeback follows
    // the jittered schedule: 80 % of the fleet is spread over at least a second ...
    assert.ok(p90 - p10 >= 1000, summary);
    // ... and no 100 ms slot carries more than a fifth of it. Without jitter (every client on the same 1 s, 2 s,
    // 4 s ceilings) the whole fleet would land in one slot.
    assert.ok(busiest <= CLIENTS / 5, summary);
    // Bounded: whatever attempt a client is on, its next one comes within the 60 s cap of the schedule.
    assert.ok(last <= 62_000, summary);
    t.diagnostic(summary);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await broker.kill('SIGKILL');
  }
});
