// Issue 6: a command delivered twice with the same msgId is acted on once. The job.notify the backend sent is
// captured on the wire and, after the vehicle finished, published again twice with its msgId, then once more with
// a fresh msgId. An agent answers a notify for a finished execution by resending its last report, so without
// deduplication the two copies would add two reports; with it only the fresh copy does (QoS 1 from one publisher
// arrives in order, so the copies were seen before the control).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect, type Message } from '@otalink/mqtt';
import { OtaTopics } from '@otalink/ota';
import { startOurBroker } from './support/brokers.js';
import { startHarness } from './support/harness.js';

test('the same command twice (same msgId) is acted on once; a fresh msgId is acted on', {
  timeout: 120_000,
}, async () => {
  const broker = await startOurBroker();
  const h = await startHarness({ brokerUrl: broker.url });
  const observer = await connect(broker.url, { clientId: 'e2e-observer', protocolVersion: 5 });
  try {
    const vin = 'E2E-DEDUP-1';
    const topic = new OtaTopics({ vinMode: 'simulation' }).command(vin);
    const commands: Message[] = [];
    observer.on('message', (m) => commands.push(m));
    await observer.subscribe(topic, { qos: 1 });

    const runner = await h.startVehicle(vin);
    await h.waitForOnline([vin], 20_000);
    const started = await h.campaign([vin]);
    await h.waitForExecution(started.id, vin, (e) => e.status === 'SUCCEEDED', 30_000);

    const notify = commands
      .map((m) => JSON.parse(Buffer.from(m.payload).toString('utf8')) as { type: string; msgId: string })
      .find((c) => c.type === 'job.notify');
    assert.ok(notify !== undefined, 'no job.notify seen on the command topic');
    const agent = runner.agent;
    await delay(300);
    const before = agent.counters.reports;
    const original = JSON.stringify(notify);
    await observer.publish(topic, original, { qos: 1 });
    await observer.publish(topic, original, { qos: 1 });
    await observer.publish(topic, JSON.stringify({ ...notify, msgId: randomUUID() }), { qos: 1 });

    const deadline = Date.now() + 15_000;
    while (agent.counters.reports < before + 1 && Date.now() < deadline) await delay(50);
    // Room for a late extra report to show up before counting.
    await delay(500);
    assert.equal(agent.counters.reports, before + 1, 'the duplicates were acted on');
    assert.equal(runner.agent, agent, 'the agent restarted during the test');
    const execution = (await h.service.executionHistory(started.id, vin)).executions[0];
    assert.equal(execution?.status, 'SUCCEEDED');
  } finally {
    await observer.end().catch(() => undefined);
    await h.close();
    await broker.close();
  }
});
