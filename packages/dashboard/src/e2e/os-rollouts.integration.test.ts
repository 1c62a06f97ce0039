/**
 * Staged OS rollouts in real Chromium against a real server: OS releases pushed by the real CLI (real ext4 slot
 * images); the fleet page stages one in batches (a wrong batch list refused next to its field, nothing sent; then a
 * confirmation), shows the rollout with its batches' figures and events, follows it live as devices report (a roll
 * back pauses it, with the reason and the failed device), resumes, pauses and aborts it (through its confirmation);
 * then stages another with one of the fleet's rollout policies. An observer sees the rollout with no control, and the
 * server refuses their pause. Devices speak the device API themselves (no engine, no A/B host): what is under test
 * is the dashboard.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import {
  DEVICE_ROUTES,
  type DeviceReport,
  type OsRollout,
  USER_ROUTES,
  generateDeviceUuid,
  generateKey,
} from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, signIn, startDashboardServer } from './dashboard-server.js';
import { osReleasePusher } from './os-release-push.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { dependentSteps } from './steps.js';
import { assertClean, type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
// Generous: the CI machine is slow and shared. Every wait is on something the page shows, never a fixed sleep.
const WAIT = { timeout: 15_000 };
const TYPE = 'generic-amd64';

interface TestDevice {
  name: string;
  uuid: string;
  key: string;
}

describe('staged OS rollouts through the dashboard', { skip }, () => {
  const step = dependentSteps();
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  const slug = 'gates';
  const devices: TestDevice[] = [1, 2, 3, 4].map((i) => ({
    name: `gate-${i}`,
    uuid: generateDeviceUuid(),
    key: generateKey(),
  }));

  const report = async (device: TestDevice, body: DeviceReport) => {
    const response = await fetch(`${world.url}${DEVICE_ROUTES.reportState.path}`, {
      method: DEVICE_ROUTES.reportState.method,
      headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ [device.uuid]: body }),
    });
    assert.equal(response.status, 200, await response.text());
  };
  const osRollout = () => world.api.call(USER_ROUTES.getOsRollout, { params: { slug } });
  const byUuid = (uuid: string) => devices.find((d) => d.uuid === uuid) as TestDevice;
  const inBatch = (r: OsRollout, batch: number) =>
    r.devices.filter((d) => d.batch === batch).map((d) => byUuid(d.uuid));

  before(async () => {
    world = await startDashboardServer('dash-os-rollouts', { rolloutIntervalMs: 200 });
    const { api } = world;
    const fleet = await api.call(USER_ROUTES.createFleet, { body: { name: 'Gates', slug, deviceType: TYPE } });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    for (const device of devices) {
      const registered = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ application: fleet.id, uuid: device.uuid, device_type: TYPE, api_key: device.key }),
      });
      assert.equal(registered.status, 201, await registered.text());
      await api.call(USER_ROUTES.updateDevice, { params: { uuid: device.uuid }, body: { name: device.name } });
      await report(device, { status: 'Idle', os_version: 'Flotilla OS 1.0.0' });
    }
    const push = await osReleasePusher(world);
    await push(TYPE, '1.0.0');
    await push(TYPE, '2.0.0');
    await push(TYPE, '2.1.0');
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    browser = await launchChromium();
    watch = await watchPage(browser, { width: 1280, height: 800 });
    page = watch.page;
    await signIn(page, world.url, world.admin.username, world.admin.password);
    watch.failedResponses.splice(0);
  });
  after(async () => {
    await watch?.close();
    await browser?.close();
    await world?.close();
  });

  const hostOs = (p: Page) => p.getByRole('region', { name: 'Host OS' });
  const section = (p: Page) => p.getByRole('region', { name: 'Staged OS rollout' });
  /** The value of a fact of the OS rollout. */
  const fact = (p: Page, term: string) =>
    section(p)
      .locator('dl.os-rollout-facts .fact')
      .filter({ has: p.locator('dt', { hasText: new RegExp(`^${term}$`) }) })
      .locator('dd');
  const waitForFact = async (p: Page, term: string, text: string) => {
    const dd = fact(p, term);
    try {
      await waitFor(term, async () => (await dd.count()) === 1 && (await dd.textContent()) === text, {
        timeoutMs: WAIT.timeout,
      });
    } catch {
      assert.equal((await dd.count()) === 1 ? await dd.textContent() : '(no such fact)', text);
    }
  };
  const rowsOf = (table: Locator) =>
    table.locator('tbody tr').evaluateAll((rows) =>
      rows.map((row) =>
        // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads
        [...row.querySelectorAll('th, td')].map((cell) => (cell as HTMLElement).innerText.trim()),
      ),
    );
  const table = (p: Page, caption: string) =>
    section(p).locator('table', { has: p.locator('caption', { hasText: new RegExp(`^${caption}$`) }) });
  /** Batch rows without the "Opened" cell (a relative time): label, devices, pending … excused. */
  const waitForBatches = async (p: Page, expected: string[][]) => {
    const shown = async () =>
      (await rowsOf(table(p, 'OS rollout batches'))).map((r) => [
        (r[0] ?? '').replace(/\s*current$/, ' current'),
        ...r.slice(2),
      ]);
    try {
      await waitFor('the batches', async () => isDeepStrictEqual(await shown(), expected), { timeoutMs: WAIT.timeout });
    } catch {
      assert.deepEqual(await shown(), expected);
    }
  };

  step('the fleet page stages an OS in batches: a wrong list is refused by the form, then confirmed', async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('heading', { name: 'Gates', level: 1 }).waitFor(WAIT);
    const picker = hostOs(page).getByLabel('OS release');
    await picker.locator('option[value="2.0.0"]').waitFor({ state: 'attached', ...WAIT });
    assert.equal(await section(page).count(), 0, 'no OS rollout yet');
    await picker.selectOption('2.0.0');
    await hostOs(page).getByRole('radio', { name: 'Staged, in batches' }).check();
    const batches = hostOs(page).getByRole('textbox', { name: 'Batches', exact: true });
    await batches.fill('50%,lots');
    await hostOs(page).getByRole('button', { name: 'Stage on the fleet…' }).click();
    await hostOs(page).getByText('invalid rollout batch "lots": give percentages such as "5%,25%,100%"').waitFor(WAIT);
    assert.equal(await batches.getAttribute('aria-invalid'), 'true');
    await batches.fill('50%,100%');
    await hostOs(page).getByRole('textbox', { name: 'Soak (seconds)' }).fill('0');
    await hostOs(page).getByRole('button', { name: 'Stage on the fleet…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Stage OS 2.0.0 on fleet Gates?' });
    await dialog.getByText(/Batches 50%, 100% of the fleet's generic-amd64 devices/).waitFor(WAIT);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleet-os-stage-1280.png') });
    await dialog.getByRole('button', { name: 'Start the rollout' }).click();
    await dialog.waitFor({ state: 'detached', ...WAIT });
    await hostOs(page).getByText('OS 2.0.0 staged: 50% (2), 100% (2); batch 1 told.').waitFor(WAIT);
    await waitForFact(page, 'OS', `2.0.0 (${TYPE})`);
    await waitForFact(page, 'Status', 'Running');
    await waitForFact(page, 'Batch', '1 of 2 (50%)');
    await waitForBatches(page, [
      ['1. 50% current', '2', '2', '0', '0', '0', '0'],
      ['2. 100%', '2', '2', '0', '0', '0', '0'],
    ]);
    await section(page).getByRole('region', { name: 'OS rollout events' }).locator('li').first().waitFor(WAIT);
    const r = await osRollout();
    assert.deepEqual([r.status, r.plan.batches, r.plan.soakSeconds], ['running', [50, 100], 0]);
    await assertClean(watch);
  });

  step('a device that rolls back pauses it: the page shows why and the failed device, live', async () => {
    const [failing] = inBatch(await osRollout(), 0);
    assert.ok(failing);
    await report(failing, {
      os_update: {
        phase: 'rolled-back',
        version: '2.0.0',
        progress: null,
        error_code: 'OS_TRIAL_UNHEALTHY',
        error: 'the engine did not answer',
      },
    });
    await waitForFact(page, 'Status', 'Paused');
    await waitForFact(page, 'Reason', 'batch 1: 1 of 2 device(s) failed, more than 10%');
    await section(page).getByText('Plan and devices').click();
    const rows = await rowsOf(table(page, 'OS rollout devices'));
    const row = rows.find((cells) => cells[0] === failing.name);
    assert.deepEqual(row, [
      failing.name,
      '1. 50%',
      'failed',
      'OS 2.0.0 rolled-back: the engine did not answer (OS_TRIAL_UNHEALTHY)',
    ]);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleet-os-rollout-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await section(page).waitFor(WAIT);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the fleet page is ${overflow} px wider than a 390 px screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  step('resume, the next batch opens as devices commit; pause; abort after its confirmation', async () => {
    const controls = section(page).getByRole('region', { name: 'Control the OS rollout' });
    await controls.getByRole('button', { name: 'Resume' }).click();
    await controls.getByText('Resumed: the failures that paused it no longer count.').waitFor(WAIT);
    await waitForFact(page, 'Status', 'Running');
    const r = await osRollout();
    const good = inBatch(r, 0).find((d) => r.devices.find((x) => x.uuid === d.uuid)?.state !== 'excused');
    assert.ok(good);
    await report(good, {
      os_version: 'Flotilla OS 2.0.0',
      os_update: { phase: 'committed', version: '2.0.0', progress: null, error_code: null, error: null },
    });
    await waitForFact(page, 'Batch', '2 of 2 (100%)');
    await waitForBatches(page, [
      ['1. 50%', '2', '0', '1', '0', '0', '1'],
      ['2. 100% current', '2', '2', '0', '0', '0', '0'],
    ]);
    await controls.getByRole('button', { name: 'Pause' }).click();
    await controls.getByText('Paused: no further batch opens.').waitFor(WAIT);
    await waitForFact(page, 'Status', 'Paused');
    assert.equal((await osRollout()).status, 'paused');

    const abort = controls.getByRole('button', { name: 'Abort…' });
    await abort.click();
    const dialog = page.getByRole('dialog', { name: 'Abort the rollout of OS 2.0.0?' });
    await dialog.waitFor(WAIT);
    // Escape changes nothing.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached', ...WAIT });
    assert.equal((await osRollout()).status, 'paused');
    await abort.click();
    await dialog.getByRole('button', { name: 'Abort the rollout' }).click();
    await dialog.waitFor({ state: 'detached', ...WAIT });
    await controls.getByText('Aborted: devices that have not installed OS 2.0.0 are no longer asked to.').waitFor(WAIT);
    await waitForFact(page, 'Status', 'Aborted');
    assert.equal((await osRollout()).status, 'aborted');
    for (const name of ['Pause', 'Resume', 'Abort…'])
      assert.equal(await controls.getByRole('button', { name }).isDisabled(), true, `${name} once aborted`);
    const kinds = await section(page)
      .getByRole('region', { name: 'OS rollout events' })
      .locator('li .tag')
      .allTextContents();
    assert.ok(kinds.length >= 4, `events: ${kinds.join(', ')}`);
    await assertClean(watch);
  });

  step("another OS is staged with one of the fleet's rollout policies, taken whole", async () => {
    await world.api.call(USER_ROUTES.putRolloutPolicy, {
      params: { slug, name: 'careful' },
      body: { batches: [25, 100], soakSeconds: 0, failureThreshold: 50 },
    });
    const picker = hostOs(page).getByLabel('OS release');
    await picker.selectOption('2.1.0');
    await hostOs(page).getByRole('radio', { name: 'Staged, with a rollout policy' }).check();
    const policy = hostOs(page).getByRole('combobox', { name: 'Rollout policy', exact: true });
    await policy.locator('option[value="careful"]').waitFor({ state: 'attached', ...WAIT });
    // Nothing chosen: said next to the field, nothing sent.
    await hostOs(page).getByRole('button', { name: 'Stage on the fleet…' }).click();
    await hostOs(page).getByText('Choose one of the fleet’s rollout policies.').waitFor(WAIT);
    await policy.selectOption('careful');
    await hostOs(page).getByRole('button', { name: 'Stage on the fleet…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Stage OS 2.1.0 on fleet Gates?' });
    await dialog.getByRole('button', { name: 'Start the rollout' }).click();
    await dialog.waitFor({ state: 'detached', ...WAIT });
    await waitForFact(page, 'OS', `2.1.0 (${TYPE})`);
    await waitForFact(page, 'Status', 'Running');
    const r = await osRollout();
    assert.deepEqual(
      [r.os.version, r.plan.batches, r.plan.failureThreshold, r.batches.map((b) => b.label)],
      ['2.1.0', [25, 100], 50, ['25%', '100%']],
    );
    await assertClean(watch);
  });

  step('an observer sees the OS rollout with no control; the server refuses their pause', async () => {
    const username = 'watcher';
    const password = 'watcher-long-passphrase';
    await world.api.call(USER_ROUTES.createUser, { body: { username, password } });
    await world.api.call(USER_ROUTES.invite, { params: { org: 'default' }, body: { username, role: 'observer' } });
    const { token } = await world.api.call(USER_ROUTES.login, { body: { username, password } });
    const observer = world.apiAs(token);
    const [invitation] = (await observer.call(USER_ROUTES.listInvitations)).items;
    assert.ok(invitation);
    await observer.call(USER_ROUTES.acceptInvitation, { params: { id: String(invitation.id) } });
    await assert.rejects(observer.call(USER_ROUTES.pauseOsRollout, { params: { slug } }), /observers only read/);
    await assert.rejects(
      observer.call(USER_ROUTES.createOsRollout, { params: { slug }, body: { version: '2.0.0', batches: [100] } }),
      /observers only read/,
    );

    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      const p = other.page;
      await signIn(p, world.url, username, password);
      other.failedResponses.splice(0);
      await p.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      await hostOs(p)
        .getByText(/only reads: you cannot install an OS/)
        .waitFor(WAIT);
      await waitForFact(p, 'OS', `2.1.0 (${TYPE})`);
      await waitForFact(p, 'Status', 'Running');
      await waitForBatches(p, [
        ['1. 25% current', '1', '1', '0', '0', '0', '0'],
        ['2. 100%', '3', '3', '0', '0', '0', '0'],
      ]);
      await section(p).getByRole('region', { name: 'OS rollout events' }).locator('li').first().waitFor(WAIT);
      assert.equal(await hostOs(p).getByRole('form').count(), 0);
      assert.equal(
        await hostOs(p)
          .getByRole('button', { name: /Pause|Resume|Abort|Install|Stage/ })
          .count(),
        0,
      );
      assert.equal(await hostOs(p).getByRole('radio').count(), 0);
      await assertClean(other);
    } finally {
      await other.close();
    }
    assert.equal((await osRollout()).status, 'running', 'unchanged by the refused writes');
  });
});
