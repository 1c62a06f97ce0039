/**
 * Issue 13 acceptance, in real Chromium against a real server and a real agent on the local Docker engine: sign in;
 * create a fleet; deploy with the CLI and watch the device go Updating → Idle on screen without a reload; set a
 * fleet variable and a device override on the variables pages and see the service restart in its log; follow logs; run an action; pin; and a user of another
 * organization sees none of it. The steps run in order, each on the state the one before left. Screenshots of the
 * main pages go to packages/dashboard/screenshots.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { USER_ROUTES } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, short, signIn, startDashboardServer } from './dashboard-server.js';
import { type DeployedRelease, type RealDevice, startRealDevice } from './real-device.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { dependentSteps } from './steps.js';
import { assertClean, type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
/** A deploy is a build, a push, a pull and a start: generous, but bounded. */
const CONVERGE_MS = 90_000;
/** What the issue promises for live news (device state, a log line) on screen; the waits allow for a slow machine. */
const LIVE_MS = 10_000;

type Marked = Window & { __samePage?: boolean; __statusSeen?: string[] };

describe('the dashboard operates a real device', { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  let device: RealDevice | undefined;
  let slug = '';
  let first: DeployedRelease;
  const timings: Record<string, number> = {};

  before(async () => {
    world = await startDashboardServer('dash-e2e');
    browser = await launchChromium();
    watch = await watchPage(browser, { width: 1280, height: 800 });
    page = watch.page;
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
  });
  after(async () => {
    console.log(`# dashboard e2e timings (ms): ${JSON.stringify(timings)}`);
    await watch?.close();
    await browser?.close();
    await device?.close();
    await world?.close();
  });

  const step = dependentSteps();
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      timings[name] = Math.round(performance.now() - started);
    }
  };
  const fact = (term: string): Locator =>
    page
      .locator('.area-facts .fact')
      .filter({ has: page.locator('dt', { hasText: term }) })
      .locator('dd');
  const logBox = () => page.getByRole('log', { name: 'Device log' });

  step('sign in through the form, then create a fleet through the form', async () => {
    await page.goto(world.url, { waitUntil: 'load', timeout: 15_000 });
    await page.getByRole('heading', { name: 'Sign in to Flotilla' }).waitFor({ timeout: 15_000 });
    await page.getByLabel('Username').fill(world.admin.username);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'sign-in-1280.png') });
    await signIn(page, world.url, world.admin.username, world.admin.password);
    // Before signing in, the app's session check was refused; that is how it knew to show the form.
    assert.ok(watch.failedResponses.length > 0);
    assert.deepEqual(new Set(watch.failedResponses.splice(0)), new Set(['401 GET /api/v1/auth/csrf']));
    await page.getByRole('heading', { name: 'Fleets' }).waitFor();
    await page.getByText('No fleet yet').waitFor();

    await page.getByLabel('Name').fill('Greenhouse sensors');
    assert.equal(await page.getByLabel('Device type').inputValue(), 'generic-amd64');
    await page.getByRole('button', { name: 'Create fleet' }).click();
    const created = page.locator('.form-result .success').getByRole('link', { name: 'Greenhouse sensors' });
    await created.waitFor({ timeout: LIVE_MS });
    slug = decodeURIComponent((await created.getAttribute('href'))?.replace('/fleets/', '') ?? '');
    const fleet = await world.api.call(USER_ROUTES.getFleet, { params: { slug } });
    assert.equal(fleet.name, 'Greenhouse sensors');
    assert.equal(fleet.organization, 'default');
    await page.locator('table.data').getByRole('link', { name: 'Greenhouse sensors' }).waitFor();
    await assertClean(watch);
  });

  step(
    'a device provisioned into the fleet appears live; a CLI deploy shows it Updating, then Idle on the release',
    async () => {
      await page.locator('table.data').getByRole('link', { name: 'Greenhouse sensors' }).click();
      await page.getByRole('heading', { name: 'Greenhouse sensors' }).waitFor();
      await page.getByText('No device matches.').waitFor();
      await page.getByText('Live', { exact: true }).waitFor({ timeout: LIVE_MS });
      // A reload would lose this: the page must change under the user's eyes, through the fleet's event stream.
      await page.evaluate(() => {
        (window as Marked).__samePage = true;
      });

      device = await timed('agent provisioned', () => startRealDevice(world, slug, 'dashe2e'));
      const uuid = device.uuid;
      const row = page.locator('.device-table tbody tr').filter({ hasText: short(uuid) });
      await timed('device row shown', () => row.waitFor({ timeout: LIVE_MS }));

      // Every text the row's status cell takes from now on, as the browser renders it.
      await page.evaluate(() => {
        const seen: string[] = [];
        (window as Marked).__statusSeen = seen;
        const record = () => {
          const text = document.querySelector('.device-table tbody .cell-status')?.textContent ?? '';
          if (text !== '' && seen.at(-1) !== text) seen.push(text);
        };
        record();
        new MutationObserver(record).observe(document.querySelector('.device-table tbody') ?? document.body, {
          subtree: true,
          childList: true,
          characterData: true,
        });
      });
      first = await timed('flotilla deploy (release one)', () => (device as RealDevice).deploy('one'));
      await timed('row shows Idle on release one', () =>
        waitFor(
          'the row to show the device Idle, running release one',
          async () =>
            (await row.locator('.cell-status').textContent()) === 'Idle' &&
            (await row.locator('.cell-release').textContent()) === short(first.commit),
          { timeoutMs: CONVERGE_MS, intervalMs: 100 },
        ),
      );
      const seen = await page.evaluate(() => (window as Marked).__statusSeen ?? []);
      console.log(`# the row's status on screen: ${seen.join(' → ')}`);
      const updating = seen.indexOf('Updating');
      assert.ok(updating >= 0, `the row showed Updating on the way: ${seen.join(' → ')}`);
      assert.equal(seen.at(-1), 'Idle', `then Idle: ${seen.join(' → ')}`);
      assert.equal(await page.evaluate(() => (window as Marked).__samePage), true, 'no reload');
      const shown = await world.api.call(USER_ROUTES.getDevice, { params: { uuid } });
      assert.equal(shown.runningRelease, first.commit);
      // The fleet's own release, above the table, and the release filter follow too.
      await page
        .locator('.fleet-facts')
        .getByText(`Release: ${first.version} ${short(first.commit)}`)
        .waitFor({ timeout: LIVE_MS });
      await page.getByLabel('Release').locator(`option[value="${first.commit}"]`).waitFor({ state: 'attached' });
      await page.getByText('1 device matches').waitFor();
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleet-devices-1280.png') });

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Fleets' }).click();
      const fleetRow = page.locator('table.data tbody tr').filter({ hasText: 'Greenhouse sensors' });
      await fleetRow.getByText(`${first.version} ${short(first.commit)}`).waitFor();
      await fleetRow.getByRole('link', { name: '1 in all' }).waitFor();
      await fleetRow.getByRole('link', { name: '1 online' }).waitFor();
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleets-1280.png') });
      await assertClean(watch);
    },
  );

  step(
    'the device page follows the log; a fleet variable set on its page restarts the service, seen in the log; ' +
      'a device override shows beside what it overrides, and restarts it again',
    async () => {
      const real = device as RealDevice;
      await page.locator('table.data').getByRole('link', { name: 'Greenhouse sensors' }).click();
      await page.locator('.device-table').getByRole('link').first().click();
      await page.getByRole('heading', { name: 'Actions' }).waitFor();
      assert.equal(new URL(page.url()).pathname, `/devices/${real.uuid}`);
      assert.equal(await fact('Release running').textContent(), short(first.commit));
      await logBox().getByText('web one started, GREETING=none').waitFor({ timeout: LIVE_MS });
      // Following: a line the service prints after the page opened appears without a reload.
      const ticks = async () =>
        (await logBox().locator('.log-message').allTextContents())
          .map((text) => /^tick (\d+)$/.exec(text)?.[1])
          .filter((n) => n !== undefined)
          .map(Number);
      const last = Math.max(0, ...(await ticks()));
      await timed('next log line shown', () =>
        waitFor('a new tick line', async () => Math.max(0, ...(await ticks())) > last, {
          timeoutMs: LIVE_MS,
          intervalMs: 100,
        }),
      );

      // The fleet variable, through the fleet's variables page.
      const before = await real.container('web');
      await page.locator('.crumbs').getByRole('link', { name: slug }).click();
      await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Variables' }).click();
      const add = page.getByRole('form', { name: 'Add a fleet variable' });
      await add.getByLabel('Name').fill('GREETING');
      await add.getByLabel('Value').fill('hello-dashboard');
      // Timed from the click that saves it to the restarted service's line on the device page (walking back there
      // included).
      await timed('fleet variable saved → new start line shown', async () => {
        await add.getByRole('button', { name: 'Add variable' }).click();
        await page.getByText('Saved GREETING.').waitFor({ timeout: LIVE_MS });
        await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Devices' }).click();
        await page.locator('.device-table').getByRole('link').first().click();
        await logBox().getByText('web one started, GREETING=hello-dashboard').waitFor({ timeout: CONVERGE_MS });
      });
      const withVariable = await waitFor('web recreated with GREETING', async () => {
        const now = await real.container('web');
        return now?.env.includes('GREETING=hello-dashboard') ? now : undefined;
      });
      assert.notEqual(withVariable.id, before?.id, 'the service was recreated with the variable');
      await page.locator('.area-services tbody tr').filter({ hasText: 'web' }).getByText('Running').waitFor();

      // A device override of it for web, from the device's variables page: shown over the fleet's value.
      await page.getByRole('link', { name: 'Variables and configuration' }).click();
      const web = page.locator('table', { has: page.locator('caption', { hasText: 'Service web' }) });
      const greeting = web.locator('tbody tr').filter({ has: page.locator('th', { hasText: 'GREETING' }) });
      const from = greeting.locator('td[data-label="From"]');
      await from.getByText('fleet', { exact: true }).waitFor({ timeout: LIVE_MS });
      await greeting.getByRole('button', { name: 'Override GREETING for web' }).click();
      const override = page.getByRole('form', { name: 'Override GREETING on this device' });
      assert.equal(await override.getByLabel('Value').inputValue(), 'hello-dashboard');
      await override.getByLabel('Value').fill('hello-device');
      await timed('device override saved → new start line shown', async () => {
        await override.getByRole('button', { name: 'Save' }).click();
        await page.getByText('Saved GREETING for web.').waitFor({ timeout: LIVE_MS });
        await from.getByText('device · web', { exact: true }).waitFor({ timeout: LIVE_MS });
        assert.equal(await greeting.locator('td.var-value-cell').textContent(), 'hello-device');
        assert.equal(await greeting.locator('.overridden li').textContent(), 'fleet hello-dashboard');
        await page.locator('.crumbs').getByRole('link').last().click();
        await logBox().getByText('web one started, GREETING=hello-device').waitFor({ timeout: CONVERGE_MS });
      });
      await waitFor('web recreated with the override', async () =>
        (await real.container('web'))?.env.includes('GREETING=hello-device'),
      );

      // Deleting the override gives the service the fleet's value again.
      await page.getByRole('link', { name: 'Variables and configuration' }).click();
      const own = page.locator('table', {
        has: page.locator('caption', { hasText: 'Environment variables set on this device' }),
      });
      await own.getByRole('button', { name: 'Delete GREETING for web' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Delete variable' }).click();
      await page.getByText('Deleted GREETING for web.').waitFor({ timeout: LIVE_MS });
      await from.getByText('fleet', { exact: true }).waitFor({ timeout: LIVE_MS });
      await page.locator('.crumbs').getByRole('link').last().click();
      const fleetValue = logBox().getByText('web one started, GREETING=hello-dashboard');
      await waitFor('the fleet value started again', async () => (await fleetValue.count()) === 2, {
        timeoutMs: CONVERGE_MS,
      });
      await page.locator('.area-services tbody tr').filter({ hasText: 'web' }).getByText('Running').waitFor();
      await assertClean(watch);
    },
  );

  step('an action from the device page: restart the service, its result shown, and it restarts', async () => {
    const real = device as RealDevice;
    const before = await real.container('web');
    assert.ok(before);
    const started = logBox().getByText('web one started, GREETING=hello-dashboard');
    const startsBefore = await started.count();
    assert.ok(startsBefore >= 1);
    await page.getByRole('button', { name: 'Restart web', exact: true }).click();
    const results = page.getByRole('list', { name: 'Action results' });
    await timed('action result shown', () =>
      results.getByText('Restart web: done', { exact: true }).waitFor({ timeout: 30_000 }),
    );
    const after = await real.container('web');
    assert.equal(after?.id, before.id, 'the same container');
    assert.notEqual(after?.startedAt, before.startedAt, 'started again');
    await waitFor('one more start line on screen', async () => (await started.count()) === startsBefore + 1, {
      timeoutMs: LIVE_MS,
    });

    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('heading', { name: 'Logs' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the device page is ${overflow} px wider than a 390 px screen`);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-390.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  step('pin the device to an earlier release from the device page', async () => {
    const real = device as RealDevice;
    const second = await timed('flotilla deploy (release two)', () => real.deploy('two'));
    await timed('device page shows release two running', () =>
      waitFor(
        'release two running on screen',
        async () => (await fact('Release running').textContent()) === short(second.commit),
        {
          timeoutMs: CONVERGE_MS,
          intervalMs: 100,
        },
      ),
    );
    await logBox().getByText('web two started, GREETING=hello-dashboard').waitFor({ timeout: LIVE_MS });
    // The release deployed while the page was open can be pinned without a reload.
    await page
      .getByLabel('Release', { exact: true })
      .locator(`option[value="${second.commit}"]`)
      .waitFor({ state: 'attached', timeout: LIVE_MS });

    await page.getByLabel('Release', { exact: true }).selectOption(first.commit);
    await page.getByRole('button', { name: 'Pin', exact: true }).click();
    await page.locator('.area-settings').getByText('Pinned.', { exact: true }).waitFor({ timeout: LIVE_MS });
    assert.equal(await fact('Pinned to').textContent(), short(first.commit));
    await timed('pinned: release one running on screen', () =>
      waitFor(
        'release one running again',
        async () => (await fact('Release running').textContent()) === short(first.commit),
        {
          timeoutMs: CONVERGE_MS,
          intervalMs: 100,
        },
      ),
    );
    const shown = await world.api.call(USER_ROUTES.getDevice, { params: { uuid: real.uuid } });
    assert.equal(shown.pinnedRelease, first.commit);
    assert.equal(shown.runningRelease, first.commit);
    const web = await real.container('web');
    assert.ok(web);
    await logBox().getByText('web one started, GREETING=hello-dashboard').last().waitFor({ timeout: LIVE_MS });
    await assertClean(watch);
  });

  step('a user of another organization signs in and sees none of it', async () => {
    const { uuid } = device as RealDevice;
    const password = 'mallory-long-passphrase';
    await world.api.call(USER_ROUTES.createUser, { body: { username: 'mallory', password } });
    const { token } = await world.api.call(USER_ROUTES.login, { body: { username: 'mallory', password } });
    const mallory = world.apiAs(token);
    await mallory.call(USER_ROUTES.createOrganization, { body: { name: 'Elsewhere Ltd', handle: 'elsewhere' } });
    await mallory.call(USER_ROUTES.createFleet, { body: { name: 'Her own fleet', organization: 'elsewhere' } });

    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      const p = other.page;
      await signIn(p, world.url, 'mallory', password);
      await p.locator('table.data').getByRole('link', { name: 'Her own fleet' }).waitFor();
      assert.equal(await p.getByText('Greenhouse sensors').count(), 0);

      await p.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      await p
        .getByRole('alert')
        .getByText(/\(FLEET_NOT_FOUND\)/)
        .first()
        .waitFor({ timeout: LIVE_MS });
      assert.equal(await p.getByText('Greenhouse sensors').count(), 0);
      assert.equal(await p.locator('.device-table tbody tr').count(), 0);

      await p.goto(`${world.url}/devices/${uuid}`, { waitUntil: 'load' });
      await p
        .getByRole('alert')
        .getByText(/\(DEVICE_NOT_FOUND\)/)
        .waitFor({ timeout: LIVE_MS });
      assert.equal(await p.getByRole('heading', { name: 'Actions' }).count(), 0);
      assert.equal(await p.getByRole('log').count(), 0);

      await p.goto(`${world.url}/organizations`, { waitUntil: 'load' });
      await p.getByRole('heading', { name: /Elsewhere Ltd/ }).waitFor();
      assert.equal(await p.getByRole('heading', { name: /default/ }).count(), 0);

      assert.deepEqual(await other.violations(), []);
      assert.deepEqual(other.problems, []);
      // The refusals are the only failed requests: the session check before signing in, and 404 for whatever
      // names the other organization's fleet or device.
      const refused = other.failedResponses.filter((r) => r !== '401 GET /api/v1/auth/csrf');
      assert.ok(refused.some((r) => r.startsWith(`404 GET /api/v1/devices/${uuid}`)));
      assert.ok(refused.some((r) => r.startsWith(`404 GET /api/v1/fleets/${slug}`)));
      assert.deepEqual(
        refused.filter((r) => !r.startsWith('404 ') || !(r.includes(slug) || r.includes(uuid))),
        [],
      );
    } finally {
      await other.close();
    }
    await assertClean(watch);
  });
});
