// Verification that cannot run (the downloaded file vanished, or reading it fails) is not a verdict on the
// artifact: the execution ends FAILED with AGENT_ERR_VERIFY_FAILED, the download is cleaned up and the vehicle is
// free for the next job, instead of staying in VERIFYING forever.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runAgent } from '../src/index.js';
import type { ArtifactServer } from './support/artifact-server.js';
import { ARTIFACT } from './support/fixtures.js';
import { type LiveRig, startLiveRig } from './support/live-rig.js';
import { TestBackend } from './support/test-backend.js';
import { jobFields, tempDir, vehicleOptions } from './support/vehicle.js';

let rig: LiveRig;
let url: string;
let artifacts: ArtifactServer;

before(async () => {
  rig = await startLiveRig({ '/fw.bin': ARTIFACT });
  ({ url, artifacts } = rig);
});
after(() => rig.close());

const liveManifest = () => rig.liveManifest('/fw.bin');

const sabotages: Array<[string, (path: string) => void]> = [
  ['the downloaded file vanished', (path) => rmSync(path, { force: true })],
  [
    'reading the downloaded file fails (EISDIR)',
    (path) => {
      rmSync(path, { force: true });
      mkdirSync(path);
      writeFileSync(join(path, 'x'), 'not the artifact');
    },
  ],
];

for (const [name, sabotage] of sabotages) {
  test(`${name}: FAILED AGENT_ERR_VERIFY_FAILED, download cleaned up, not stuck in VERIFYING`, async () => {
    const vin = `SIM-VERIFY-${sabotages.findIndex(([n]) => n === name)}`;
    const dir = await tempDir();
    const backend = await TestBackend.start(url);
    const downloadPath = join(dir.path, 'download.part');
    let sabotaged = false;
    const runner = await runAgent(vehicleOptions(vin, dir.path, url, artifacts.ca), {
      // The journal holds VERIFYING and the verify action has not run yet.
      state: (state) => {
        if (!sabotaged && state.current?.phase === 'VERIFYING') {
          sabotaged = true;
          sabotage(downloadPath);
        }
      },
    });
    try {
      await backend.waitFor(() => (backend.syncs.get(vin) ?? 0) >= 1, 10_000, 'sync');
      await backend.notify(vin, jobFields(liveManifest()));
      await backend.waitFor(
        () => backend.statuses.get(vin)?.some((s) => s.status !== 'IN_PROGRESS') === true,
        10_000,
        'an outcome after VERIFYING',
      );
      assert.ok(sabotaged);
      const outcome = backend.statuses.get(vin)?.at(-1);
      assert.equal(outcome?.status, 'FAILED');
      assert.equal(outcome?.reason?.code, 'AGENT_ERR_VERIFY_FAILED');
      assert.equal(runner.agent.state.current, undefined);
      assert.equal(runner.agent.state.slots.active, 'A');
      // The discard runs after the report: give it a moment (bounded generously: file I/O on a loaded machine).
      const deadline = Date.now() + 10_000;
      while (existsSync(downloadPath) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(existsSync(downloadPath), false, 'the download is cleaned up');
    } finally {
      await runner.kill();
      await backend.close();
      await dir.remove();
    }
  });
}
