/**
 * Host OS releases in real Chromium against a real server: OS releases pushed by the real CLI (real ext4 slot
 * images) listed with their size, pusher and digest and filtered by device type; a device's page shows its OS, is
 * told to install a release of its type, and follows the update the device reports (progress, roll-back with its
 * reason, commit) with no reload; the fleet's page installs a release on every device of its type after a
 * confirmation (all at once: os-rollouts.integration.test.ts stages one) and says how many were told; an observer sees it all with no control, and the server refuses them.
 * Devices speak the device API themselves (no engine, no A/B host): what is under test is the dashboard.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import {
  DEVICE_ROUTES,
  type DeviceReport,
  type OsRelease,
  USER_ROUTES,
  formatBytes,
  generateDeviceUuid,
  generateKey,
  targetStateSchema,
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
const OTHER_TYPE = 'raspberrypi4-64';

interface TestDevice {
  uuid: string;
  key: string;
}

describe('host OS releases through the dashboard', { skip }, () => {
  const step = dependentSteps();
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  const slug = 'hosts';
  const devices: Record<'gate1' | 'gate2' | 'pi', TestDevice> = {
    gate1: { uuid: generateDeviceUuid(), key: generateKey() },
    gate2: { uuid: generateDeviceUuid(), key: generateKey() },
    pi: { uuid: generateDeviceUuid(), key: generateKey() },
  };
  /** Newest first, as the server lists them. */
  let pushed: OsRelease[] = [];

  const report = async (device: TestDevice, body: DeviceReport) => {
    const response = await fetch(`${world.url}${DEVICE_ROUTES.reportState.path}`, {
      method: DEVICE_ROUTES.reportState.method,
      headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ [device.uuid]: body }),
    });
    assert.equal(response.status, 200, await response.text());
  };

  before(async () => {
    world = await startDashboardServer('dash-os');
    const { api } = world;
    const fleet = await api.call(USER_ROUTES.createFleet, { body: { name: 'Hosts', slug, deviceType: TYPE } });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    // Two devices of the fleet's type and one of another type: a fleet's OS goes to the first two only.
    for (const [name, device, type] of [
      ['gate-1', devices.gate1, TYPE],
      ['gate-2', devices.gate2, TYPE],
      ['pi-1', devices.pi, OTHER_TYPE],
    ] as const) {
      const registered = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ application: fleet.id, uuid: device.uuid, device_type: type, api_key: device.key }),
      });
      assert.equal(registered.status, 201, await registered.text());
      await api.call(USER_ROUTES.updateDevice, { params: { uuid: device.uuid }, body: { name } });
    }
    await report(devices.gate1, { status: 'Idle', os_version: 'Flotilla OS 1.0.0' });
    const push = await osReleasePusher(world);
    await push(TYPE, '1.0.0');
    await push(TYPE, '1.1.0');
    await push(OTHER_TYPE, '2.0.0');
    pushed = (await api.call(USER_ROUTES.listOsReleases, { query: {} })).items;
    assert.deepEqual(
      pushed.map((r) => `${r.deviceType} ${r.version}`),
      [`${OTHER_TYPE} 2.0.0`, `${TYPE} 1.1.0`, `${TYPE} 1.0.0`],
    );
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

  const release = (type: string, version: string) => {
    const found = pushed.find((r) => r.deviceType === type && r.version === version);
    assert.ok(found, `${type} ${version} was pushed`);
    return found;
  };
  /**
   * A release as a row of the OS releases page: version, type, size, who, when (the `<time>`'s datetime: its text
   * is relative and moves with the clock), digest.
   */
  const rowOf = (r: OsRelease) => [
    r.version,
    r.deviceType,
    formatBytes(r.size),
    world.admin.username,
    r.createdAt,
    r.manifestDigest,
  ];
  const rowsOf = async (t: Locator) =>
    t
      .locator('tbody tr')
      .evaluateAll((rows) =>
        rows.map((row) =>
          [...row.querySelectorAll('th, td')].map(
            (cell) => cell.querySelector('time')?.dateTime ?? cell.textContent?.trim() ?? '',
          ),
        ),
      );
  /** Waits for the table to show exactly these rows; on timeout, fails with what it shows instead. */
  const waitForRows = async (t: Locator, expected: string[][]) => {
    try {
      await waitFor('the rows', async () => isDeepStrictEqual(await rowsOf(t), expected), { timeoutMs: WAIT.timeout });
    } catch {
      assert.deepEqual(await rowsOf(t), expected);
    }
  };
  const hostOs = (p: Page) => p.getByRole('region', { name: 'Host OS' });
  /** The value of a fact (`<dt>term</dt><dd>value</dd>`) in the Host OS section. */
  const fact = (p: Page, term: string) =>
    hostOs(p)
      .locator('.fact')
      .filter({ has: p.locator('dt', { hasText: new RegExp(`^${term}$`) }) })
      .locator('dd');
  /** Waits for a fact to read exactly `text`; on timeout, fails with what it reads instead. */
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
  /**
   * Reports until the page shows `term` reading `text`. A report made while the page's stream is (re)opening is
   * not replayed to it, so it is sent again until it shows (bounded); each report is the same state, so a repeat
   * changes nothing on the server.
   */
  const reportUntilShown = async (device: TestDevice, body: DeviceReport, term: string, text: string) => {
    const dd = fact(page, term);
    const shows = async () => (await dd.count()) === 1 && (await dd.textContent()) === text;
    for (let tries = 0; tries < 10 && !(await shows()); tries++) {
      await report(device, body);
      await waitFor(term, shows, { timeoutMs: 1_500 }).catch(() => undefined);
    }
    await waitForFact(page, term, text);
  };

  step('the OS releases page lists each release with its size, pusher and digest, by device type', async () => {
    await page.goto(`${world.url}/fleets`, { waitUntil: 'load' });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'OS releases' }).click();
    await page.getByRole('heading', { name: 'OS releases', level: 1 }).waitFor(WAIT);
    const table = page.locator('table.os-releases-table');
    await waitForRows(table, pushed.map(rowOf));
    for (const when of await table.locator('time').allTextContents()) assert.match(when, /^(just now|\d+ min ago)$/);
    // The size shown is the slot image's, byte for byte what mkfs.ext4 made.
    assert.equal(release(TYPE, '1.0.0').size, 2 * 1024 * 1024);
    const picker = page.getByLabel('Device type');
    assert.deepEqual(await picker.locator('option').allTextContents(), ['All', TYPE, OTHER_TYPE]);
    await picker.selectOption(TYPE);
    await waitForRows(table, [rowOf(release(TYPE, '1.1.0')), rowOf(release(TYPE, '1.0.0'))]);
    assert.equal(new URL(page.url()).searchParams.get('deviceType'), TYPE);
    // The filter lives in the URL: a reload keeps it.
    await page.reload({ waitUntil: 'load' });
    await waitForRows(table, [rowOf(release(TYPE, '1.1.0')), rowOf(release(TYPE, '1.0.0'))]);
    assert.equal(await page.getByLabel('Device type').inputValue(), TYPE);
    await page.getByLabel('Device type').selectOption(OTHER_TYPE);
    await waitForRows(table, [rowOf(release(OTHER_TYPE, '2.0.0'))]);
    await page.getByLabel('Device type').selectOption('');
    await waitForRows(table, pushed.map(rowOf));
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'os-releases-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await table.locator('tbody tr').first().waitFor(WAIT);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the OS releases page is ${overflow} px wider than a 390 px screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  step("a device's page installs a release of its type and follows the update it reports, live", async () => {
    const { gate1 } = devices;
    await page.goto(`${world.url}/devices/${gate1.uuid}`, { waitUntil: 'load' });
    await page.getByRole('heading', { name: 'gate-1', level: 1 }).waitFor(WAIT);
    await waitForFact(page, 'Running', 'Flotilla OS 1.0.0');
    await waitForFact(page, 'Target', 'none set: the device keeps its OS');
    const picker = hostOs(page).getByLabel('OS release');
    // Only its organization's releases of its own type are offered, newest first.
    await picker.locator('option[value="1.0.0"]').waitFor({ state: 'attached', ...WAIT });
    assert.deepEqual(await picker.locator('option').allTextContents(), ['Choose a version', '1.1.0', '1.0.0']);
    await picker.selectOption('1.1.0');
    await hostOs(page).getByRole('button', { name: 'Install OS' }).click();
    await hostOs(page).getByText('The device is told to run OS 1.1.0.').waitFor(WAIT);
    await waitForFact(page, 'Target', 'OS 1.1.0');
    assert.equal(await hostOs(page).getByRole('button', { name: 'Install OS' }).isDisabled(), true, 'already its');
    assert.equal((await world.api.call(USER_ROUTES.getDevice, { params: { uuid: gate1.uuid } })).targetOs, '1.1.0');
    // What the device is sent: the release's slot image, by its digest and size.
    const polled = await fetch(`${world.url}/device/v3/${gate1.uuid}/state`, {
      headers: { authorization: `Bearer ${gate1.key}` },
    });
    const os = targetStateSchema.parse(await polled.json())[gate1.uuid]?.os;
    const chosen = release(TYPE, '1.1.0');
    assert.deepEqual(
      { version: os?.version, sha256: os?.sha256, size: os?.size },
      { version: '1.1.0', sha256: chosen.sha256, size: chosen.size },
    );

    // The device reports its update as it goes; the page follows it with no reload.
    // The page's own stream (the heading's indicator; the log view has another).
    await page.locator('.page-head').getByText('Live', { exact: true }).waitFor(WAIT);
    const update = { version: '1.1.0', progress: null, error_code: null, error: null };
    await reportUntilShown(
      gate1,
      { os_update: { ...update, phase: 'writing', progress: 37 } },
      'Update',
      'writing the image to the inactive slot (OS 1.1.0): 37 %',
    );
    assert.equal(await hostOs(page).locator('progress').getAttribute('value'), '37');
    await reportUntilShown(
      gate1,
      { os_update: { ...update, phase: 'trial', progress: 100 } },
      'Update',
      'booted into it on trial (OS 1.1.0)',
    );
    await reportUntilShown(
      gate1,
      {
        os_update: {
          ...update,
          phase: 'rolled-back',
          error_code: 'OS_TRIAL_UNHEALTHY',
          error: 'the agent was not healthy within 30 s',
        },
      },
      'Last update',
      'rolled back from OS 1.1.0: the agent was not healthy within 30 s (OS_TRIAL_UNHEALTHY)',
    );
    assert.equal(await fact(page, 'Update').count(), 0, 'nothing under way any more');
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-os-1280.png'), fullPage: true });
    await reportUntilShown(
      gate1,
      { os_version: 'Flotilla OS 1.1.0', os_update: { ...update, phase: 'committed' } },
      'Last update',
      'committed OS 1.1.0',
    );
    await waitForFact(page, 'Running', 'Flotilla OS 1.1.0');
    await page.setViewportSize({ width: 390, height: 844 });
    await hostOs(page).waitFor(WAIT);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the device page is ${overflow} px wider than a 390 px screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  step("the fleet's page installs a release on every device of its type, after a confirmation", async () => {
    // gate-2's page stays open in another tab, the device pinned to a release of the fleet: the fleet's OS reaches
    // its page live all the same (a pin holds the release, not the OS).
    const { commit } = await world.api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: { services: { web: { image: 'web' } } },
        images: { web: `flotilla.test/${slug}/web@sha256:${'a'.repeat(64)}` },
        status: 'success',
      },
    });
    await world.api.call(USER_ROUTES.updateDevice, {
      params: { uuid: devices.gate2.uuid },
      body: { pinnedRelease: commit },
    });
    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      await signIn(other.page, world.url, world.admin.username, world.admin.password);
      other.failedResponses.splice(0);
      await other.page.goto(`${world.url}/devices/${devices.gate2.uuid}`, { waitUntil: 'load' });
      await other.page.locator('.page-head').getByText('Live', { exact: true }).waitFor(WAIT);
      await waitForFact(other.page, 'Target', 'none set: the device keeps its OS');
      await installOnFleet();
      await waitForFact(other.page, 'Target', 'OS 1.0.0');
      await assertClean(other);
    } finally {
      await other.close();
    }
  });

  async function installOnFleet() {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('heading', { name: 'Hosts', level: 1 }).waitFor(WAIT);
    await hostOs(page).getByText('The fleet has no OS target: its devices keep the OS they run.').waitFor(WAIT);
    const picker = hostOs(page).getByLabel('OS release');
    await picker.locator('option[value="1.0.0"]').waitFor({ state: 'attached', ...WAIT });
    assert.deepEqual(await picker.locator('option').allTextContents(), ['Choose a version', '1.1.0', '1.0.0']);
    await picker.selectOption('1.0.0');
    const open = hostOs(page).getByRole('button', { name: 'Install on the fleet…' });
    await open.click();
    const dialog = page.getByRole('dialog', { name: 'Install OS 1.0.0 on fleet Hosts?' });
    await dialog.waitFor(WAIT);
    // Escape changes nothing.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached', ...WAIT });
    assert.equal(
      (await world.api.call(USER_ROUTES.getDevice, { params: { uuid: devices.gate2.uuid } })).targetOs,
      null,
    );
    await open.click();
    await dialog.waitFor(WAIT);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleet-os-1280.png') });
    await dialog.getByRole('button', { name: 'Install OS' }).click();
    await dialog.waitFor({ state: 'detached', ...WAIT });
    await hostOs(page).getByText(`2 devices of type ${TYPE} told to run OS 1.0.0.`).waitFor(WAIT);
    await hostOs(page)
      .getByText(`The fleet's OS: 1.0.0 (${TYPE}); a device registered now starts with it.`)
      .waitFor(WAIT);
    const targets = await Promise.all(
      [devices.gate1, devices.gate2, devices.pi].map(
        async (d) => (await world.api.call(USER_ROUTES.getDevice, { params: { uuid: d.uuid } })).targetOs,
      ),
    );
    assert.deepEqual(targets, ['1.0.0', '1.0.0', null], 'the other device type is left alone');
    await assertClean(watch);
  }

  step('an observer sees the releases and the OS facts with no control; the server refuses their write', async () => {
    const username = 'watcher';
    const password = 'watcher-long-passphrase';
    await world.api.call(USER_ROUTES.createUser, { body: { username, password } });
    await world.api.call(USER_ROUTES.invite, { params: { org: 'default' }, body: { username, role: 'observer' } });
    const { token } = await world.api.call(USER_ROUTES.login, { body: { username, password } });
    const observer = world.apiAs(token);
    const [invitation] = (await observer.call(USER_ROUTES.listInvitations)).items;
    assert.ok(invitation);
    await observer.call(USER_ROUTES.acceptInvitation, { params: { id: String(invitation.id) } });
    const version = { body: { version: '1.1.0' } };
    await assert.rejects(
      observer.call(USER_ROUTES.setDeviceOs, { params: { uuid: devices.gate2.uuid }, ...version }),
      /observers only read/,
    );
    await assert.rejects(
      observer.call(USER_ROUTES.setFleetOs, { params: { slug }, ...version }),
      /observers only read/,
    );

    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      const p = other.page;
      await signIn(p, world.url, username, password);
      other.failedResponses.splice(0);
      await p.goto(`${world.url}/os-releases`, { waitUntil: 'load' });
      await waitForRows(p.locator('table.os-releases-table'), pushed.map(rowOf));

      await p.goto(`${world.url}/devices/${devices.gate1.uuid}`, { waitUntil: 'load' });
      await hostOs(p)
        .getByText(/only reads: you cannot install an OS/)
        .waitFor(WAIT);
      await waitForFact(p, 'Running', 'Flotilla OS 1.1.0');
      await waitForFact(p, 'Target', 'OS 1.0.0');
      await waitForFact(p, 'Last update', 'committed OS 1.1.0');
      assert.equal(await hostOs(p).getByRole('form').count(), 0);
      assert.equal(await hostOs(p).getByRole('button').count(), 0);

      await p.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
      await hostOs(p)
        .getByText(/only reads: you cannot install an OS/)
        .waitFor(WAIT);
      assert.equal(await hostOs(p).getByRole('form').count(), 0);
      assert.equal(await hostOs(p).getByRole('button').count(), 0);
      await assertClean(other);
    } finally {
      await other.close();
    }
    assert.deepEqual(
      (await world.api.call(USER_ROUTES.getDevice, { params: { uuid: devices.gate2.uuid } })).targetOs,
      '1.0.0',
      'unchanged by the refused writes',
    );
  });
});
