import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyStatus,
  cancel,
  createExecution,
  type Execution,
  type ExecutionUpdate,
  fireDeadline,
  nextDeadline,
  notify,
  pause,
  resume,
  retryExecution,
  type StatusReport,
  type TimerPolicy,
  timeout,
} from '../src/execution.js';
import { EXECUTION_STATUSES, type ExecutionStatus } from '../src/messages.js';

const T0 = 1_780_000_000_000;
const base = { jobId: 'job-1', executionNumber: 1, vin: 'WVWZZZ1JZXW000001', campaignId: 'c-1' };

function inState(status: ExecutionStatus): Execution {
  const e = createExecution(base, T0);
  if (status === 'QUEUED') return e;
  const notified = applied(notify(e, T0 + 1));
  if (status === 'NOTIFIED') return notified;
  if (status === 'IN_PROGRESS') return applied(applyStatus(notified, report(1, 'IN_PROGRESS', 'DOWNLOADING'), T0 + 2));
  // Terminal states reached the way they are in production, so lastSeq and finishedAt are realistic.
  if (status === 'TIMED_OUT') return applied(timeout(notified, 'start-timeout', T0 + 2));
  if (status === 'CANCELED') return applied(cancel(notified, { force: false }, T0 + 2));
  return applied(applyStatus(notified, report(1, status), T0 + 2));
}

function report(
  seq: number,
  status: ExecutionStatus,
  step?: StatusReport['step'],
  extra: Partial<StatusReport> = {},
): StatusReport {
  return { jobId: base.jobId, executionNumber: 1, seq, status, ...(step ? { step } : {}), ...extra };
}

function applied(update: ExecutionUpdate): Execution {
  assert.ok(update.applied, update.applied ? '' : `${update.ignored}: ${update.text}`);
  return update.execution;
}

function outcome(update: ExecutionUpdate): string {
  return update.applied ? `→ ${update.execution.status}` : `ignored ${update.ignored}`;
}

const TERMINAL: ExecutionStatus[] = ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED', 'ROLLED_BACK'];

describe('applyStatus: every (state, reported status) pair', () => {
  const expected = (from: ExecutionStatus, reported: ExecutionStatus): string => {
    if (TERMINAL.includes(from)) return 'ignored TERMINAL';
    if (!['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED', 'ROLLED_BACK'].includes(reported))
      return 'ignored NOT_REPORTABLE';
    if (from === 'QUEUED') return 'ignored NOT_NOTIFIED';
    return `→ ${reported}`;
  };
  for (const from of EXECUTION_STATUSES) {
    for (const reported of EXECUTION_STATUSES) {
      const want = expected(from, reported);
      test(`${from} + vehicle reports ${reported}: ${want}`, () => {
        const e = inState(from);
        const update = applyStatus(
          e,
          report(e.lastSeq + 1, reported, reported === 'IN_PROGRESS' ? 'VERIFYING' : undefined),
          T0 + 10,
        );
        assert.equal(outcome(update), want);
        if (!update.applied) assert.equal(update.execution, e, 'an ignored status changes nothing');
      });
    }
  }
});

describe('applyStatus details', () => {
  test('a full successful run records each step as a transition with the seq that caused it', () => {
    let e = inState('NOTIFIED');
    const transitions = [];
    const script: Array<[StatusReport, boolean]> = [
      [report(1, 'IN_PROGRESS', 'DOWNLOADING', { progress: 0, bytesDone: 0, bytesTotal: 1000 }), true],
      [report(2, 'IN_PROGRESS', 'DOWNLOADING', { progress: 50, bytesDone: 500, bytesTotal: 1000 }), false],
      [report(3, 'IN_PROGRESS', 'VERIFYING', { progress: 100 }), true],
      [report(4, 'IN_PROGRESS', 'INSTALLING', { progress: 10 }), true],
      [report(5, 'IN_PROGRESS', 'ACTIVATING'), true],
      [report(6, 'SUCCEEDED', undefined, { installedVersion: '2.1.0' }), true],
    ];
    for (const [i, [r, transitionExpected]] of script.entries()) {
      const update = applyStatus(e, r, T0 + 100 + i);
      e = applied(update);
      assert.equal(update.applied && update.transition !== undefined, transitionExpected, `report ${r.seq}`);
      if (update.applied && update.transition) transitions.push(update.transition);
    }
    assert.deepEqual(
      transitions.map((t) => [t.from, t.fromStep, t.to, t.toStep, t.seq, t.cause]),
      [
        ['NOTIFIED', undefined, 'IN_PROGRESS', 'DOWNLOADING', 1, 'vehicle-status'],
        ['IN_PROGRESS', 'DOWNLOADING', 'IN_PROGRESS', 'VERIFYING', 3, 'vehicle-status'],
        ['IN_PROGRESS', 'VERIFYING', 'IN_PROGRESS', 'INSTALLING', 4, 'vehicle-status'],
        ['IN_PROGRESS', 'INSTALLING', 'IN_PROGRESS', 'ACTIVATING', 5, 'vehicle-status'],
        ['IN_PROGRESS', 'ACTIVATING', 'SUCCEEDED', undefined, 6, 'vehicle-status'],
      ],
    );
    assert.equal(e.status, 'SUCCEEDED');
    assert.equal(e.installedVersion, '2.1.0');
    assert.equal(e.startedAt, T0 + 100);
    assert.equal(e.finishedAt, T0 + 105);
    assert.equal(e.lastSeq, 6);
    assert.equal(e.bytesDone, 500);
  });

  test('duplicate seq and out-of-order seq are ignored', () => {
    let e = inState('NOTIFIED');
    e = applied(applyStatus(e, report(1, 'IN_PROGRESS', 'DOWNLOADING'), T0 + 10));
    e = applied(applyStatus(e, report(3, 'IN_PROGRESS', 'INSTALLING'), T0 + 11));
    assert.equal(outcome(applyStatus(e, report(3, 'IN_PROGRESS', 'INSTALLING'), T0 + 12)), 'ignored DUPLICATE');
    const late = applyStatus(e, report(2, 'IN_PROGRESS', 'VERIFYING'), T0 + 12);
    assert.equal(outcome(late), 'ignored OUT_OF_ORDER');
    assert.equal(late.execution.step, 'INSTALLING');
  });

  test('an outcome overtaking its progress reports: applied, later lower seqs ignored', () => {
    let e = inState('NOTIFIED');
    e = applied(applyStatus(e, report(5, 'SUCCEEDED'), T0 + 10));
    assert.equal(outcome(applyStatus(e, report(2, 'IN_PROGRESS', 'DOWNLOADING'), T0 + 11)), 'ignored OUT_OF_ORDER');
    assert.equal(outcome(applyStatus(e, report(6, 'FAILED'), T0 + 11)), 'ignored TERMINAL');
  });

  test('the duplicate of the final report is a DUPLICATE, not a new outcome', () => {
    const e = inState('FAILED');
    assert.equal(outcome(applyStatus(e, report(e.lastSeq, 'FAILED'), T0 + 20)), 'ignored DUPLICATE');
  });

  test('status for another execution number or job is ignored', () => {
    const e = inState('IN_PROGRESS');
    assert.equal(
      outcome(applyStatus(e, { ...report(9, 'FAILED'), executionNumber: 2 }, T0)),
      'ignored WRONG_EXECUTION',
    );
    assert.equal(outcome(applyStatus(e, { ...report(9, 'FAILED'), jobId: 'job-2' }, T0)), 'ignored WRONG_EXECUTION');
  });

  test('IN_PROGRESS without a step is ignored', () => {
    assert.equal(outcome(applyStatus(inState('NOTIFIED'), report(1, 'IN_PROGRESS'), T0)), 'ignored MISSING_STEP');
  });

  test('failure reason is kept on the execution and in the transition', () => {
    const reason = { code: 'OTA_ERR_HASH_MISMATCH', text: 'sha256 differs' };
    const update = applyStatus(inState('IN_PROGRESS'), report(2, 'REJECTED', undefined, { reason }), T0 + 5);
    assert.ok(update.applied);
    assert.deepEqual(update.execution.reason, reason);
    assert.deepEqual(update.transition?.reason, reason);
    assert.equal(update.transition?.fromStep, 'DOWNLOADING');
  });
});

describe('backend events', () => {
  const table: Array<[string, (e: Execution) => ExecutionUpdate, Partial<Record<ExecutionStatus, string>>]> = [
    ['notify', (e) => notify(e, T0 + 50), { QUEUED: '→ NOTIFIED', NOTIFIED: '→ NOTIFIED' }],
    [
      'cancel',
      (e) => cancel(e, { force: false }, T0 + 50),
      { QUEUED: '→ CANCELED', NOTIFIED: '→ CANCELED', IN_PROGRESS: 'ignored NEEDS_FORCE' },
    ],
    [
      'cancel with force',
      (e) => cancel(e, { force: true }, T0 + 50),
      { QUEUED: '→ CANCELED', NOTIFIED: '→ CANCELED', IN_PROGRESS: '→ CANCELED' },
    ],
    ['pause', (e) => pause(e, T0 + 50), { NOTIFIED: '→ NOTIFIED', IN_PROGRESS: '→ IN_PROGRESS' }],
    ['timeout', (e) => timeout(e, 'step-timeout', T0 + 50), { NOTIFIED: '→ TIMED_OUT', IN_PROGRESS: '→ TIMED_OUT' }],
  ];
  for (const [name, event, allowed] of table) {
    for (const from of EXECUTION_STATUSES) {
      const want = allowed[from] ?? (TERMINAL.includes(from) ? 'ignored TERMINAL' : 'ignored NOT_ALLOWED');
      test(`${name} in ${from}: ${want}`, () => {
        const update = event(inState(from));
        assert.equal(outcome(update), want);
        if (update.applied) {
          assert.ok(update.transition, 'every applied backend event is recorded');
          assert.equal(update.transition.from, from);
          assert.equal(update.transition.at, T0 + 50);
        }
      });
    }
  }

  test('notify counts re-notifications and records the cause', () => {
    const first = notify(createExecution(base, T0), T0 + 1);
    assert.ok(first.applied);
    assert.equal(first.transition?.cause, 'notify');
    const again = notify(first.execution, T0 + 2);
    assert.ok(again.applied);
    assert.equal(again.transition?.cause, 'renotify');
    assert.equal(again.execution.notifyCount, 2);
    assert.equal(again.execution.notifiedAt, T0 + 1);
  });

  test('pause twice and resume when not paused are refused; resume clears the pause', () => {
    const paused = applied(pause(inState('IN_PROGRESS'), T0 + 10));
    assert.equal(outcome(pause(paused, T0 + 11)), 'ignored NOT_ALLOWED');
    assert.equal(outcome(resume(inState('IN_PROGRESS'), T0 + 11)), 'ignored NOT_ALLOWED');
    const resumed = applied(resume(paused, T0 + 40));
    assert.equal(resumed.paused, false);
    assert.equal(resumed.pausedTotalMs, 30);
  });

  test('retry: FAILED and TIMED_OUT give the next execution number, nothing else does', () => {
    for (const status of EXECUTION_STATUSES) {
      const next = retryExecution(inState(status), T0 + 99);
      if (status === 'FAILED' || status === 'TIMED_OUT') {
        assert.ok(next, status);
        assert.equal(next.executionNumber, 2);
        assert.equal(next.status, 'QUEUED');
        assert.equal(next.lastSeq, 0);
      } else {
        assert.equal(next, undefined, status);
      }
    }
  });
});

describe('timers with a fake clock', () => {
  const policy: TimerPolicy = {
    renotifyAfterMs: 1000,
    renotifyBackoff: 2,
    maxRenotifyIntervalMs: 5000,
    stepTimeoutMs: 10_000,
    inProgressTimeoutMs: 60_000,
  };

  test('no timer while QUEUED, paused or terminal', () => {
    assert.equal(nextDeadline(inState('QUEUED'), policy), undefined);
    assert.equal(nextDeadline(applied(pause(inState('IN_PROGRESS'), T0 + 5)), policy), undefined);
    for (const status of TERMINAL) assert.equal(nextDeadline(inState(status), policy), undefined, status);
  });

  test('re-notify with backoff up to the cap, never a timeout without startTimeoutMs', () => {
    let e = applied(notify(createExecution(base, T0), T0));
    const times: number[] = [];
    let now = T0;
    for (let i = 0; i < 6; i++) {
      const d = nextDeadline(e, policy);
      assert.ok(d);
      assert.equal(d.action, 'renotify');
      assert.equal(outcome(fireDeadline(e, policy, d.at - 1)), 'ignored NOT_DUE');
      now = d.at;
      times.push(now - T0);
      e = applied(fireDeadline(e, policy, now));
    }
    assert.deepEqual(times, [1000, 3000, 7000, 12000, 17000, 22000]);
    assert.equal(e.notifyCount, 7);
  });

  test('startTimeoutMs: NOTIFIED too long → TIMED_OUT (timeout wins a tie with a re-notify)', () => {
    const p = { ...policy, startTimeoutMs: 3000 };
    let e = applied(notify(createExecution(base, T0), T0));
    e = applied(fireDeadline(e, p, T0 + 1000)); // re-notify; next re-notify at T0 + 3000
    const d = nextDeadline(e, p);
    assert.deepEqual(d, { at: T0 + 3000, action: 'timeout', cause: 'start-timeout' });
    const update = fireDeadline(e, p, T0 + 3000);
    assert.equal(outcome(update), '→ TIMED_OUT');
    assert.ok(update.applied);
    assert.equal(update.transition?.cause, 'start-timeout');
    assert.equal(update.execution.reason?.code, 'OTA_ERR_TIMED_OUT');
  });

  test('each progress report re-arms the step timer; silence → step-timeout', () => {
    let e = applied(applyStatus(inState('NOTIFIED'), report(1, 'IN_PROGRESS', 'DOWNLOADING'), T0));
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 10_000, action: 'timeout', cause: 'step-timeout' });
    e = applied(applyStatus(e, report(2, 'IN_PROGRESS', 'DOWNLOADING', { progress: 40 }), T0 + 9_000));
    assert.equal(outcome(fireDeadline(e, policy, T0 + 10_000)), 'ignored NOT_DUE');
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 19_000, action: 'timeout', cause: 'step-timeout' });
    const update = fireDeadline(e, policy, T0 + 19_000);
    assert.ok(update.applied);
    assert.equal(update.execution.status, 'TIMED_OUT');
    assert.equal(update.transition?.cause, 'step-timeout');
  });

  test('steady progress still ends at the in-progress timeout', () => {
    let e = applied(applyStatus(inState('NOTIFIED'), report(1, 'IN_PROGRESS', 'DOWNLOADING'), T0));
    let seq = 1;
    for (let t = T0 + 5000; t < T0 + 60_000; t += 5000) {
      e = applied(applyStatus(e, report(++seq, 'IN_PROGRESS', 'DOWNLOADING'), t));
      assert.equal(outcome(fireDeadline(e, policy, t)), 'ignored NOT_DUE');
    }
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 60_000, action: 'timeout', cause: 'in-progress-timeout' });
    const update = fireDeadline(e, policy, T0 + 60_000);
    assert.ok(update.applied);
    assert.equal(update.transition?.cause, 'in-progress-timeout');
  });

  test('a vehicle that reports it is waiting has no step timer, only the in-progress one', () => {
    const e = applied(applyStatus(inState('NOTIFIED'), report(1, 'IN_PROGRESS', 'VERIFYING', { paused: true }), T0));
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 60_000, action: 'timeout', cause: 'in-progress-timeout' });
  });

  test('backend pause stops the timers; resume re-arms the step timer and extends the in-progress one', () => {
    let e = applied(applyStatus(inState('NOTIFIED'), report(1, 'IN_PROGRESS', 'DOWNLOADING'), T0));
    e = applied(pause(e, T0 + 1000));
    assert.equal(outcome(fireDeadline(e, policy, T0 + 1_000_000)), 'ignored NOT_DUE');
    e = applied(resume(e, T0 + 51_000)); // paused 50 s
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 61_000, action: 'timeout', cause: 'step-timeout' });
    e = applied(applyStatus(e, report(2, 'IN_PROGRESS', 'DOWNLOADING'), T0 + 60_000));
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 70_000, action: 'timeout', cause: 'step-timeout' });
    let seq = 2;
    for (let t = T0 + 69_000; t <= T0 + 105_000; t += 9_000) {
      e = applied(applyStatus(e, report(++seq, 'IN_PROGRESS', 'DOWNLOADING'), t));
      assert.equal(outcome(fireDeadline(e, policy, t)), 'ignored NOT_DUE', 'not at 60 s: the pause does not count');
    }
    assert.deepEqual(nextDeadline(e, policy), { at: T0 + 110_000, action: 'timeout', cause: 'in-progress-timeout' });
  });
});
