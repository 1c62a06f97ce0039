/**
 * Staged rollouts and maintenance windows in real Chromium against a real server, with four devices speaking the
 * device API over HTTP (server testing/simulated-device.ts; one told to fail the new release): the fleet page says
 * a rollout is paused and leads to it; the rollout page shows why, the failed device, the batches' counts and the
 * events, follows the rollout live, and resumes (by keyboard), aborts (through its confirmation: the devices go
 * back), pauses; a refused action shows ROLLOUT_STATE; an observer sees it all with no control. Windows are set,
 * refused (by the form, then by the server: UPDATE_WINDOW_INVALID) and cleared on the fleet and device pages.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { type Rollout, USER_ROUTES } from '@flotilla/protocol';
import { SimulatedDevice } from '@flotilla/server/testing';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, short, signIn, startDashboardServer } from './dashboard-server.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { dependentSteps } from './steps.js';
import { assertClean, type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
const WAIT = { timeout: 15_000 };
const COMPOSITION = { services: { main: { image: 'busybox' } } };

describe('staged rollouts and maintenance windows through the dashboard', { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  const slug = 'rolling';
  const devices: SimulatedDevice[] = [];
  let previous = '';
  let failing = '';
  const step = dependentSteps();

  const rollout = () => world.api.call(USER_ROUTES.getRollout, { params: { slug } });
  /** `flotilla deploy --rollout`'s calls: a building release, its rollout, then the release marked successful. */
  const deployWithRollout = async (plan: { batches: number[]; soakSeconds: number }) => {
    const release = await world.api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: { composition: COMPOSITION, status: 'running' },
    });
    await world.api.call(USER_ROUTES.createRollout, { params: { slug }, body: { release: release.id, ...plan } });
    await world.api.call(USER_ROUTES.updateRelease, {
      params: { ref: String(release.id) },
      body: { status: 'success' },
    });
    return release;
  };
  const rowsOf = (table: Locator) =>
    table.locator('tbody tr').evaluateAll((rows) =>
      rows.map((row) =>
        // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads
        [...row.querySelectorAll('th, td')].map((cell) => (cell as HTMLElement).innerText.trim()),
      ),
    );
  const table = (caption: string) => page.locator('table', { has: page.locator('caption', { hasText: caption }) });
  const noOverflow = async (p: Page) =>
    assert.equal(
      await p.evaluate(() => document.documentElement.scrollWidth),
      await p.evaluate(() => window.innerWidth),
      'no horizontal scrolling',
    );

  before(async () => {
    world = await startDashboardServer('dash-rollouts', { rolloutIntervalMs: 200 });
    const { api } = world;
    const fleet = await api.call(USER_ROUTES.createFleet, { body: { name: 'Rolling', slug } });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    for (let i = 1; i <= 4; i++) {
      const device = await SimulatedDevice.register(world.url, fleet.id, provisioning.key, (c) =>
        c === failing ? 'fail' : 'healthy',
      );
      await api.call(USER_ROUTES.updateDevice, { params: { uuid: device.uuid }, body: { name: `node-${i}` } });
      devices.push(device);
    }
    const first = await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: { composition: COMPOSITION, status: 'success' },
    });
    previous = first.commit;
    for (const d of devices) d.start();
    await waitFor('every device to run the first release', () => devices.every((d) => d.running === previous));
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    browser = await launchChromium();
    watch = await watchPage(browser, { width: 1280, height: 800 });
    page = watch.page;
    await signIn(page, world.url, world.admin.username, world.admin.password);
    watch.failedResponses.splice(0);
  });
  after(async () => {
    for (const d of devices) await d.stop();
    await watch?.close();
    await browser?.close();
    await world?.close();
  });

  step('a fleet without a rollout says so, with nothing refused', async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Rollout' }).click();
    await page.getByText('No staged rollout yet').waitFor(WAIT);
    await assertClean(watch);
  });

  step(
    'a failing batch: the fleet page says the rollout is paused; its page shows why and the failed device',
    async () => {
      // Announced before the release exists, so the decision is in place when a device is given it.
      const release = await world.api.call(USER_ROUTES.createRelease, {
        params: { slug },
        body: { composition: COMPOSITION, status: 'running' },
      });
      failing = release.commit;
      await world.api.call(USER_ROUTES.createRollout, {
        params: { slug },
        body: { release: release.id, batches: [25, 100], soakSeconds: 0 },
      });
      await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      // Waiting for its release to build, the rollout already shows as running on the fleet page.
      await page.getByText(/Staged rollout running: release/).waitFor(WAIT);
      await world.api.call(USER_ROUTES.updateRelease, {
        params: { ref: String(release.id) },
        body: { status: 'success' },
      });
      const paused = await waitFor('the rollout to pause', async () => {
        const r = await rollout();
        return r.status === 'paused' ? r : undefined;
      });
      // The fleet page follows it without a reload.
      await page.getByText(`Staged rollout paused: release ${release.version} ${short(release.commit)}`).waitFor(WAIT);
      await page.getByRole('link', { name: 'See the rollout' }).click();
      await page.getByRole('heading', { name: 'Rollout', level: 1 }).waitFor(WAIT);
      const facts = page.locator('dl.facts').first();
      await facts.getByText('Paused', { exact: true }).waitFor(WAIT);
      await facts.getByText('batch 1: 1 of 1 device(s) failed, more than 10%').waitFor(WAIT);
      assert.equal(paused.reason, 'batch 1: 1 of 1 device(s) failed, more than 10%');
      const canary = paused.devices.find((d) => d.batch === 0);
      assert.ok(canary);
      const batches = await rowsOf(table('Batches'));
      assert.match(batches[0]?.[0] ?? '', /^1\. 25%\s*current$/);
      assert.notEqual(batches[0]?.[1], 'not yet');
      assert.deepEqual(
        batches.map((row) => row.slice(2)),
        [
          ['1', '0', '0', '1', '0', '0'],
          ['3', '3', '0', '0', '0', '0'],
        ],
      );
      assert.deepEqual(batches[1]?.slice(0, 2), ['2. 100%', 'not yet']);
      const deviceRows = await rowsOf(table('Devices'));
      assert.deepEqual(
        deviceRows.find((row) => row[0] === canary.name),
        [canary.name, '1. 25%', 'failed', 'reported: Update failed'],
      );
      assert.equal(deviceRows.filter((row) => row[2] === 'pending').length, 3);
      assert.deepEqual(
        await page.locator('.rollout-events li .tag').allTextContents(),
        paused.events.map((e) => e.kind),
      );
      assert.ok(paused.events.some((e) => e.kind === 'paused'));
      // The plan as created.
      await page.getByText('25% → 100%').waitFor();
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'rollout-1280.png'), fullPage: true });
      // The release's page says which rollout stages it, and leads back.
      await facts.getByRole('link', { name: `${release.version} ${short(release.commit)}` }).click();
      await page.getByRole('link', { name: `by rollout #${paused.id} (paused)` }).click();
      await page.getByRole('heading', { name: 'Rollout', level: 1 }).waitFor(WAIT);
      await facts.getByText('Paused', { exact: true }).waitFor(WAIT);
      await assertClean(watch);
    },
  );

  step('resume by keyboard: the next batch fails too and the page shows it paused again, live', async () => {
    const resume = page.getByRole('button', { name: 'Resume' });
    await resume.focus();
    await page.keyboard.press('Enter');
    await page.getByText('Resumed: the failures that paused it no longer count.').waitFor(WAIT);
    // Batch 2 opens (three devices are given the failing release) and pauses it again: seen by polling alone.
    const facts = page.locator('dl.facts').first();
    await facts.getByText(/^batch 2: [1-3] of 3 device\(s\) failed/).waitFor(WAIT);
    await facts.getByText('Paused', { exact: true }).waitFor(WAIT);
    await facts.getByText('2 of 2 (100%)').waitFor(WAIT);
    assert.ok((await table('Devices').getByText('excused').count()) >= 1, 'the first failure is excused');
    await assertClean(watch);
  });

  step('abort asks first, says every device goes back, and they do', async () => {
    await page.getByRole('button', { name: 'Abort…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', new RegExp(`previous release, [^ ]+ \\(${short(previous)}\\)`));
    // Escape leaves it untouched.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await rollout()).status, 'paused');
    await page.getByRole('button', { name: 'Abort…' }).click();
    await dialog.getByRole('button', { name: 'Abort the rollout' }).focus();
    await page.keyboard.press('Enter');
    await dialog.waitFor({ state: 'detached', ...WAIT });
    await page.getByText(/^Aborted: every device goes back to /).waitFor(WAIT);
    await page.locator('dl.facts').first().getByText('Aborted', { exact: true }).waitFor(WAIT);
    assert.equal(await page.getByRole('button', { name: 'Pause' }).isDisabled(), true);
    assert.equal(await page.getByRole('button', { name: 'Resume' }).isDisabled(), true);
    await waitFor('every device back on the previous release', () => devices.every((d) => d.running === previous));
    // The fleet page no longer says a rollout runs.
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('heading', { name: 'Rolling', level: 1 }).waitFor(WAIT);
    await page.getByText('Live', { exact: true }).waitFor(WAIT);
    assert.equal(await page.locator('.rollout-notice').count(), 0);
    await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Rollout' }).click();
    await page.locator('dl.facts').first().getByText('Aborted', { exact: true }).waitFor(WAIT);
    await page.getByText('Live', { exact: true }).waitFor(WAIT);
    await assertClean(watch);
  });

  step('a running rollout is paused and resumed; a pause the server refuses shows ROLLOUT_STATE', async () => {
    failing = '';
    const release = await deployWithRollout({ batches: [25, 100], soakSeconds: 600 });
    await waitFor('the first batch to open', async () => (await rollout()).batches[0]?.opened === true);
    // The page, still on the aborted rollout, shows the new one by itself (the fleet's stream says one was made).
    const facts = page.locator('dl.facts').first();
    await facts.getByText(`${release.version} ${short(release.commit)}`).waitFor(WAIT);
    await facts.getByText('Running', { exact: true }).waitFor(WAIT);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByText('Paused: no further batch opens.').waitFor(WAIT);
    await facts.getByText('Paused', { exact: true }).waitFor(WAIT);
    assert.equal((await rollout()).status, 'paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await facts.getByText('Running', { exact: true }).waitFor(WAIT);
    assert.equal((await rollout()).status, 'running');

    // Someone else pauses it while the page still shows it running (its next poll held back until then).
    let release_: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release_ = resolve;
    });
    await page.route('**/api/v1/fleets/rolling/rollout', async (route) => {
      await held;
      await route.continue();
    });
    const other: Rollout = await world.api.call(USER_ROUTES.pauseRollout, { params: { slug } });
    assert.equal(other.status, 'paused');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page
      .getByRole('alert')
      .getByText(/\(ROLLOUT_STATE\)$/)
      .waitFor(WAIT);
    release_();
    await page.unroute('**/api/v1/fleets/rolling/rollout');
    await facts.getByText('Paused', { exact: true }).waitFor(WAIT);
    await assertClean(watch, ['409 POST /api/v1/fleets/rolling/rollout/pause']);
  });

  step('at 390 px the rollout page fits and its tables stack', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload({ waitUntil: 'load' });
    await table('Devices').waitFor(WAIT);
    await noOverflow(page);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'rollout-390.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  step(
    'fleet window: a wrong duration is refused by the form, a wrong cron by the server; set, then cleared',
    async () => {
      await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      const form = page.getByRole('form', { name: 'Set the fleet’s maintenance window' });
      await form.waitFor(WAIT);
      await page.getByText('None: devices apply updates as soon as they have them').waitFor();
      // By keyboard: into the cron field, then Tab from field to field, Enter to send.
      await form.getByLabel('Opens at (cron)').focus();
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('0 3 * * *');
      await page.keyboard.press('Tab');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('30s');
      await page.keyboard.press('Tab');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('Europe/Paris');
      await page.keyboard.press('Enter');
      await form.getByText('give between 1m and 7d (30 s given)').waitFor(WAIT);
      assert.equal(await form.getByLabel('Open for').getAttribute('aria-invalid'), 'true');
      assert.equal((await world.api.call(USER_ROUTES.getFleet, { params: { slug } })).updateWindow, null);

      await form.getByLabel('Open for').fill('2h');
      await form.getByLabel('Opens at (cron)').fill('61 3 * * *');
      await form.getByRole('button', { name: 'Set window' }).click();
      await page.getByText(/^invalid cron expression "61 3 \* \* \*".*\(UPDATE_WINDOW_INVALID\)$/).waitFor(WAIT);
      await assertClean(watch, ['400 PUT /api/v1/fleets/rolling/update-window']);

      await form.getByLabel('Opens at (cron)').fill('0 3 * * *');
      await form.getByRole('button', { name: 'Set window' }).click();
      await page.getByText('The fleet’s window is set.').waitFor(WAIT);
      await page.getByText('Devices apply updates from 0 3 * * * (Europe/Paris), for 2h').waitFor(WAIT);
      assert.deepEqual((await world.api.call(USER_ROUTES.getFleet, { params: { slug } })).updateWindow, {
        cron: '0 3 * * *',
        durationSeconds: 7200,
        timezone: 'Europe/Paris',
      });
      await assertClean(watch);
    },
  );

  step('device window: the fleet’s is shown as such; the device gets its own, then the fleet’s again', async () => {
    const device = devices[3];
    assert.ok(device);
    await page.goto(`${world.url}/devices/${device.uuid}`, { waitUntil: 'load' });
    const section = page.locator('section.update-window');
    await section.getByText('This is the fleet’s window; setting one here gives the device its own.').waitFor(WAIT);
    await section.getByText(/^0 3 \* \* \* \(Europe\/Paris\), open 2h; the fleet’s/).waitFor();
    assert.equal(await section.getByRole('button', { name: 'Clear window' }).count(), 0, 'nothing of its own to clear');
    const form = page.getByRole('form', { name: 'Set the device’s maintenance window' });
    await form.getByLabel('Opens at (cron)').fill('30 1 * * 6');
    await form.getByLabel('Open for').fill('90m');
    await form.getByLabel('Time zone').fill('UTC');
    await form.getByRole('button', { name: 'Set window' }).click();
    await page.getByText('The device’s window is set.').waitFor(WAIT);
    await section.getByText('This is the device’s own window, in place of its fleet’s.').waitFor(WAIT);
    await section.getByText(/^30 1 \* \* 6 \(UTC\), open 1h30m; its own/).waitFor();
    const own = await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } });
    assert.deepEqual(own.updateWindow, {
      cron: '30 1 * * 6',
      durationSeconds: 5400,
      timezone: 'UTC',
      source: 'device',
    });
    // The facts above say the same.
    await page
      .locator('dl.facts')
      .first()
      .getByText(/30 1 \* \* 6 \(UTC\), open 1h30m; its own/)
      .waitFor();

    await section.getByRole('button', { name: 'Clear window' }).click();
    await page.getByText('The device’s own window is cleared: the fleet’s applies again.').waitFor(WAIT);
    await section.getByText('This is the fleet’s window; setting one here gives the device its own.').waitFor(WAIT);
    assert.equal(
      (await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } })).updateWindow?.source,
      'fleet',
    );
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-window-1280.png'), fullPage: false });
    await assertClean(watch);
  });

  step('an observer sees the rollout and the windows with no control', async () => {
    const username = 'watcher';
    const password = 'watcher-long-passphrase';
    await world.api.call(USER_ROUTES.createUser, { body: { username, password } });
    await world.api.call(USER_ROUTES.invite, { params: { org: 'default' }, body: { username, role: 'observer' } });
    const observer = world.apiAs((await world.api.call(USER_ROUTES.login, { body: { username, password } })).token);
    const [invitation] = (await observer.call(USER_ROUTES.listInvitations)).items;
    assert.ok(invitation);
    await observer.call(USER_ROUTES.acceptInvitation, { params: { id: String(invitation.id) } });

    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      const p = other.page;
      await signIn(p, world.url, username, password);
      other.failedResponses.splice(0);
      await p.goto(`${world.url}/fleets/${slug}/rollout`, { waitUntil: 'load' });
      await p.locator('dl.facts').first().getByText('Paused', { exact: true }).waitFor(WAIT);
      await p.getByRole('rowheader', { name: 'node-1' }).waitFor(WAIT);
      assert.equal(await p.getByRole('button', { name: /^(Pause|Resume|Abort)/ }).count(), 0);

      await p.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      await p.getByText(/^Staged rollout paused/).waitFor(WAIT);
      await p.getByText('Devices apply updates from 0 3 * * * (Europe/Paris), for 2h').waitFor(WAIT);
      assert.equal(await p.getByRole('form', { name: /maintenance window/ }).count(), 0);
      assert.equal(await p.getByRole('button', { name: /window/ }).count(), 0);

      await p.goto(`${world.url}/devices/${devices[0]?.uuid}`, { waitUntil: 'load' });
      await p
        .locator('section.update-window')
        .getByText(/the fleet’s/)
        .first()
        .waitFor(WAIT);
      assert.equal(await p.getByRole('form', { name: /maintenance window/ }).count(), 0);
      await assertClean(other);
    } finally {
      await other.close();
    }
  });

  step('the fleet window is cleared: devices apply updates at once', async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('button', { name: 'Clear window' }).click();
    await page.getByText(/^The fleet’s window is cleared/).waitFor(WAIT);
    await page.getByText('None: devices apply updates as soon as they have them').waitFor(WAIT);
    assert.equal((await world.api.call(USER_ROUTES.getFleet, { params: { slug } })).updateWindow, null);
    await assertClean(watch);
  });
});
