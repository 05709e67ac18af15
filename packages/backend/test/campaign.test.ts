import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMessage } from '@otalink/ota';
import { BackendError } from '../src/api.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { BackendStore, StoreBatch } from '../src/store/types.js';
import { type Harness, harness } from './support.js';

async function succeed(h: Harness, vin: string, id: string, n = 1, from = 1): Promise<void> {
  await h.report(vin, id, n, from, 'IN_PROGRESS', { step: 'DOWNLOADING', progress: 50 });
  await h.report(vin, id, n, from + 1, 'SUCCEEDED', { installedVersion: '2.0.0' });
}

/** Vehicles notified at least once, in order of their first notify. */
const released = (h: Harness) => [...new Set(h.sink.notified())];

describe('campaign orchestration (fake clock, recorded commands)', () => {
  test('one wave of 100 %: every vehicle is notified with a signed manifest and the campaign completes', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(3);
      const started = await h.backend.service.startCampaign(id);
      assert.equal(started.state, 'RUNNING');
      assert.equal(started.targets, 3);
      assert.deepEqual(h.sink.notified().sort(), vins);
      const notify = h.sink.ofType('job.notify')[0];
      assert.ok(notify);
      assert.equal(notify.jobId, id);
      assert.equal(notify.executionNumber, 1);
      assert.match(notify.manifest.manifest.url, /^https:\/\/127\.0\.0\.1:8443\/artifacts\/[0-9a-f]{64}\?exp=\d+&sig=/);
      for (const vin of vins) await succeed(h, vin, id);
      const done = await h.backend.service.getCampaign(id);
      assert.equal(done.state, 'COMPLETED');
      assert.equal(done.counts.SUCCEEDED, 3);
      assert.equal((await h.backend.service.getVehicle(vins[0] as string)).installedVersion, '2.0.0');
      const history = await h.backend.service.executionHistory(id, vins[0] as string);
      assert.deepEqual(
        history.transitions.map((t) => `${t.from}>${t.to}:${t.cause}`),
        ['QUEUED>NOTIFIED:notify', 'NOTIFIED>IN_PROGRESS:vehicle-status', 'IN_PROGRESS>SUCCEEDED:vehicle-status'],
      );
      assert.ok(history.transitions.every((t) => t.at === h.clock.now()));
      const audit = await h.backend.service.campaignHistory(id);
      assert.deepEqual(
        audit.map((t) => t.cause),
        ['start', 'complete'],
      );
    } finally {
      await h.close();
    }
  });

  test('waves wait for their success threshold and block when it cannot be met', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(10, {
        rollout: {
          kind: 'waves',
          waves: [
            { percent: 10, successThreshold: 100 },
            { percent: 50, successThreshold: 100 },
            { percent: 100, successThreshold: 0 },
          ],
        },
      });
      await h.backend.service.startCampaign(id);
      assert.deepEqual(h.sink.notified(), [vins[0]], 'wave 1: 10 % of 10 = 1 vehicle');
      await succeed(h, vins[0] as string, id);
      assert.deepEqual(h.sink.notified(), vins.slice(0, 5), 'wave 2 releases up to 50 %');
      for (const vin of vins.slice(1, 4)) await succeed(h, vin, id);
      await h.report(vins[4] as string, id, 1, 1, 'REJECTED', { reason: { code: 'OTA_ERR_NOT_NEWER', text: 'x' } });
      const blocked = await h.backend.service.getCampaign(id);
      assert.equal(blocked.state, 'RUNNING');
      assert.equal(blocked.progress.decision, 'blocked');
      assert.equal(blocked.released, 5);
      assert.equal(h.sink.notified().length, 5, 'nothing more released: 4 of 5 succeeded, 100 % needed');
    } finally {
      await h.close();
    }
  });

  test('the abort rule fires after the minimum count and cancels the vehicles in flight with force', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(10, { abort: { failurePercent: 20, minFinished: 4 } });
      await h.backend.service.startCampaign(id);
      await h.report(vins[9] as string, id, 1, 1, 'IN_PROGRESS', { step: 'INSTALLING' });
      await succeed(h, vins[0] as string, id);
      for (const vin of vins.slice(1, 3)) {
        await h.report(vin, id, 1, 1, 'ROLLED_BACK', { reason: { code: 'AGENT_ERR_HEALTH', text: 'boot failed' } });
      }
      assert.equal(
        (await h.backend.service.getCampaign(id)).state,
        'RUNNING',
        '2 of 3 finished failed, below minFinished',
      );
      await h.report(vins[3] as string, id, 1, 1, 'REJECTED', {
        reason: { code: 'OTA_ERR_HARDWARE_MISMATCH', text: 'x' },
      });
      const aborted = await h.backend.service.getCampaign(id);
      assert.equal(aborted.state, 'ABORTED');
      assert.equal(aborted.counts.CANCELED, 6);
      const cancels = h.sink.ofType('job.cancel');
      assert.equal(cancels.length, 6);
      assert.ok(cancels.every((c) => c.force && c.jobId === id));
      assert.equal(h.sink.ofType('job.cancel', vins[9]).length, 1, 'the vehicle in progress is told too');
      const audit = await h.backend.service.campaignHistory(id);
      assert.equal(audit.at(-1)?.cause, 'abort');
      assert.match(audit.at(-1)?.reason ?? '', /3 of 4/);
      // A late outcome from a canceled execution changes nothing.
      await h.report(vins[9] as string, id, 1, 2, 'SUCCEEDED');
      assert.equal((await h.backend.service.getCampaign(id)).counts.SUCCEEDED, 1);
    } finally {
      await h.close();
    }
  });

  test('pause stops releasing, resume continues, cancel reaches vehicles in progress', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(6, {
        rollout: { kind: 'exponential', basePerMinute: 2, growthFactor: 1, growAfterSuccesses: 1 },
      });
      await h.backend.service.startCampaign(id);
      assert.deepEqual(h.sink.notified(), vins.slice(0, 2));
      assert.equal((await h.backend.service.getCampaign(id)).progress.ratePerMinute, 2);
      await h.report(vins[0] as string, id, 1, 1, 'IN_PROGRESS');
      assert.equal((await h.backend.service.pauseCampaign(id)).state, 'PAUSED');
      await assert.rejects(h.backend.service.pauseCampaign(id), { code: 'OTA_ERR_INVALID_STATE', status: 409 });
      await h.tick(120_000);
      assert.deepEqual(released(h), vins.slice(0, 2), 'a paused campaign releases nothing');
      // Executions already released continue while paused.
      await h.report(vins[1] as string, id, 1, 1, 'SUCCEEDED');
      await h.backend.service.resumeCampaign(id);
      assert.deepEqual(released(h), vins.slice(0, 4), 'resume releases the next window');
      await h.tick(60_000);
      assert.deepEqual(released(h), vins.slice(0, 6));
      const canceled = await h.backend.service.cancelCampaign(id);
      assert.equal(canceled.state, 'CANCELED');
      assert.equal(canceled.counts.CANCELED, 5);
      const cancel = h.sink.ofType('job.cancel', vins[0]);
      assert.equal(cancel.length, 1);
      assert.equal(cancel[0]?.force, true);
      assert.equal(h.sink.ofType('job.cancel', vins[1]).length, 0, 'a finished execution is not canceled');
      await assert.rejects(h.backend.service.resumeCampaign(id), { code: 'OTA_ERR_INVALID_STATE' });
    } finally {
      await h.close();
    }
  });

  test('pause with executions: job.pause to vehicles in flight, their timers stop; resume sends job.resume', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(2, { timers: { stepTimeoutMs: 5000, renotifyAfterMs: 1000 } });
      const [a, b] = vins as [string, string];
      await h.backend.service.startCampaign(id);
      await h.report(a, id, 1, 1, 'IN_PROGRESS');
      await h.backend.service.pauseCampaign(id, { executions: true });
      assert.equal(h.sink.ofType('job.pause', a).length, 1);
      assert.equal(h.sink.ofType('job.pause', b).length, 1, 'a NOTIFIED execution is paused too');
      await h.tick(60_000);
      assert.equal(h.sink.ofType('job.notify', b).length, 1, 'no re-notify while paused');
      let history = await h.backend.service.executionHistory(id, a);
      assert.equal(history.executions[0]?.status, 'IN_PROGRESS', 'no step timeout while paused');
      assert.equal(history.executions[0]?.paused, true);
      h.backend.engine.sync(a, 'boot-2');
      await h.backend.engine.flushNow();
      assert.equal(h.sink.ofType('sync.result', a)[0]?.executions[0]?.paused, true);
      await h.backend.service.resumeCampaign(id);
      assert.equal(h.sink.ofType('job.resume', a).length, 1);
      assert.equal(h.sink.ofType('job.resume', b).length, 1);
      await h.tick(4999);
      history = await h.backend.service.executionHistory(id, a);
      assert.equal(history.executions[0]?.status, 'IN_PROGRESS', 'the step timer restarts from the resume');
      await h.tick(1);
      history = await h.backend.service.executionHistory(id, a);
      assert.equal(history.executions[0]?.status, 'TIMED_OUT');
      assert.deepEqual(
        history.transitions.map((t) => t.cause),
        ['notify', 'vehicle-status', 'pause', 'resume', 'step-timeout'],
      );
    } finally {
      await h.close();
    }
  });

  test('FAILED and TIMED_OUT are retried with a new execution number up to maxRetries', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(2, { maxRetries: 1, timers: { stepTimeoutMs: 10_000 } });
      const [a, b] = vins as [string, string];
      await h.backend.service.startCampaign(id);
      await h.report(a, id, 1, 1, 'FAILED', { reason: { code: 'AGENT_ERR_DOWNLOAD', text: 'x' } });
      const retry = h.sink.ofType('job.notify', a);
      assert.deepEqual(
        retry.map((n) => n.executionNumber),
        [1, 2],
      );
      await h.report(b, id, 1, 1, 'IN_PROGRESS');
      await h.tick(10_000);
      assert.deepEqual(
        h.sink.ofType('job.notify', b).map((n) => n.executionNumber),
        [1, 2],
        'TIMED_OUT is retried',
      );
      // A late report for the old attempt is ignored.
      await h.report(b, id, 1, 2, 'SUCCEEDED');
      assert.equal((await h.backend.service.getCampaign(id)).counts.SUCCEEDED, 0);
      await h.report(a, id, 2, 1, 'FAILED', { reason: { code: 'AGENT_ERR_DOWNLOAD', text: 'again' } });
      await succeed(h, b, id, 2);
      const done = await h.backend.service.getCampaign(id);
      assert.equal(done.state, 'COMPLETED', 'the retry budget is used up: final');
      assert.equal(h.sink.ofType('job.notify', a).length, 2);
      const history = await h.backend.service.executionHistory(id, a);
      assert.deepEqual(
        history.executions.map((e) => [e.executionNumber, e.status]),
        [
          [2, 'FAILED'],
          [1, 'FAILED'],
        ],
      );
      const bHistory = await h.backend.service.executionHistory(id, b);
      assert.equal(bHistory.executions[1]?.status, 'TIMED_OUT');
      assert.deepEqual(bHistory.executions[1]?.reason, { code: 'OTA_ERR_TIMED_OUT', text: 'step-timeout' });
    } finally {
      await h.close();
    }
  });

  test('timers: re-notify with backoff, step timeout re-armed by progress, in-progress timeout', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(2, {
        timers: { renotifyAfterMs: 1000, renotifyBackoff: 2, stepTimeoutMs: 5000, inProgressTimeoutMs: 12_000 },
      });
      const [a, b] = vins as [string, string];
      await h.backend.service.startCampaign(id);
      await h.tick(999);
      assert.equal(h.sink.ofType('job.notify', a).length, 1);
      await h.tick(1);
      assert.equal(h.sink.ofType('job.notify', a).length, 2, 'first re-notify after 1 s');
      await h.tick(1999);
      assert.equal(h.sink.ofType('job.notify', a).length, 2);
      await h.tick(1);
      assert.equal(h.sink.ofType('job.notify', a).length, 3, 'then after 2 s (backoff 2)');
      const ids = new Set(h.sink.ofType('job.notify', a).map((n) => n.msgId));
      assert.equal(ids.size, 3, 'every re-notify is a new message');

      // a: progress every 4 s keeps the step timer alive until the in-progress timeout (12 s) ends it.
      await h.report(a, id, 1, 1, 'IN_PROGRESS');
      await h.report(b, id, 1, 1, 'IN_PROGRESS');
      for (let seq = 2; seq <= 3; seq++) {
        await h.tick(4000);
        await h.report(a, id, 1, seq, 'IN_PROGRESS', { progress: seq * 10 });
      }
      let view = await h.backend.service.executionHistory(id, b);
      assert.equal(view.executions[0]?.status, 'TIMED_OUT', 'b sent nothing for 5 s');
      assert.equal(view.transitions.at(-1)?.cause, 'step-timeout');
      await h.tick(3999);
      view = await h.backend.service.executionHistory(id, a);
      assert.equal(view.executions[0]?.status, 'IN_PROGRESS');
      await h.tick(1);
      view = await h.backend.service.executionHistory(id, a);
      assert.equal(view.executions[0]?.status, 'TIMED_OUT');
      assert.equal(view.transitions.at(-1)?.cause, 'in-progress-timeout');
      const renotifies = view.transitions.filter((t) => t.cause === 'renotify');
      assert.equal(renotifies.length, 2, 're-notifies are in the audit trail');
    } finally {
      await h.close();
    }
  });

  test('duplicate and older seq are ignored and recorded once', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(1);
      const vin = vins[0] as string;
      await h.backend.service.startCampaign(id);
      await h.report(vin, id, 1, 2, 'IN_PROGRESS', { progress: 10 });
      await h.report(vin, id, 1, 2, 'IN_PROGRESS', { progress: 10 });
      await h.report(vin, id, 1, 1, 'IN_PROGRESS', { progress: 5 });
      await h.report(vin, id, 1, 3, 'IN_PROGRESS', { step: 'VERIFYING' });
      const stats = await h.backend.service.stats();
      assert.equal(stats.statusIgnored.DUPLICATE, 1);
      assert.equal(stats.statusIgnored.OUT_OF_ORDER, 1);
      assert.equal(stats.statusApplied, 2);
      const history = await h.backend.service.executionHistory(id, vin);
      assert.equal(history.executions[0]?.lastSeq, 3);
      assert.deepEqual(
        history.transitions.map((t) => t.toStep ?? t.to),
        ['NOTIFIED', 'DOWNLOADING', 'VERIFYING'],
      );
    } finally {
      await h.close();
    }
  });

  test('sync answers with the executions in flight and their lastSeq', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(2);
      await h.backend.service.startCampaign(id);
      await h.report(vins[0] as string, id, 1, 4, 'IN_PROGRESS', { paused: true });
      h.backend.engine.sync(vins[0] as string, 'boot-1');
      h.backend.engine.sync('SIM-UNKNOWN', 'boot-2');
      await h.backend.engine.flushNow();
      const [result] = h.sink.ofType('sync.result', vins[0]);
      assert.equal(result?.clientToken, 'boot-1');
      assert.equal(result?.executions.length, 1);
      assert.equal(result?.executions[0]?.status, 'IN_PROGRESS');
      assert.equal(result?.executions[0]?.lastSeq, 4);
      assert.equal(result?.executions[0]?.manifest.manifest.sha256.length, 64);
      assert.deepEqual(h.sink.ofType('sync.result', 'SIM-UNKNOWN')[0]?.executions, []);
    } finally {
      await h.close();
    }
  });

  test('a restart from the same data directory continues: no lost or doubled status, timers re-armed', async () => {
    const h = await harness();
    try {
      const { id, vins } = await h.campaign(4, { timers: { stepTimeoutMs: 30_000 } });
      const [a, b, c, d] = vins as [string, string, string, string];
      await h.backend.service.startCampaign(id);
      await h.report(a, id, 1, 1, 'IN_PROGRESS');
      await h.report(a, id, 1, 2, 'IN_PROGRESS', { progress: 40 });
      await succeed(h, b, id);
      await h.restart();
      // The restart re-sends job.notify for what is in flight, so a status acknowledged but lost can be resent.
      assert.deepEqual(h.sink.notified().sort(), [a, c, d]);
      const before = await h.backend.service.getCampaign(id);
      assert.equal(before.state, 'RUNNING');
      assert.deepEqual([before.counts.IN_PROGRESS, before.counts.SUCCEEDED, before.counts.NOTIFIED], [1, 1, 2]);
      await h.report(a, id, 1, 2, 'IN_PROGRESS', { progress: 40 });
      await h.report(b, id, 1, 2, 'SUCCEEDED');
      const stats = await h.backend.service.stats();
      assert.equal(stats.statusIgnored.DUPLICATE, 2, 'the resent reports are duplicates');
      assert.equal(stats.statusIgnored.NO_ACTIVE_CAMPAIGN ?? 0, 0);
      assert.ok(stats.activeTimers >= 3, 'step and re-notify timers are armed again');
      await h.tick(30_000);
      assert.equal((await h.backend.service.executionHistory(id, a)).executions[0]?.status, 'TIMED_OUT');
      for (const vin of [c, d]) await succeed(h, vin, id);
      const done = await h.backend.service.getCampaign(id);
      assert.equal(done.state, 'COMPLETED');
      assert.deepEqual([done.counts.SUCCEEDED, done.counts.TIMED_OUT], [3, 1]);
      const bTransitions = (await h.backend.service.executionHistory(id, b)).transitions;
      assert.equal(bTransitions.filter((t) => t.to === 'SUCCEEDED').length, 1, 'no doubled transition');
    } finally {
      await h.close();
    }
  });
});

describe('store failures', () => {
  test('a failed commit is retried with its writes and commands; the operator call that waited on it sees OTA_ERR_STORE', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    let failNext = 0;
    const failing: BackendStore = new Proxy(store, {
      get(target, name, receiver) {
        if (name === 'commit') {
          return (batch: StoreBatch) => {
            if (failNext > 0) {
              failNext--;
              return Promise.reject(new BackendError('OTA_ERR_STORE', 'disk full (test)'));
            }
            return target.commit(batch);
          };
        }
        const value = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const h = await harness({ store: failing });
    try {
      const { id, vins } = await h.campaign(2);
      const [a, b] = vins as [string, string];
      await h.backend.service.startCampaign(id);
      failNext = 1;
      h.backend.engine.ingestStatus(
        a,
        createMessage('job.status', { jobId: id, executionNumber: 1, seq: 1, status: 'SUCCEEDED' }, { ts: 1 }),
      );
      await assert.rejects(h.backend.engine.flushNow(), { code: 'OTA_ERR_STORE' });
      failNext = 1;
      await assert.rejects(h.backend.service.registerVehicle({ vin: 'SIM-X', model: 'ID.4', hardwareId: 'tcu-v2' }), {
        code: 'OTA_ERR_STORE',
      });
      // The retry (after about a second) lands everything queued, the failed batch included.
      for (let i = 0; i < 100 && (await store.executionsOf(id, a))[0]?.status !== 'SUCCEEDED'; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await store.executionsOf(id, a))[0]?.status, 'SUCCEEDED');
      assert.equal(await store.getVehicle('SIM-X'), undefined, 'the refused registration was not queued');
      await h.backend.service.registerVehicle({ vin: 'SIM-X', model: 'ID.4', hardwareId: 'tcu-v2' });
      assert.equal((await h.backend.service.stats()).statusApplied, 1);
      await h.report(b, id, 1, 1, 'SUCCEEDED');
      assert.equal((await h.backend.service.getCampaign(id)).state, 'COMPLETED');
    } finally {
      await h.close();
    }
  });
});
