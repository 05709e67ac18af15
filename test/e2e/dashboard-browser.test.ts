// The dashboard as a person uses it: Debian's Chromium (driven by playwright-core) opens the embedded stack's page
// (the loopback plain-HTTP listener), logs in with the admin token the stack printed (a wrong one first), sees the
// fleet, presses "start" on a campaign, watches it finish through the live event stream, and logs out.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { simulatedFleet } from '../../packages/cli/src/stack/fleet.js';
import { waitForOnline } from '../../packages/cli/src/stack/online.js';
import { startStack } from '../../packages/cli/src/stack/stack.js';
import { requireProgram } from '../support/system.js';

const VEHICLES = 5;

test('dashboard in Chromium: login, fleet listed, start pressed, campaign followed live to COMPLETED, logout', {
  timeout: 180_000,
}, async (t) => {
  const executablePath = requireProgram(t, 'chromium');
  if (!executablePath) return;
  const home = await mkdtemp(join(tmpdir(), 'otalink-dashboard-'));
  const stack = await startStack({
    home,
    httpPort: 0,
    // The loopback plain-HTTP listener: the URL `otalink up` prints first, the one a user opens.
    dashboardPort: 0,
    mqttPort: 0,
    sysIntervalSeconds: 0,
    logger: pino({ level: 'silent' }),
    fleet: simulatedFleet({ vehicles: VEHICLES }),
  });
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    await waitForOnline(stack.backend, VEHICLES, 60_000);
    const artifact = stack.sampleArtifact;
    assert.ok(artifact, 'the stack uploads a sample artifact');
    const campaign = await stack.backend.service.createCampaign({
      name: 'browser test',
      artifact: artifact.sha256,
      target: { selector: { model: 'sim-model-1' } },
    });

    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(stack.urls.dashboard);

    // Login: nothing of the fleet before it; a wrong token is refused; the stack's admin token gets in.
    const adminToken = stack.adminToken?.token;
    assert.ok(adminToken, 'the stack wrote a bootstrap admin token');
    await page.locator('#login').waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(await page.locator('#app').isHidden(), true);
    await page.locator('#token').fill('otk_0000000000000000.wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').getByText('unknown or revoked').waitFor({ timeout: 10_000 });
    await page.locator('#token').fill(adminToken);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#app').waitFor({ state: 'visible', timeout: 10_000 });
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'otalink_session');
    assert.ok(session, JSON.stringify(cookies));
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.ok(!cookies.some((c) => c.value.includes(adminToken)), 'the cookie is not the token');
    assert.equal(await page.evaluate(() => document.cookie), '', 'page scripts cannot read the session');

    await page.waitForFunction(
      (n) => document.getElementById('fleet-summary')?.textContent === `${n} vehicles, ${n} online`,
      VEHICLES,
      { timeout: 30_000 },
    );
    assert.equal(await page.locator('#vehicles tbody tr').count(), VEHICLES);

    const card = page.locator(`.campaign[data-id="${campaign.id}"]`);
    await card.waitFor({ timeout: 30_000 });
    assert.equal(await card.locator('.state').textContent(), 'DRAFT');
    await card.getByRole('button', { name: 'start' }).click();

    // The page learns the outcome only from its own event stream and REST reads, never from the test.
    await page.waitForFunction(
      (id) => document.querySelector(`.campaign[data-id="${id}"] .state`)?.textContent === 'COMPLETED',
      campaign.id,
      { timeout: 120_000 },
    );
    const text = (await card.textContent()) ?? '';
    assert.match(text.toLowerCase(), new RegExp(`succeeded\\D*${VEHICLES}`));
    assert.equal(await card.getByRole('button', { name: 'start' }).isDisabled(), true);
    assert.deepEqual(pageErrors, []);
    assert.equal(await page.locator('#error').isHidden(), true);

    // Logout ends the session on the server: the same cookie no longer opens the API.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
    const after = await fetch(new URL('/api/v1/campaigns', stack.urls.dashboard), {
      headers: { cookie: `otalink_session=${session.value}` },
    });
    assert.equal(after.status, 401);

    const final = await stack.backend.service.getCampaign(campaign.id);
    assert.equal(final.counts.SUCCEEDED, VEHICLES);
  } finally {
    await browser.close();
    await stack.close();
    await rm(home, { recursive: true, force: true });
  }
});
