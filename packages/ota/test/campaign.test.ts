import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyCampaignEvent,
  type Campaign,
  type CampaignEvent,
  type CampaignPlan,
  createCampaign,
  isDueToStart,
  planNextBatch,
  planProblem,
  type RolloutCounts,
  waveSize,
} from '../src/campaign.js';
import { CAMPAIGN_STATES, type CampaignStateName } from '../src/messages.js';

const T0 = 1_780_000_000_000;
const MINUTE = 60_000;
const vins = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `V${String(from + i).padStart(4, '0')}`);

function running(plan: CampaignPlan, startedAt = T0): Campaign {
  const c = createCampaign('c-1', plan);
  const update = applyCampaignEvent(c, { type: 'start' }, startedAt);
  assert.ok(update.applied);
  return update.campaign;
}

function counts(partial: Partial<RolloutCounts> & { targets: number }): RolloutCounts {
  return { succeeded: 0, failed: 0, active: 0, pendingVins: [], retryCandidates: [], ...partial };
}

describe('campaign state machine: every (state, event) pair', () => {
  const events: CampaignEvent[] = [
    { type: 'schedule', at: T0 + MINUTE },
    { type: 'start' },
    { type: 'pause' },
    { type: 'resume' },
    { type: 'cancel' },
    { type: 'abort', reason: 'too many failures' },
    { type: 'complete' },
  ];
  const allowed: Record<string, Partial<Record<CampaignStateName, CampaignStateName>>> = {
    schedule: { DRAFT: 'SCHEDULED' },
    start: { DRAFT: 'RUNNING', SCHEDULED: 'RUNNING' },
    pause: { RUNNING: 'PAUSED' },
    resume: { PAUSED: 'RUNNING' },
    cancel: { DRAFT: 'CANCELED', SCHEDULED: 'CANCELED', RUNNING: 'CANCELED', PAUSED: 'CANCELED' },
    abort: { RUNNING: 'ABORTED', PAUSED: 'ABORTED' },
    complete: { RUNNING: 'COMPLETED' },
  };
  const plan: CampaignPlan = {
    rollout: { kind: 'waves', waves: [{ percent: 100, successThreshold: 0 }] },
    maxRetries: 0,
  };
  for (const state of CAMPAIGN_STATES) {
    for (const event of events) {
      const to = allowed[event.type]?.[state];
      const terminal = ['COMPLETED', 'CANCELED', 'ABORTED'].includes(state);
      test(`${state} + ${event.type}: ${to ?? (terminal ? 'refused TERMINAL' : 'refused NOT_ALLOWED')}`, () => {
        const campaign: Campaign = { ...createCampaign('c-1', plan), state };
        const update = applyCampaignEvent(campaign, event, T0 + 5);
        if (to === undefined) {
          assert.ok(!update.applied);
          assert.equal(update.refused, terminal ? 'TERMINAL' : 'NOT_ALLOWED');
          assert.equal(update.campaign, campaign);
          return;
        }
        assert.ok(update.applied);
        assert.equal(update.campaign.state, to);
        assert.deepEqual(
          {
            from: update.transition.from,
            to: update.transition.to,
            at: update.transition.at,
            cause: update.transition.cause,
          },
          { from: state, to, at: T0 + 5, cause: event.type },
        );
        if (event.type === 'start') assert.equal(update.campaign.startedAt, T0 + 5);
        if (event.type === 'schedule') assert.equal(update.campaign.scheduledAt, T0 + MINUTE);
        if (['CANCELED', 'ABORTED', 'COMPLETED'].includes(to)) assert.equal(update.campaign.finishedAt, T0 + 5);
        if (event.type === 'abort') assert.equal(update.transition.reason, 'too many failures');
      });
    }
  }

  test('a scheduled campaign is due at its time', () => {
    const draft = createCampaign('c', plan);
    const update = applyCampaignEvent(draft, { type: 'schedule', at: T0 + MINUTE }, T0);
    assert.ok(update.applied);
    assert.equal(isDueToStart(update.campaign, T0 + MINUTE - 1), false);
    assert.equal(isDueToStart(update.campaign, T0 + MINUTE), true);
    assert.equal(isDueToStart(draft, T0 + MINUTE), false);
  });
});

describe('plan validation', () => {
  const w = (percent: number, successThreshold = 90) => ({ percent, successThreshold });
  const bad: Array<[string, CampaignPlan]> = [
    ['no waves', { rollout: { kind: 'waves', waves: [] }, maxRetries: 0 }],
    ['not reaching 100', { rollout: { kind: 'waves', waves: [w(10), w(50)] }, maxRetries: 0 }],
    ['not increasing', { rollout: { kind: 'waves', waves: [w(50), w(50), w(100)] }, maxRetries: 0 }],
    ['above 100', { rollout: { kind: 'waves', waves: [w(10), w(120)] }, maxRetries: 0 }],
    ['threshold above 100', { rollout: { kind: 'waves', waves: [w(100, 101)] }, maxRetries: 0 }],
    ['negative retries', { rollout: { kind: 'waves', waves: [w(100)] }, maxRetries: -1 }],
    ['fractional retries', { rollout: { kind: 'waves', waves: [w(100)] }, maxRetries: 1.5 }],
    [
      'abort percent',
      { rollout: { kind: 'waves', waves: [w(100)] }, maxRetries: 0, abort: { failurePercent: 150, minFinished: 10 } },
    ],
    [
      'abort minimum 0',
      { rollout: { kind: 'waves', waves: [w(100)] }, maxRetries: 0, abort: { failurePercent: 10, minFinished: 0 } },
    ],
    [
      'base rate 0',
      { rollout: { kind: 'exponential', basePerMinute: 0, growthFactor: 2, growAfterSuccesses: 5 }, maxRetries: 0 },
    ],
    [
      'shrinking',
      { rollout: { kind: 'exponential', basePerMinute: 5, growthFactor: 0.5, growAfterSuccesses: 5 }, maxRetries: 0 },
    ],
    [
      'grow after 0',
      { rollout: { kind: 'exponential', basePerMinute: 5, growthFactor: 2, growAfterSuccesses: 0 }, maxRetries: 0 },
    ],
    [
      'max below base',
      {
        rollout: { kind: 'exponential', basePerMinute: 5, growthFactor: 2, growAfterSuccesses: 5, maxPerMinute: 4 },
        maxRetries: 0,
      },
    ],
  ];
  for (const [name, plan] of bad) {
    test(`refuses: ${name}`, () => {
      assert.ok(planProblem(plan));
      assert.throws(() => createCampaign('c', plan), { code: 'OTA_ERR_INVALID_POLICY' });
    });
  }
  test('accepts sensible plans', () => {
    assert.equal(planProblem({ rollout: { kind: 'waves', waves: [w(1), w(10), w(100)] }, maxRetries: 2 }), undefined);
    assert.equal(
      planProblem({
        rollout: {
          kind: 'exponential',
          basePerMinute: 10,
          growthFactor: 2,
          growAfterSuccesses: 10,
          maxPerMinute: 1000,
        },
        maxRetries: 0,
        abort: { failurePercent: 10, minFinished: 20 },
      }),
      undefined,
    );
  });
});

describe('waves', () => {
  const plan: CampaignPlan = {
    rollout: {
      kind: 'waves',
      waves: [
        { percent: 1, successThreshold: 100 },
        { percent: 10, successThreshold: 90 },
        { percent: 100, successThreshold: 0 },
      ],
    },
    maxRetries: 0,
  };
  const all = vins(200);

  test('wave sizes round up and are at least one vehicle', () => {
    assert.deepEqual([waveSize(200, 1), waveSize(200, 10), waveSize(200, 100)], [2, 20, 200]);
    assert.deepEqual([waveSize(7, 1), waveSize(7, 50), waveSize(3, 33.4), waveSize(0, 50)], [1, 4, 2, 0]);
  });

  test('a wave starts only when the previous reached its success threshold', () => {
    const c = running(plan);
    // Start: the first wave (1 % of 200 = 2 vehicles).
    let batch = planNextBatch(c, counts({ targets: 200, pendingVins: all }), T0);
    assert.equal(batch.decision, 'continue');
    assert.deepEqual(batch.start, ['V0000', 'V0001']);
    // Asking again while they run starts nothing more.
    batch = planNextBatch(batch.campaign, counts({ targets: 200, active: 2, pendingVins: all.slice(2) }), T0 + 1);
    assert.deepEqual(batch.start, []);
    // One succeeded, one in flight: 50 % < 100 %.
    batch = planNextBatch(
      batch.campaign,
      counts({ targets: 200, active: 1, succeeded: 1, pendingVins: all.slice(2) }),
      T0 + 2,
    );
    assert.deepEqual(batch.start, []);
    assert.equal(batch.campaign.wave, 0);
    // Both succeeded: the second wave releases up to 10 % = 20 vehicles in total.
    batch = planNextBatch(batch.campaign, counts({ targets: 200, succeeded: 2, pendingVins: all.slice(2) }), T0 + 3);
    assert.deepEqual(batch.start, all.slice(2, 20));
    assert.equal(batch.campaign.wave, 1);
    // 17 of 20 succeeded (85 % < 90 %), 1 still running: wait.
    batch = planNextBatch(
      batch.campaign,
      counts({ targets: 200, succeeded: 17, failed: 2, active: 1, pendingVins: all.slice(20) }),
      T0 + 4,
    );
    assert.equal(batch.decision, 'continue');
    assert.deepEqual(batch.start, []);
    // 18 of 20 (90 %): the last wave releases everyone else.
    batch = planNextBatch(
      batch.campaign,
      counts({ targets: 200, succeeded: 18, failed: 2, pendingVins: all.slice(20) }),
      T0 + 5,
    );
    assert.deepEqual(batch.start, all.slice(20));
    assert.equal(batch.campaign.wave, 2);
    // Done when nothing is pending or in flight.
    batch = planNextBatch(batch.campaign, counts({ targets: 200, succeeded: 190, failed: 10 }), T0 + 6);
    assert.equal(batch.decision, 'complete');
  });

  test('several thresholds met at once advance several waves', () => {
    const c = { ...running(plan), wave: 0 };
    const batch = planNextBatch(c, counts({ targets: 200, succeeded: 20, pendingVins: all.slice(20) }), T0);
    assert.equal(batch.campaign.wave, 2);
    assert.equal(batch.start.length, 180);
  });

  test('threshold unmet with nothing in flight: blocked, not complete', () => {
    const c = { ...running(plan), wave: 1 };
    const batch = planNextBatch(c, counts({ targets: 200, succeeded: 15, failed: 5, pendingVins: all.slice(20) }), T0);
    assert.equal(batch.decision, 'blocked');
    assert.deepEqual(batch.start, []);
    assert.match(batch.text, /needs 90 %/);
  });

  test('a paused or finished campaign starts nothing', () => {
    for (const state of ['PAUSED', 'DRAFT', 'SCHEDULED', 'COMPLETED', 'CANCELED', 'ABORTED'] as const) {
      const batch = planNextBatch({ ...running(plan), state }, counts({ targets: 200, pendingVins: all }), T0);
      assert.equal(batch.decision, 'idle', state);
      assert.deepEqual(batch.start, []);
    }
  });
});

describe('exponential rate', () => {
  const plan: CampaignPlan = {
    rollout: { kind: 'exponential', basePerMinute: 5, growthFactor: 2, growAfterSuccesses: 10, maxPerMinute: 30 },
    maxRetries: 0,
  };
  const all = vins(1000);

  test('base rate per minute; the rest waits for the next minute', () => {
    let c = running(plan);
    let batch = planNextBatch(c, counts({ targets: 1000, pendingVins: all }), T0);
    assert.deepEqual(batch.start, all.slice(0, 5));
    assert.equal(batch.wakeAt, T0 + MINUTE);
    c = batch.campaign;
    batch = planNextBatch(c, counts({ targets: 1000, active: 5, pendingVins: all.slice(5) }), T0 + 30_000);
    assert.deepEqual(batch.start, [], 'the minute is used up');
    assert.equal(batch.wakeAt, T0 + MINUTE);
    batch = planNextBatch(batch.campaign, counts({ targets: 1000, active: 5, pendingVins: all.slice(5) }), T0 + MINUTE);
    assert.deepEqual(batch.start, all.slice(5, 10));
  });

  test('the rate grows by the factor per N successes, up to the cap', () => {
    const cases: Array<[number, number]> = [
      [0, 5],
      [9, 5],
      [10, 10],
      [19, 10],
      [20, 20],
      [30, 30], // 40 capped at 30
      [500, 30],
    ];
    for (const [succeeded, rate] of cases) {
      const batch = planNextBatch(
        running(plan),
        counts({ targets: 1000, succeeded, pendingVins: all.slice(succeeded) }),
        T0,
      );
      assert.equal(batch.start.length, rate, `${succeeded} succeeded`);
    }
  });

  test('starts counted within the minute across several calls', () => {
    let c = running(plan);
    let batch = planNextBatch(c, counts({ targets: 1000, pendingVins: all.slice(0, 3) }), T0);
    assert.equal(batch.start.length, 3);
    c = batch.campaign;
    batch = planNextBatch(c, counts({ targets: 1000, active: 3, pendingVins: all.slice(3) }), T0 + 1000);
    assert.equal(batch.start.length, 2);
  });
});

describe('abort rule', () => {
  const plan: CampaignPlan = {
    rollout: { kind: 'waves', waves: [{ percent: 100, successThreshold: 0 }] },
    maxRetries: 1,
    abort: { failurePercent: 20, minFinished: 10 },
  };
  const table: Array<[string, Partial<RolloutCounts>, string]> = [
    ['below the minimum finished', { succeeded: 4, failed: 5 }, 'continue'],
    ['exactly at the percentage', { succeeded: 8, failed: 2 }, 'continue'],
    ['above the percentage', { succeeded: 7, failed: 3 }, 'abort'],
    [
      'exhausted retries count as failures',
      { succeeded: 8, failed: 2, retryCandidates: [{ vin: 'x', executionNumber: 2, finishedAt: T0 }] },
      'abort',
    ],
    [
      'retriable failures do not count yet',
      { succeeded: 8, failed: 2, retryCandidates: [{ vin: 'x', executionNumber: 1, finishedAt: T0 }] },
      'continue',
    ],
  ];
  for (const [name, partial, decision] of table) {
    test(`${name}: ${decision}`, () => {
      const batch = planNextBatch(
        running(plan),
        counts({ targets: 100, active: 5, pendingVins: vins(10, 90), ...partial }),
        T0,
      );
      assert.equal(batch.decision, decision);
      if (decision === 'abort') {
        assert.deepEqual(batch.start, []);
        assert.deepEqual(batch.retry, []);
      }
    });
  }
});

describe('retries', () => {
  const plan: CampaignPlan = {
    rollout: { kind: 'waves', waves: [{ percent: 100, successThreshold: 0 }] },
    maxRetries: 2,
    retryDelayMs: 30_000,
  };

  test('FAILED/TIMED_OUT vehicles get the next execution number after the delay, up to the limit', () => {
    const retryCandidates = [
      { vin: 'A', executionNumber: 1, finishedAt: T0 },
      { vin: 'B', executionNumber: 2, finishedAt: T0 },
      { vin: 'C', executionNumber: 3, finishedAt: T0 }, // 1 + maxRetries attempts used
      { vin: 'D', executionNumber: 1, finishedAt: T0 + 20_000 },
    ];
    let batch = planNextBatch(running(plan), counts({ targets: 4, retryCandidates }), T0 + 10_000);
    assert.deepEqual(batch.retry, []);
    assert.equal(batch.wakeAt, T0 + 30_000);
    batch = planNextBatch(running(plan), counts({ targets: 4, retryCandidates }), T0 + 30_000);
    assert.deepEqual(batch.retry, [
      { vin: 'A', executionNumber: 2 },
      { vin: 'B', executionNumber: 3 },
    ]);
    assert.equal(batch.wakeAt, T0 + 50_000);
    batch = planNextBatch(running(plan), counts({ targets: 4, retryCandidates }), T0 + 50_000);
    assert.deepEqual(
      batch.retry.map((r) => r.vin),
      ['A', 'B', 'D'],
    );
  });

  test('a campaign whose only leftovers are exhausted retries is complete', () => {
    const batch = planNextBatch(
      running(plan),
      counts({ targets: 2, succeeded: 1, retryCandidates: [{ vin: 'C', executionNumber: 3, finishedAt: T0 }] }),
      T0,
    );
    assert.equal(batch.decision, 'complete');
  });

  test('retries share the exponential rate with new vehicles, retries first', () => {
    const c = running({
      rollout: { kind: 'exponential', basePerMinute: 3, growthFactor: 2, growAfterSuccesses: 100 },
      maxRetries: 1,
    });
    const batch = planNextBatch(
      c,
      counts({
        targets: 10,
        pendingVins: vins(8),
        retryCandidates: [
          { vin: 'R1', executionNumber: 1, finishedAt: T0 },
          { vin: 'R2', executionNumber: 1, finishedAt: T0 },
        ],
      }),
      T0,
    );
    assert.deepEqual(
      batch.retry.map((r) => r.vin),
      ['R1', 'R2'],
    );
    assert.deepEqual(batch.start, ['V0000']);
  });
});
