// Durability: the journal is an append-only log with CRCs, compacted atomically, and an agent killed at any step (the object dropped without a
// clean shutdown, and once a real process killed with SIGKILL) resumes from the journal and finishes the update
// with seq still increasing.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import {
  type AgentState,
  COMPACT_BYTES,
  initialState,
  JOURNAL_FILE,
  Journal,
  LEGACY_JOURNAL_FILE,
  MAX_OPEN_JOURNALS,
  type Phase,
  RESTART_EXIT_CODE,
  runAgent,
} from '../src/index.js';
import type { ArtifactServer } from './support/artifact-server.js';
import { newKey, oldKey } from './support/fixtures.js';
import { type LiveRig, startLiveRig } from './support/live-rig.js';
import { TestBackend } from './support/test-backend.js';
import { jobFields, tempDir, vehicleOptions } from './support/vehicle.js';

describe('journal file', () => {
  const state = (boots: number): AgentState => ({ ...initialState('1.0.0'), boots });

  test('write then read gives the same state; a torn temporary file from a crash is ignored', async () => {
    const dir = await tempDir();
    try {
      const journal = new Journal(dir.path);
      assert.equal(await journal.read(), undefined);
      await journal.write(state(7));
      await writeFile(join(dir.path, `${JOURNAL_FILE}.tmp`), '{"format":1,"sl');
      assert.deepEqual(await new Journal(dir.path).read(), state(7));
      await journal.close();
    } finally {
      await dir.remove();
    }
  });

  test('concurrent writes land in order: the last one wins', async () => {
    const dir = await tempDir();
    try {
      const journal = new Journal(dir.path);
      await Promise.all(Array.from({ length: 20 }, (_, i) => journal.write(state(i))));
      await journal.close();
      assert.equal((await new Journal(dir.path).read())?.boots, 19);
    } finally {
      await dir.remove();
    }
  });

  test('steps are appended to one log, which is compacted to the current state once it passes COMPACT_BYTES', async () => {
    const dir = await tempDir();
    try {
      const journal = new Journal(dir.path);
      await journal.write(state(0));
      const first = await stat(join(dir.path, JOURNAL_FILE));
      await journal.write(state(1));
      const second = await stat(join(dir.path, JOURNAL_FILE));
      assert.equal(second.ino, first.ino, 'the second state is appended, not a replaced file');
      assert.ok(second.size > first.size);
      let boots = 1;
      let largest = second.size;
      for (;;) {
        await journal.write(state(++boots));
        const now = await stat(join(dir.path, JOURNAL_FILE));
        if (now.ino !== first.ino) {
          assert.ok(now.size <= second.size, `compacted to one state (${now.size} bytes)`);
          break;
        }
        largest = now.size;
        assert.ok(boots < 1000, 'compacted within 1000 states');
      }
      assert.ok(largest <= COMPACT_BYTES, `the log stayed within COMPACT_BYTES (${largest})`);
      await journal.close();
      assert.equal((await new Journal(dir.path).read())?.boots, boots);
    } finally {
      await dir.remove();
    }
  });

  test('a torn last line (a crash mid-append) is skipped, and the next lifetime does not append after it', async () => {
    const dir = await tempDir();
    try {
      const journal = new Journal(dir.path);
      await journal.write(state(1));
      await journal.write(state(2));
      await journal.close();
      const path = join(dir.path, JOURNAL_FILE);
      const intact = await readFile(path);
      // Cut inside the second line's JSON, and a whole line whose CRC does not match.
      const tornLength = intact.length - 30;
      for (const broken of [
        intact.subarray(0, tornLength),
        Buffer.concat([intact, Buffer.from('{"format":1,"boots":9}\t00000000\n')]),
      ]) {
        await writeFile(path, broken);
        const next = new Journal(dir.path);
        const expected = broken.length === tornLength ? 1 : 2;
        assert.equal((await next.read())?.boots, expected);
        await next.write(state(3));
        await next.close();
        assert.equal((await new Journal(dir.path).read())?.boots, 3, 'the new state is readable after the torn line');
      }
    } finally {
      await dir.remove();
    }
  });

  test('a process holds at most MAX_OPEN_JOURNALS logs open; the others reopen theirs to append', async () => {
    const dir = await tempDir();
    const openFiles = () => readdirSync('/proc/self/fd').length;
    try {
      const count = MAX_OPEN_JOURNALS + 16;
      const journals = Array.from({ length: count }, (_, i) => new Journal(join(dir.path, `v${i}`), { fsync: false }));
      const before = openFiles();
      for (const journal of journals) await journal.write(state(1));
      await Promise.all(journals.map((j) => j.write(state(2))));
      // The evicted journals close their files right after their writes (queued behind them): wait for that.
      const deadline = Date.now() + 5000;
      while (openFiles() - before > MAX_OPEN_JOURNALS + 2 && Date.now() < deadline) await delay(10);
      const held = openFiles() - before;
      assert.ok(held <= MAX_OPEN_JOURNALS + 2, `${held} files held open for ${count} journals`);
      for (const journal of journals) await journal.close();
      for (let i = 0; i < count; i += 97) {
        const text = await readFile(join(dir.path, `v${i}`, JOURNAL_FILE), 'utf8');
        assert.equal(text.split('\n').length, 3, 'both states appended to one log');
        assert.equal((await new Journal(join(dir.path, `v${i}`)).read())?.boots, 2);
      }
    } finally {
      await dir.remove();
    }
  });

  test("an earlier agent's journal.json is read, and replaced by the log at the first write", async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, LEGACY_JOURNAL_FILE), JSON.stringify(state(4)));
      const journal = new Journal(dir.path);
      assert.equal((await journal.read())?.boots, 4);
      await journal.write(state(5));
      await journal.close();
      await assert.rejects(stat(join(dir.path, LEGACY_JOURNAL_FILE)), { code: 'ENOENT' });
      assert.equal((await new Journal(dir.path).read())?.boots, 5);
    } finally {
      await dir.remove();
    }
  });

  test('an unreadable journal is refused with AGENT_ERR_JOURNAL, not guessed at', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, JOURNAL_FILE), 'not a record\n');
      await assert.rejects(new Journal(dir.path).read(), { code: 'AGENT_ERR_JOURNAL' });
      await rm(join(dir.path, JOURNAL_FILE));
      const unknownFormat = Buffer.from('{"format":99}');
      const line = `${unknownFormat}\t${crc32(unknownFormat).toString(16).padStart(8, '0')}\n`;
      await writeFile(join(dir.path, JOURNAL_FILE), line);
      await assert.rejects(new Journal(dir.path).read(), { code: 'AGENT_ERR_JOURNAL' });
      await rm(join(dir.path, JOURNAL_FILE));
      await writeFile(join(dir.path, LEGACY_JOURNAL_FILE), 'not json');
      await assert.rejects(new Journal(dir.path).read(), { code: 'AGENT_ERR_JOURNAL' });
    } finally {
      await dir.remove();
    }
  });
});

const BIG = randomBytes(640 * 1024);
let rig: LiveRig;
let url: string;
let artifacts: ArtifactServer;

before(async () => {
  rig = await startLiveRig({ '/big.bin': BIG });
  ({ url, artifacts } = rig);
});
after(() => rig.close());

const bigManifest = () => rig.liveManifest('/big.bin');

/** Seq never goes backwards across the crash, and the backend ignored nothing but redeliveries. */
function assertCleanHistory(backend: TestBackend, vin: string): void {
  const seqs = (backend.statuses.get(vin) ?? []).map((s) => s.seq);
  for (let i = 1; i < seqs.length; i++) {
    assert.ok((seqs[i] as number) >= (seqs[i - 1] as number), `seq went back: ${seqs.join(',')}`);
  }
  assert.deepEqual(
    backend.ignored.filter((i) => i.startsWith(vin) && !i.endsWith('DUPLICATE')),
    [],
  );
}

/** Fails instead of hanging when the awaited moment never comes. */
async function guard(promise: Promise<void>, what: string, ms = 20_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`never reached ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('killed at each step, resumed from the journal', () => {
  // VERIFIED is only a resting phase while the vehicle waits: here, for the separateInstall go-ahead.
  const phases: Phase[] = ['DOWNLOADING', 'VERIFYING', 'VERIFIED', 'INSTALLING', 'ACTIVATING'];
  for (const phase of phases) {
    test(`killed as the journal reaches ${phase}`, async () => {
      const separateInstall = phase === 'VERIFIED';
      const vin = `SIM-KILL-${phase}`;
      const dir = await tempDir();
      const backend = await TestBackend.start(url);
      let crashed = false;
      let crash: (() => void) | undefined;
      const runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca), {
        state: (state) => {
          if (!crashed && state.current?.phase === phase) {
            crashed = true;
            crash?.();
          }
        },
      });
      const crashedAndBack = new Promise<void>((resolve) => {
        crash = () => {
          // Out of the agent's own call stack, like a kill arriving from outside.
          setImmediate(() => void runner.crashAndRestart().then(() => resolve()));
        };
      });
      try {
        await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
        await backend.notify(vin, jobFields(bigManifest(), { separateInstall }));
        await guard(crashedAndBack, `a crash at ${phase}`);
        if (separateInstall) {
          await backend.waitFor(() => backend.execution(vin, 'job-1')?.waiting === true, 10_000, 'waiting');
          await backend.resume(vin, 'job-1');
        }
        // It timed out once under heavy load and never again in 150 reruns: the message says where things stood.
        await backend.waitFor(
          () => backend.execution(vin, 'job-1')?.status === 'SUCCEEDED',
          30_000,
          () =>
            `success: execution ${JSON.stringify(backend.execution(vin, 'job-1'))}, agent ${JSON.stringify(
              runner.agent.state.current,
            )}, lifetimes ${runner.lifetimes}`,
        );
        assertCleanHistory(backend, vin);
        assert.ok(runner.lifetimes >= 2);
        assert.equal(runner.agent.state.slots.active, 'B');
      } finally {
        await runner.kill();
        await backend.close();
        await dir.remove();
      }
    });
  }

  test('a killed lifetime changes no slot file once kill() has returned (its next lifetime is alone on the disk)', async () => {
    const vin = 'SIM-KILL-QUIET';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    let killed: Promise<void> | undefined;
    let runner: Awaited<ReturnType<typeof runAgent>> | undefined;
    runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca), {
      state: (state) => {
        // Killed as the install starts, from outside the agent's call stack, as in the cases above.
        if (killed === undefined && state.current?.phase === 'INSTALLING') {
          killed = new Promise((resolve) => setImmediate(() => void runner?.agent.kill().then(resolve)));
        }
      },
    });
    const slotB = join(dir.path, 'slots', 'B');
    const snapshot = async () => {
      const names = await readdir(slotB).catch(() => [] as string[]);
      const meta = await readFile(join(slotB, 'meta.json'), 'utf8').catch(() => '');
      return JSON.stringify({ names: names.sort(), meta });
    };
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await backend.notify(vin, jobFields(bigManifest()));
      await guard(
        (async () => {
          while (killed === undefined) await delay(5);
          await killed;
        })(),
        'the kill at INSTALLING',
      );
      const atKill = await snapshot();
      await delay(300);
      assert.equal(await snapshot(), atKill, 'slot B changed after kill() returned');
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });

  test('killed during the health check of the new version: the trial boot counts as failed, ROLLED_BACK', async () => {
    const vin = 'SIM-KILL-HEALTH';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    let checks = 0;
    let release: (() => void) | undefined;
    const inCheck = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = await runAgent(
      vehicleOptions(vin, dir.path, url, artifacts.ca, {
        hooks: {
          healthCheck: async () => {
            checks += 1;
            release?.();
            await new Promise(() => undefined); // hangs: the kill comes first
            return { ok: true };
          },
        },
      }),
    );
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await backend.notify(vin, jobFields(bigManifest()));
      await guard(inCheck, 'the health check');
      await runner.crashAndRestart();
      await backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'ROLLED_BACK', 30_000, 'rollback');
      assert.equal(backend.execution(vin, 'job-1')?.reason?.code, 'AGENT_ERR_TRIAL_BOOT_FAILED');
      assert.equal(checks, 1);
      assert.equal(runner.agent.state.slots.active, 'A');
      assertCleanHistory(backend, vin);
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });

  test('killed mid-download: the next lifetime resumes with a Range request', async () => {
    const vin = 'SIM-KILL-MID';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    artifacts.slow(15);
    artifacts.requests.length = 0;
    let crash: (() => void) | undefined;
    const crashedAndBack = new Promise<void>((resolve) => {
      crash = () => setImmediate(() => void runner.crashAndRestart().then(() => resolve()));
    });
    let crashed = false;
    const runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca), {
      state: (state) => {
        if (!crashed && (state.current?.download.bytesDone ?? 0) > BIG.length / 3) {
          crashed = true;
          crash?.();
        }
      },
    });
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await backend.notify(vin, jobFields(bigManifest()));
      await guard(crashedAndBack, 'a crash mid-download');
      artifacts.slow(0);
      await backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'SUCCEEDED', 30_000, 'success');
      const ranged = artifacts.requests.filter((r) => r.range !== undefined);
      assert.ok(ranged.length >= 1, 'resumed with Range');
      assert.equal(ranged[0]?.status, 206);
      assert.ok(ranged[0]?.ifRange !== undefined, 'with If-Range from the journal');
      assertCleanHistory(backend, vin);
    } finally {
      artifacts.slow(0);
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });
});

describe('a real process killed with SIGKILL', () => {
  test('SIGKILL mid-download, a new process resumes; the activation restart is a process exit', async () => {
    const vin = 'SIM-SIGKILL';
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    artifacts.slow(40);
    artifacts.requests.length = 0;
    const script = new URL('./support/agent-process.ts', import.meta.url).pathname;
    const config = JSON.stringify({
      vin,
      stateDir: dir.path,
      url,
      ca: artifacts.ca,
      keys: [
        { keyId: 'oem-2025', publicKeyHex: Buffer.from(oldKey.publicKey).toString('hex') },
        { keyId: 'oem-2026', publicKeyHex: Buffer.from(newKey.publicKey).toString('hex') },
      ],
    });
    const children: ChildProcess[] = [];
    const startChild = () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, config], { stdio: 'ignore' });
      children.push(child);
      return child;
    };
    try {
      const first = startChild();
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 20_000, 'sync');
      await backend.notify(vin, jobFields(bigManifest()));
      const servedBefore = artifacts.bytesServed;
      for (let i = 0; i < 400 && artifacts.bytesServed - servedBefore < BIG.length / 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(artifacts.bytesServed - servedBefore >= BIG.length / 4, 'the download got going');
      assert.ok(artifacts.bytesServed - servedBefore < BIG.length, 'and is not finished');
      const killed = once(first, 'exit');
      first.kill('SIGKILL');
      const [, signal] = await killed;
      assert.equal(signal, 'SIGKILL');
      artifacts.slow(0);
      // The supervisor's part: start again; exit 75 means "restart me" (the activation).
      let exitCode: number | null = RESTART_EXIT_CODE;
      let starts = 1;
      while (exitCode === RESTART_EXIT_CODE && starts < 4) {
        const child = startChild();
        starts += 1;
        const exited = once(child, 'exit');
        const done = backend.waitFor(() => backend.execution(vin, 'job-1')?.status === 'SUCCEEDED', 30_000, 'success');
        const winner = await Promise.race([exited.then(() => 'exit' as const), done.then(() => 'done' as const)]);
        if (winner === 'done') {
          child.kill('SIGTERM');
          await exited;
          break;
        }
        exitCode = child.exitCode;
      }
      assert.equal(backend.execution(vin, 'job-1')?.status, 'SUCCEEDED');
      assert.ok(starts >= 3, 'killed, resumed, restarted for the activation');
      assert.ok(
        artifacts.requests.some((r) => r.range !== undefined && r.status === 206),
        'resumed with Range',
      );
      assert.equal((await new Journal(dir.path).read())?.slots.active, 'B');
      assertCleanHistory(backend, vin);
    } finally {
      artifacts.slow(0);
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await backend.close();
      await dir.remove();
    }
  });
});
