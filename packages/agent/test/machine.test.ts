// The pure update machine, driven with a fake clock: every path, every refusal, pause/resume/cancel, rollback and
// duplicates. Each test follows the reports and actions a real agent would publish and run.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMessage, type PendingExecutionEntry, type SyncResult } from '@otalink/ota';
import {
  type Action,
  type AgentState,
  initialState,
  type MachineConfig,
  type MachineEvent,
  type Report,
  step,
  type VehicleConditions,
} from '../src/index.js';
import {
  cancel,
  HOUR,
  manifest,
  newKey,
  notify,
  oldKey,
  pause,
  resume,
  signed,
  T0,
  trustedKeys,
  untrustedKey,
} from './support/fixtures.js';

const REF = { jobId: 'job-1', executionNumber: 1 };

class Driver {
  state: AgentState;
  now = T0;
  vehicle: VehicleConditions = { parked: true, batteryPercent: 80, ownerConsent: true };
  readonly reports: Report[] = [];
  readonly actions: Action[] = [];
  persisted = 0;
  private ids = 0;

  constructor(
    readonly config: Partial<MachineConfig> = {},
    installed: string | undefined = '2.0.3',
  ) {
    this.state = initialState(installed);
  }

  send(event: MachineEvent): Action[] {
    // Frozen: a step that changed its input in place (state shared with the previous one) throws here.
    const result = step(deepFreeze(this.state), event, {
      now: this.now,
      config: {
        hardwareId: 'tcu-v2',
        trustedKeys: trustedKeys(),
        verifySignature: (m, s, k) => verify(m, s, k),
        ...this.config,
      },
      vehicle: this.vehicle,
      newMsgId: () => `00000000-0000-4000-8000-${String(++this.ids).padStart(12, '0')}`,
    });
    this.state = result.state;
    if (result.persist) this.persisted += 1;
    this.actions.push(...result.actions);
    for (const a of result.actions) if (a.type === 'report') this.reports.push(a.report);
    return result.actions;
  }

  get last(): Report {
    const r = this.reports.at(-1);
    assert.ok(r, 'a report was sent');
    return r;
  }

  /** Runs the happy path up to the given point. */
  toVerified(fields: Parameters<typeof notify>[0] = {}): void {
    this.send({ type: 'command', message: notify(fields) });
    this.send({ type: 'downloadDone', bytesDone: manifest().size, ...REF });
    this.send({ type: 'verifyResult', ok: true, ...REF });
  }

  toActivating(fields: Parameters<typeof notify>[0] = {}): void {
    this.toVerified(fields);
    this.send({ type: 'installResult', ok: true, ...REF });
  }
}

// Real Ed25519 verification, so a wrong key or a changed field really fails.
import { verifyEd25519 as verify } from '@otalink/ota/node';

function types(actions: Action[]): string[] {
  return actions.map((a) => a.type);
}

function statusLine(r: Report): string {
  return [r.status, r.step, r.paused ? 'paused' : '', r.reason?.code ?? ''].filter(Boolean).join(' ');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

describe('happy path', () => {
  test('notify → download → verify → install into B → restart → health → SUCCEEDED', () => {
    const d = new Driver();
    let actions = d.send({ type: 'command', message: notify() });
    assert.deepEqual(types(actions), ['report', 'download']);
    assert.equal(d.last.status, 'IN_PROGRESS');
    assert.equal(d.last.step, 'DOWNLOADING');
    assert.equal(d.last.seq, 1);
    assert.equal(d.last.bytesTotal, manifest().size);

    actions = d.send({ type: 'downloadDone', bytesDone: manifest().size, ...REF });
    assert.deepEqual(types(actions), ['report', 'verify']);
    actions = d.send({ type: 'verifyResult', ok: true, ...REF });
    assert.deepEqual(types(actions), ['report', 'install']);
    assert.deepEqual(actions[1], { type: 'install', ...REF, slot: 'B', manifest: manifest() });
    actions = d.send({ type: 'installResult', ok: true, ...REF });
    assert.deepEqual(types(actions), ['report', 'restart']);
    assert.equal(d.state.slots.trial?.slot, 'B');
    assert.equal(d.state.slots.active, 'A', 'nothing committed before the health check');

    // The restart: a new agent reads the journal and boots.
    actions = d.send({ type: 'booted' });
    assert.deepEqual(types(actions), ['healthCheck']);
    actions = d.send({ type: 'healthResult', ok: true, ...REF });
    assert.deepEqual(types(actions), ['discard', 'presence', 'report']);
    assert.equal(d.last.status, 'SUCCEEDED');
    assert.equal(d.last.installedVersion, '2.1.0');
    assert.equal(d.state.slots.active, 'B');
    assert.deepEqual(d.state.slots.B, { version: '2.1.0' });
    assert.equal(d.state.current, undefined);

    assert.deepEqual(d.reports.map(statusLine), [
      'IN_PROGRESS DOWNLOADING',
      'IN_PROGRESS VERIFYING',
      'IN_PROGRESS INSTALLING',
      'IN_PROGRESS ACTIVATING',
      'SUCCEEDED',
    ]);
    assert.deepEqual(
      d.reports.map((r) => r.seq),
      [1, 2, 3, 4, 5],
    );
    assert.equal(new Set(d.reports.map((r) => r.msgId)).size, 5);
  });

  test('the next update goes into the other slot (A), and a manifest signed by the old key is still trusted', () => {
    const d = new Driver();
    d.toActivating();
    d.send({ type: 'booted' });
    d.send({ type: 'healthResult', ok: true, ...REF });
    const next = manifest({ version: '2.2.0', keyId: 'oem-2025' });
    const actions = d.send({
      type: 'command',
      message: notify({ jobId: 'job-2' }, signed(next, oldKey.privateKey)),
    });
    assert.deepEqual(types(actions), ['report', 'download']);
    d.send({ type: 'downloadDone', bytesDone: next.size, jobId: 'job-2', executionNumber: 1 });
    const install = d.send({ type: 'verifyResult', ok: true, jobId: 'job-2', executionNumber: 1 });
    assert.equal(install.find((a) => a.type === 'install')?.type === 'install' && install[1]?.type, 'install');
    assert.deepEqual(
      install.filter((a) => a.type === 'install').map((a) => (a.type === 'install' ? a.slot : '')),
      ['A'],
    );
  });

  test('download progress is reported every 10% and at most every 5 s, not per chunk', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const size = manifest().size;
    for (let i = 1; i <= 100; i++) {
      d.now += 200; // 20 s for the whole download
      d.send({ type: 'downloadProgress', bytesDone: Math.floor((size * i) / 100), ...REF });
    }
    const progress = d.reports.filter((r) => r.step === 'DOWNLOADING');
    // 1 at the start, then every 25 events (5 s) at most: 4 more.
    assert.ok(progress.length >= 4 && progress.length <= 6, `got ${progress.length} progress reports`);
    for (let i = 1; i < progress.length; i++) {
      const a = progress[i - 1] as Report;
      const b = progress[i] as Report;
      assert.ok((b.progress ?? 0) - (a.progress ?? 0) >= 10);
      assert.ok(b.ts - a.ts >= 5000);
      assert.ok((b.bytesDone ?? 0) <= (b.bytesTotal ?? 0));
    }
  });

  test('the ETag is persisted as soon as it is seen, a progress event without a report is not', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const before = d.persisted;
    d.send({ type: 'downloadProgress', bytesDone: 10, etag: '"abc"', ...REF });
    assert.equal(d.persisted, before + 1);
    assert.equal(d.state.current?.download.etag, '"abc"');
    d.send({ type: 'downloadProgress', bytesDone: 20, etag: '"abc"', ...REF });
    assert.equal(d.persisted, before + 1);
  });
});

describe('refusals: REJECTED with the reason code and nothing downloaded or installed', () => {
  const cases: Array<{ name: string; code: string; message: () => ReturnType<typeof notify>; installed?: string }> = [
    {
      name: 'unknown key',
      code: 'OTA_ERR_UNKNOWN_KEY',
      message: () => notify({}, signed(manifest({ keyId: 'someone' }), untrustedKey.privateKey)),
    },
    {
      name: 'signed by an untrusted key under a trusted key id',
      code: 'OTA_ERR_BAD_SIGNATURE',
      message: () => notify({}, signed(manifest(), untrustedKey.privateKey)),
    },
    {
      name: 'a signed field changed',
      code: 'OTA_ERR_BAD_SIGNATURE',
      message: () => {
        const s = signed();
        return notify({}, { ...s, manifest: { ...s.manifest, url: 'https://evil.test/x.bin' } });
      },
    },
    {
      name: 'expired manifest',
      code: 'OTA_ERR_MANIFEST_EXPIRED',
      message: () => notify({}, signed(manifest({ issuedAt: T0 - 48 * HOUR, expiresAt: T0 - HOUR }))),
    },
    {
      name: 'manifest from the future',
      code: 'OTA_ERR_MANIFEST_NOT_YET_VALID',
      message: () => notify({}, signed(manifest({ issuedAt: T0 + HOUR, expiresAt: T0 + 48 * HOUR }))),
    },
    {
      name: 'other hardware',
      code: 'OTA_ERR_HARDWARE_MISMATCH',
      message: () => notify({}, signed(manifest({ hardwareIds: ['tcu-v3'] }))),
    },
    {
      name: 'same version (replay)',
      code: 'OTA_ERR_NOT_NEWER',
      message: () => notify({}, signed(manifest({ version: '2.0.3' }))),
    },
    {
      name: 'older version (rollback attack)',
      code: 'OTA_ERR_NOT_NEWER',
      message: () => notify({}, signed(manifest({ version: '1.9.9' }))),
    },
    {
      name: 'installed version not semver',
      code: 'OTA_ERR_INVALID_VERSION',
      message: () => notify(),
      installed: 'factory',
    },
    {
      name: 'malformed manifest',
      code: 'OTA_ERR_INVALID_MANIFEST',
      message: () => {
        const m = manifest({ issuedAt: T0, expiresAt: T0 - 1 });
        return notify({}, signed(m));
      },
    },
    {
      name: 'plain http artifact URL',
      code: 'AGENT_ERR_INSECURE_URL',
      message: () => notify({}, signed(manifest({ url: 'http://artifacts.test/a.bin' }))),
    },
    {
      name: 'startBy passed',
      code: 'OTA_ERR_DEADLINE',
      message: () => notify({ deadlines: { startBy: T0 - 1 } }),
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = new Driver({}, c.installed ?? '2.0.3');
      const actions = d.send({ type: 'command', message: c.message() });
      assert.deepEqual(types(actions), ['report']);
      assert.equal(d.last.status, 'REJECTED');
      assert.equal(d.last.reason?.code, c.code);
      assert.equal(d.last.seq, 1);
      assert.equal(d.state.current, undefined);
      assert.equal(d.state.slots.active, 'A');
    });
  }

  test('a downgrade signed with allowDowngrade is accepted', () => {
    const d = new Driver();
    const actions = d.send({
      type: 'command',
      message: notify({}, signed(manifest({ version: '1.9.9', allowDowngrade: true }))),
    });
    assert.deepEqual(types(actions), ['report', 'download']);
  });

  test('http is accepted when configured', () => {
    const d = new Driver({ allowHttp: true });
    const actions = d.send({
      type: 'command',
      message: notify({}, signed(manifest({ url: 'http://artifacts.test/a.bin' }))),
    });
    assert.deepEqual(types(actions), ['report', 'download']);
  });

  for (const code of ['OTA_ERR_SIZE_MISMATCH', 'OTA_ERR_HASH_MISMATCH']) {
    test(`verification ${code}`, () => {
      const d = new Driver();
      d.send({ type: 'command', message: notify() });
      d.send({ type: 'downloadDone', bytesDone: 5, ...REF });
      const actions = d.send({ type: 'verifyResult', ok: false, code, text: 'bad', ...REF });
      assert.deepEqual(types(actions), ['discard', 'report']);
      assert.equal(d.last.status, 'REJECTED');
      assert.equal(d.last.reason?.code, code);
      assert.ok(!d.actions.some((a) => a.type === 'install'));
    });
  }

  test('verification that cannot run (I/O error) is FAILED (retryable), not REJECTED, and discards', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadDone', bytesDone: manifest().size, ...REF });
    const actions = d.send({ type: 'verifyFailed', code: 'AGENT_ERR_VERIFY_FAILED', text: 'EIO', ...REF });
    assert.deepEqual(types(actions), ['discard', 'report']);
    assert.equal(statusLine(d.last), 'FAILED AGENT_ERR_VERIFY_FAILED');
    assert.equal(d.state.current, undefined);
  });

  test('a server sending more than declared: OTA_ERR_TOO_LARGE', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadFailed', code: 'OTA_ERR_TOO_LARGE', text: 'too much', ...REF });
    assert.equal(statusLine(d.last), 'REJECTED OTA_ERR_TOO_LARGE');
  });

  test('a download that keeps failing is FAILED (retryable), not REJECTED', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadFailed', code: 'AGENT_ERR_DOWNLOAD_FAILED', text: 'HTTP 503', ...REF });
    assert.equal(statusLine(d.last), 'FAILED AGENT_ERR_DOWNLOAD_FAILED');
  });

  test('an installation error is FAILED and the slot is discarded', () => {
    const d = new Driver();
    d.toVerified();
    const actions = d.send({ type: 'installResult', ok: false, text: 'disk full', ...REF });
    assert.deepEqual(actions[0], { type: 'discard', slot: 'B' });
    assert.equal(statusLine(d.last), 'FAILED AGENT_ERR_INSTALL_FAILED');
    assert.equal(d.state.slots.active, 'A');
  });

  test('an unreadable job.notify with a readable execution is REJECTED OTA_ERR_INVALID_MESSAGE', () => {
    const d = new Driver();
    d.send({ type: 'invalidNotify', ref: REF, code: 'OTA_ERR_INVALID_MESSAGE', text: '/manifest: bad' });
    assert.equal(statusLine(d.last), 'REJECTED OTA_ERR_INVALID_MESSAGE');
  });
});

describe('preconditions', () => {
  const cases: Array<[string, Partial<VehicleConditions>, Record<string, unknown>, string]> = [
    ['not parked', { parked: false }, { parked: true }, 'AGENT_ERR_NOT_PARKED'],
    ['battery low', { batteryPercent: 20 }, { minBatteryPercent: 30 }, 'AGENT_ERR_BATTERY_LOW'],
    ['no owner consent', { ownerConsent: false }, { ownerConsent: true }, 'AGENT_ERR_NO_OWNER_CONSENT'],
  ];
  for (const [name, vehicle, preconditions, code] of cases) {
    test(`${name}: REJECTED ${code} before installing`, () => {
      const d = new Driver();
      d.vehicle = { ...d.vehicle, ...vehicle };
      d.toVerified({ preconditions });
      assert.equal(statusLine(d.last), `REJECTED ${code}`);
      assert.ok(!d.actions.some((a) => a.type === 'install'));
    });
  }

  test('preconditions met: installs', () => {
    const d = new Driver();
    d.toVerified({ preconditions: { parked: true, minBatteryPercent: 30, ownerConsent: true } });
    assert.equal(statusLine(d.last), 'IN_PROGRESS INSTALLING');
  });

  test('with a wait configured: paused while unmet, installs once the vehicle parks', () => {
    const d = new Driver({ preconditionWaitMs: 60_000, preconditionRecheckMs: 10_000 });
    d.vehicle.parked = false;
    d.toVerified({ preconditions: { parked: true } });
    assert.equal(statusLine(d.last), 'IN_PROGRESS VERIFYING paused');
    assert.ok(d.actions.some((a) => a.type === 'wakeAt' && a.at === T0 + 10_000));
    const reports = d.reports.length;
    d.now += 10_000;
    d.send({ type: 'tick' });
    assert.equal(d.reports.length, reports, 'still waiting: no second paused report');
    d.vehicle.parked = true;
    d.now += 10_000;
    d.send({ type: 'tick' });
    assert.equal(statusLine(d.last), 'IN_PROGRESS INSTALLING');
  });

  test('with a wait configured: REJECTED when it runs out', () => {
    const d = new Driver({ preconditionWaitMs: 30_000, preconditionRecheckMs: 10_000 });
    d.vehicle.batteryPercent = 10;
    d.toVerified({ preconditions: { minBatteryPercent: 50 } });
    for (let i = 0; i < 3; i++) {
      d.now += 10_000;
      d.send({ type: 'tick' });
    }
    assert.equal(statusLine(d.last), 'REJECTED AGENT_ERR_BATTERY_LOW');
  });
});

describe('deadlines', () => {
  test('notBefore: waits for the maintenance window, then starts', () => {
    const d = new Driver();
    const actions = d.send({ type: 'command', message: notify({ deadlines: { notBefore: T0 + HOUR } }) });
    assert.deepEqual(actions, [{ type: 'wakeAt', at: T0 + HOUR }]);
    d.now += HOUR / 2;
    assert.deepEqual(types(d.send({ type: 'tick' })), ['wakeAt']);
    d.now += HOUR / 2;
    assert.deepEqual(types(d.send({ type: 'tick' })), ['report', 'download']);
  });

  test('notBefore after startBy passed: REJECTED OTA_ERR_DEADLINE when the window opens', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify({ deadlines: { notBefore: T0 + HOUR, startBy: T0 + HOUR / 2 } }) });
    d.now += HOUR;
    d.send({ type: 'tick' });
    assert.equal(statusLine(d.last), 'REJECTED OTA_ERR_DEADLINE');
  });
});

describe('separateInstall, pause, resume, cancel', () => {
  test('separateInstall waits after VERIFYING until job.resume', () => {
    const d = new Driver();
    d.toVerified({ separateInstall: true });
    assert.equal(statusLine(d.last), 'IN_PROGRESS VERIFYING paused');
    assert.ok(!d.actions.some((a) => a.type === 'install'));
    d.send({ type: 'command', message: resume() });
    assert.equal(statusLine(d.last), 'IN_PROGRESS INSTALLING');
  });

  test('pause during the download stops it between requests; resume continues with the ETag', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadProgress', bytesDone: 100, etag: '"e1"', ...REF });
    let actions = d.send({ type: 'command', message: pause() });
    assert.deepEqual(types(actions), ['stopDownload', 'report']);
    assert.equal(statusLine(d.last), 'IN_PROGRESS DOWNLOADING paused');
    assert.equal(d.last.bytesDone, 100);
    actions = d.send({ type: 'command', message: resume() });
    assert.deepEqual(types(actions), ['report', 'download']);
    assert.equal(statusLine(d.last), 'IN_PROGRESS DOWNLOADING');
    assert.equal(actions[1]?.type === 'download' ? actions[1].etag : undefined, '"e1"');
  });

  test('pause during the installation: it completes into the slot, then waits before ACTIVATING', () => {
    const d = new Driver();
    d.toVerified();
    d.send({ type: 'command', message: pause() });
    const actions = d.send({ type: 'installResult', ok: true, ...REF });
    assert.deepEqual(types(actions), ['report']);
    assert.equal(statusLine(d.last), 'IN_PROGRESS INSTALLING paused');
    assert.equal(d.state.current?.phase, 'INSTALLED');
    d.send({ type: 'command', message: resume() });
    assert.equal(statusLine(d.last), 'IN_PROGRESS ACTIVATING');
  });

  test('pause during verification takes effect before installing', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadDone', bytesDone: 1, ...REF });
    d.send({ type: 'command', message: pause() });
    d.send({ type: 'verifyResult', ok: true, ...REF });
    assert.equal(statusLine(d.last), 'IN_PROGRESS VERIFYING paused');
    d.send({ type: 'command', message: resume() });
    assert.equal(statusLine(d.last), 'IN_PROGRESS INSTALLING');
  });

  test('cancel without force stops a job that has not started, and only that', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify({ deadlines: { notBefore: T0 + HOUR } }) });
    d.send({ type: 'command', message: cancel(false) });
    assert.equal(d.state.current, undefined);
    assert.equal(d.reports.length, 0, 'a canceled execution is not reported');

    const e = new Driver();
    e.send({ type: 'command', message: notify() });
    assert.deepEqual(e.send({ type: 'command', message: cancel(false) }), []);
    assert.equal(e.state.current?.phase, 'DOWNLOADING');
  });

  test('forced cancel during the download: stopped and discarded, no report', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const actions = d.send({ type: 'command', message: cancel(true) });
    assert.deepEqual(types(actions), ['stopDownload', 'discard']);
    assert.equal(d.state.current, undefined);
    assert.equal(d.reports.length, 1);
    // A late download result for it changes nothing.
    assert.deepEqual(d.send({ type: 'downloadDone', bytesDone: 1, ...REF }), []);
  });

  test('forced cancel during the installation discards the slot when the installation ends', () => {
    const d = new Driver();
    d.toVerified();
    d.send({ type: 'command', message: cancel(true) });
    assert.equal(d.state.current?.cancelRequested, true);
    const actions = d.send({ type: 'installResult', ok: true, ...REF });
    assert.deepEqual(actions, [{ type: 'discard', slot: 'B' }]);
    assert.equal(d.state.current, undefined);
    assert.equal(d.state.slots.active, 'A');
    assert.equal(d.last.step, 'INSTALLING');
  });

  test('forced cancel during ACTIVATING: the activation completes and reports its outcome', () => {
    const d = new Driver();
    d.toActivating();
    assert.deepEqual(d.send({ type: 'command', message: cancel(true) }), []);
    d.send({ type: 'booted' });
    d.send({ type: 'healthResult', ok: true, ...REF });
    assert.equal(d.last.status, 'SUCCEEDED');
  });

  test('a queued job is canceled without ever starting', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'command', message: notify({ jobId: 'job-2' }) });
    assert.equal(d.state.queue.length, 1);
    d.send({ type: 'command', message: cancel(false, { jobId: 'job-2', executionNumber: 1 }) });
    assert.equal(d.state.queue.length, 0);
  });
});

describe('rollback', () => {
  test('a failed health check: ROLLED_BACK with the reason, the old version stays active', () => {
    const d = new Driver();
    d.toActivating();
    d.send({ type: 'booted' });
    const actions = d.send({ type: 'healthResult', ok: false, text: 'service tcu-core did not start', ...REF });
    assert.deepEqual(types(actions), ['discard', 'presence', 'report']);
    assert.equal(statusLine(d.last), 'ROLLED_BACK AGENT_ERR_HEALTH_CHECK');
    assert.equal(d.last.reason?.text, 'service tcu-core did not start');
    assert.equal(d.last.installedVersion, '2.0.3');
    assert.equal(d.state.slots.active, 'A');
    assert.equal(d.state.slots.trial, undefined);
    assert.deepEqual(d.state.slots.B, {});
  });

  test('a crash during the trial boot (booted twice) rolls back', () => {
    const d = new Driver();
    d.toActivating();
    d.send({ type: 'booted' });
    d.send({ type: 'booted' });
    assert.equal(statusLine(d.last), 'ROLLED_BACK AGENT_ERR_TRIAL_BOOT_FAILED');
    assert.equal(d.state.slots.active, 'A');
  });
});

describe('duplicates and re-sends', () => {
  test('the same msgId twice is acted on once', () => {
    const d = new Driver();
    const message = notify();
    d.send({ type: 'command', message });
    const again = step(
      d.state,
      { type: 'command', message },
      {
        now: d.now,
        config: { hardwareId: 'tcu-v2', trustedKeys: trustedKeys(), verifySignature: verify },
        vehicle: d.vehicle,
        newMsgId: () => 'x',
      },
    );
    assert.deepEqual(again.actions, []);
    assert.equal(again.persist, false);
    const p = pause();
    d.send({ type: 'command', message: p });
    d.send({ type: 'command', message: resume() });
    assert.deepEqual(d.send({ type: 'command', message: p }), [], 'a duplicated pause does not pause again');
  });

  test('a re-notify (new msgId, same execution) resends the latest status, same msgId and seq', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadDone', bytesDone: 1, ...REF });
    const latest = d.last;
    const actions = d.send({ type: 'command', message: notify() });
    assert.deepEqual(actions, [{ type: 'report', report: latest }]);
  });

  test('a re-notify after the outcome resends the outcome', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify({}, signed(manifest({ hardwareIds: ['x'] }))) });
    const outcome = d.last;
    assert.deepEqual(d.send({ type: 'command', message: notify() }), [{ type: 'report', report: outcome }]);
  });

  test('the seen set survives in the state (the journal) and is bounded', () => {
    const d = new Driver();
    for (let i = 0; i < 1100; i++) d.send({ type: 'command', message: pause() });
    assert.equal(d.state.seen.entries.length, 1000);
  });

  test('a newer execution of the job in hand replaces it; an older one is ignored', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify({ executionNumber: 2 }) });
    assert.deepEqual(d.send({ type: 'command', message: notify({ executionNumber: 1 }) }), []);
    const actions = d.send({ type: 'command', message: notify({ executionNumber: 3 }) });
    assert.deepEqual(types(actions), ['stopDownload', 'discard', 'report', 'download']);
    assert.equal(d.state.current?.spec.executionNumber, 3);
    assert.equal(d.last.seq, 1);
  });

  test('a second job waits for the first, then runs', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'command', message: notify({ jobId: 'job-2' }, signed(manifest({ version: '2.0.9' }))) });
    d.send({ type: 'downloadFailed', code: 'AGENT_ERR_DOWNLOAD_FAILED', text: 'x', ...REF });
    assert.equal(d.state.current?.spec.jobId, 'job-2');
    assert.equal(statusLine(d.last), 'IN_PROGRESS DOWNLOADING');
    assert.equal(d.last.jobId, 'job-2');
  });

  test('more jobs than the queue holds: REJECTED AGENT_ERR_BUSY', () => {
    const d = new Driver({ maxQueuedJobs: 1 });
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'command', message: notify({ jobId: 'job-2' }) });
    d.send({ type: 'command', message: notify({ jobId: 'job-3' }) });
    assert.equal(statusLine(d.last), 'REJECTED AGENT_ERR_BUSY');
    assert.equal(d.last.jobId, 'job-3');
  });
});

describe('sync', () => {
  function entry(fields: Partial<PendingExecutionEntry> = {}): PendingExecutionEntry {
    const n = notify();
    return {
      jobId: n.jobId,
      executionNumber: n.executionNumber,
      campaignId: n.campaignId,
      manifest: n.manifest,
      deadlines: {},
      separateInstall: false,
      preconditions: {},
      status: 'NOTIFIED',
      lastSeq: 0,
      paused: false,
      ...fields,
    };
  }
  function result(clientToken: string, executions: PendingExecutionEntry[]): SyncResult {
    return createMessage('sync.result', { clientToken, executions }, { ts: T0 });
  }

  test('connected asks for a sync; only the answer to the latest request is acted on', () => {
    const d = new Driver();
    const [first] = d.send({ type: 'connected' });
    d.now += 1;
    const [second] = d.send({ type: 'connected' });
    assert.ok(first?.type === 'sync' && second?.type === 'sync');
    assert.notEqual(first.clientToken, second.clientToken);
    assert.deepEqual(d.send({ type: 'command', message: result(first.clientToken, [entry()]) }), []);
    const actions = d.send({ type: 'command', message: result(second.clientToken, [entry()]) });
    assert.deepEqual(types(actions), ['report', 'download']);
  });

  test('a listed execution the vehicle does not hold starts above lastSeq, paused when listed paused', () => {
    const d = new Driver();
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    const actions = d.send({
      type: 'command',
      message: result(s.clientToken, [entry({ status: 'IN_PROGRESS', lastSeq: 4, paused: true })]),
    });
    assert.deepEqual(types(actions), ['report']);
    assert.equal(d.last.seq, 5);
    assert.equal(statusLine(d.last), 'IN_PROGRESS DOWNLOADING paused');
  });

  test('the execution in hand continues above lastSeq and resends what the backend missed', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadDone', bytesDone: 1, ...REF });
    const missed = d.last;
    d.now += 1;
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    const actions = d.send({
      type: 'command',
      message: result(s.clientToken, [entry({ status: 'IN_PROGRESS', lastSeq: 1 })]),
    });
    assert.deepEqual(actions, [{ type: 'report', report: missed }]);
  });

  test('a report made after the sync request is in flight behind it, not resent', () => {
    const d = new Driver();
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    d.send({ type: 'command', message: notify() });
    const actions = d.send({ type: 'command', message: result(s.clientToken, [entry({ lastSeq: 0 })]) });
    assert.deepEqual(actions, []);
  });

  test('a higher lastSeq than the journal knows (journal restored from an old backup) lifts seq', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    d.send({ type: 'command', message: result(s.clientToken, [entry({ status: 'IN_PROGRESS', lastSeq: 9 })]) });
    d.send({ type: 'downloadDone', bytesDone: 1, ...REF });
    assert.equal(d.last.seq, 10);
  });

  test('the execution in hand that is not listed is stopped without a report', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    const actions = d.send({ type: 'command', message: result(s.clientToken, []) });
    assert.deepEqual(types(actions), ['stopDownload', 'discard']);
    assert.equal(d.state.current, undefined);
  });

  test('a finished execution still listed gets its outcome again', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify({}, signed(manifest({ hardwareIds: ['x'] }))) });
    const outcome = d.last;
    d.now += 1;
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    assert.deepEqual(d.send({ type: 'command', message: result(s.clientToken, [entry({ lastSeq: 0 })]) }), [
      { type: 'report', report: outcome },
    ]);
  });

  test('the backend paused it while the vehicle was away: the download stops', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    const [s] = d.send({ type: 'connected' });
    assert.ok(s?.type === 'sync');
    const actions = d.send({ type: 'command', message: result(s.clientToken, [entry({ lastSeq: 1, paused: true })]) });
    assert.deepEqual(types(actions), ['stopDownload', 'report']);
  });
});

describe('restart from the journal at every phase', () => {
  test('booted in DOWNLOADING resumes the download with the ETag; VERIFYING verifies again; INSTALLING installs again', () => {
    const d = new Driver();
    d.send({ type: 'command', message: notify() });
    d.send({ type: 'downloadProgress', bytesDone: 10, etag: '"e"', ...REF });
    let actions = d.send({ type: 'booted' });
    assert.deepEqual(actions, [{ type: 'download', ...REF, url: manifest().url, size: manifest().size, etag: '"e"' }]);
    d.send({ type: 'downloadDone', bytesDone: 1, ...REF });
    actions = d.send({ type: 'booted' });
    assert.deepEqual(types(actions), ['verify']);
    d.send({ type: 'verifyResult', ok: true, ...REF });
    actions = d.send({ type: 'booted' });
    assert.deepEqual(actions, [{ type: 'install', ...REF, slot: 'B', manifest: manifest() }]);
    assert.equal(d.state.boots, 3);
  });

  test('booted with queued jobs and nothing current starts the next', () => {
    const d = new Driver();
    d.state = { ...d.state, queue: [{ ...notify(), jobId: 'job-q' }] };
    const actions = d.send({ type: 'booted' });
    assert.deepEqual(types(actions), ['report', 'download']);
  });
});

// Keeps the imports honest (newKey is the signer of the default manifest).
void newKey;
