// Issue 6: a download cut three times resumes with Range and still verifies. A TLS proxy in front of the backend's
// artifact server cuts the first three artifact responses after 40 KiB each; the vehicle must continue from the
// bytes it has (the proxy sees `Range: bytes=N-` with growing N), end SUCCEEDED and run the new version.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installedVersionOf } from '@otalink/agent';
import { startOurBroker } from './support/brokers.js';
import { startHarness, UPDATE_VERSION } from './support/harness.js';

const ARTIFACT_BYTES = 256 * 1024;
const CUT_AFTER = 40 * 1024;

test('a download cut three times resumes with Range requests and verifies', { timeout: 60_000 }, async () => {
  const broker = await startOurBroker();
  const h = await startHarness({
    brokerUrl: broker.url,
    artifactBytes: ARTIFACT_BYTES,
    cut: { cuts: 3, cutAfterBytes: CUT_AFTER },
  });
  try {
    const vin = 'E2E-RESUME-1';
    const runner = await h.startVehicle(vin);
    await h.waitForOnline([vin], 20_000);
    const started = await h.campaign([vin]);
    const done = await h.waitForCampaignEnd(started.id, 45_000);
    assert.equal(done.counts.SUCCEEDED, 1, JSON.stringify(done.counts));
    assert.equal(installedVersionOf(runner.agent.state.slots), UPDATE_VERSION);

    const downloads = (h.proxy?.requests ?? []).filter((r) => r.method === 'GET' && r.path.includes('/artifacts/'));
    assert.equal(downloads.filter((r) => r.cut).length, 3, JSON.stringify(downloads));
    assert.ok(downloads.length >= 4, JSON.stringify(downloads));
    const first = downloads[0];
    assert.ok(first !== undefined && (first.range === undefined || first.range === 'bytes=0-'), JSON.stringify(first));
    // Every attempt after a cut asks for the rest, from further on each time.
    const offsets = downloads.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1] ?? Number.NaN));
    assert.ok(
      offsets.every((o) => Number.isInteger(o) && o > 0 && o < ARTIFACT_BYTES),
      JSON.stringify(downloads),
    );
    for (let i = 1; i < offsets.length; i++)
      assert.ok((offsets[i] ?? 0) > (offsets[i - 1] ?? 0), JSON.stringify(offsets));
    // Less than the whole artifact per attempt: the bytes were not fetched again from zero.
    assert.ok((offsets[2] ?? 0) >= 2 * (CUT_AFTER - 1024), JSON.stringify(offsets));
  } finally {
    await h.close();
    await broker.close();
  }
});
