/**
 * The variables pages in real Chromium against a real server (no agent: what a device gets is read from its
 * target state): fleet variables and configuration added, edited and deleted through the forms, a refused config
 * name shown, a device's override set over an inherited value and shown beside it, the device page's view equal
 * to the target state the device polls, and an observer who sees every value and no form.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { DEVICE_ROUTES, USER_ROUTES, generateDeviceUuid, generateKey, targetStateSchema } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, signIn, startDashboardServer } from './dashboard-server.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { assertClean, type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
const WAIT = { timeout: 10_000 };

describe('variables through the dashboard', { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  const slug = 'vars';
  const uuid = generateDeviceUuid();
  const deviceKey = generateKey();

  before(async () => {
    world = await startDashboardServer('dash-vars');
    const { api } = world;
    const fleet = await api.call(USER_ROUTES.createFleet, { body: { name: 'Vars', slug } });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    const registered = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ application: fleet.id, uuid, device_type: 'generic-amd64', api_key: deviceKey }),
    });
    assert.equal(registered.status, 201, await registered.text());
    await api.call(USER_ROUTES.updateDevice, { params: { uuid }, body: { name: 'bench-1' } });
    const digest = (c: string) => `flotilla.test/vars/x@sha256:${c.repeat(64)}`;
    await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: { services: { web: { image: 'web', environment: { MODE: 'compose' } }, db: { image: 'db' } } },
        images: { web: digest('a'), db: digest('b') },
        status: 'success',
      },
    });
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

  /** The rows of a table as the text of their cells, action buttons left out. */
  const rowsOf = async (table: Locator) =>
    table.locator('tbody tr').evaluateAll((rows) =>
      rows.map((row) =>
        [...row.querySelectorAll('th, td:not(.row-actions)')]
          // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads (a closed <details> hides its body)
          .map((cell) => (cell as HTMLElement).innerText.trim())
          .filter(Boolean),
      ),
    );
  const table = (p: Page, caption: string) => p.locator('table', { has: p.locator('caption', { hasText: caption }) });
  const form = (p: Page, title: string | RegExp) => p.getByRole('form', { name: title });

  test('fleet variables: add for all services and for one, edit to many lines, delete one scope only', async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Variables' }).click();
    await page.getByRole('heading', { name: 'Variables', level: 1 }).waitFor();
    await page.getByText('No environment variable yet.').waitFor();
    const add = form(page, 'Add a fleet variable');
    // The service picker offers the services of the fleet's releases.
    assert.deepEqual(await add.getByLabel('Service').locator('option').allTextContents(), [
      'All services',
      'db',
      'web',
    ]);
    await add.getByLabel('Name').fill('GREETING');
    await add.getByLabel('Value').fill('hello');
    await add.getByRole('button', { name: 'Add variable' }).click();
    await page.getByText('Saved GREETING.').waitFor(WAIT);
    await add.getByLabel('Name').fill('GREETING');
    await add.getByLabel('Service').selectOption('web');
    await add.getByLabel('Value').fill('fleet-web');
    await add.getByRole('button', { name: 'Add variable' }).click();
    await page.getByText('Saved GREETING for web.').waitFor(WAIT);
    const vars = table(page, 'Environment variables of the fleet');
    await waitForRows(vars, [
      ['GREETING', 'all services', 'hello'],
      ['GREETING', 'web', 'fleet-web'],
    ]);

    await vars.getByRole('button', { name: 'Edit GREETING', exact: true }).click();
    const edit = form(page, 'Edit GREETING');
    assert.equal(await edit.getByLabel('Value').evaluate((e) => document.activeElement === e), true, 'focused');
    assert.equal(await edit.getByLabel('Name').getAttribute('readonly'), '');
    await edit.getByLabel('Value').fill('hello\nworld');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved GREETING.').waitFor(WAIT);
    await vars.getByText('(11 characters)').waitFor(WAIT);
    const stored = await world.api.call(USER_ROUTES.listFleetEnv, { params: { slug } });
    assert.deepEqual(
      stored.items.map((v) => [v.name, v.service, v.value]),
      [
        ['GREETING', null, 'hello\nworld'],
        ['GREETING', 'web', 'fleet-web'],
      ],
    );

    await vars.getByRole('button', { name: 'Delete GREETING for web' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete GREETING for web?' });
    await dialog.getByRole('button', { name: 'Delete variable' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByText('Deleted GREETING for web.').waitFor(WAIT);
    const left = await world.api.call(USER_ROUTES.listFleetEnv, { params: { slug } });
    assert.deepEqual(
      left.items.map((v) => [v.name, v.service]),
      [['GREETING', null]],
      'the all-services one stays',
    );
    // The longest value the protocol takes (64 KiB) goes through the form; one character more is refused by it.
    const big = 'x'.repeat(64 * 1024);
    await add.getByLabel('Name').fill('BIG');
    await add.getByLabel('Value').fill(`${big}y`);
    await add.getByRole('button', { name: 'Add variable' }).click();
    assert.match((await add.getByRole('alert').textContent()) ?? '', /^Value: /);
    await add.getByLabel('Value').fill(big);
    await add.getByRole('button', { name: 'Add variable' }).click();
    await page.getByText('Saved BIG.').waitFor(WAIT);
    await vars.getByText('(65536 characters)').waitFor(WAIT);
    await vars.getByRole('button', { name: 'Delete BIG' }).click();
    await page.getByRole('dialog', { name: 'Delete BIG?' }).getByRole('button', { name: 'Delete variable' }).click();
    await page.getByText('Deleted BIG.').waitFor(WAIT);
    await waitForRows(vars, [['GREETING', 'all services', 'hello… (11 characters)']]);
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the fleet variables page is ${overflow} px wider than a 390 px screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'fleet-variables-1280.png'), fullPage: true });
    await world.api.call(USER_ROUTES.setFleetEnv, { params: { slug }, body: { name: 'PLANT', value: 'basil' } });
    await assertClean(watch);
  });

  test('fleet configuration: a name without its prefix is refused in words, before any request', async () => {
    await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Configuration' }).click();
    await page.getByRole('heading', { name: 'Configuration', level: 1 }).waitFor();
    const add = form(page, 'Add a configuration variable');
    assert.equal(await add.getByLabel('Service').count(), 0, 'config has no service');
    await add.getByLabel('Name').fill('SUPERVISOR_DELTA');
    await add.getByLabel('Value').fill('1');
    await add.getByRole('button', { name: 'Add variable' }).click();
    const refusal = add.getByRole('alert');
    await refusal.waitFor(WAIT);
    assert.equal(await refusal.textContent(), 'Name: FLOTILLA_, BALENA_ or RESIN_, then letters, digits and "_"');
    assert.equal(await add.getByLabel('Name').getAttribute('aria-invalid'), 'true');
    assert.equal(await add.getByLabel('Name').evaluate((e) => document.activeElement === e), true, 'focused');
    await add.getByLabel('Name').fill('FLOTILLA_SUPERVISOR_DELTA');
    assert.equal(await refusal.count(), 0, 'the error goes as the name changes');
    await add.getByRole('button', { name: 'Add variable' }).click();
    await page.getByText('Saved FLOTILLA_SUPERVISOR_DELTA.').waitFor(WAIT);
    await waitForRows(table(page, 'Configuration variables of the fleet'), [['FLOTILLA_SUPERVISOR_DELTA', '1']]);
    await assertClean(watch);
  });

  test("a device's variables: inherited beside overridden, in target state's order, and equal to it", async () => {
    await page.goto(`${world.url}/devices/${uuid}`, { waitUntil: 'load' });
    await page.getByRole('link', { name: 'Variables and configuration' }).click();
    await page.getByRole('heading', { name: 'Variables', level: 1 }).waitFor();
    const web = table(page, 'Service web');
    await web.waitFor(WAIT);
    await waitForRows(web, [
      ['GREETING', 'hello… (11 characters)', 'fleet', 'nothing'],
      ['MODE', 'compose', 'release', 'nothing'],
      ['PLANT', 'basil', 'fleet', 'nothing'],
    ]);

    // A device-wide value beats the fleet's all-services one, for every service.
    await web.getByRole('button', { name: 'Override MODE for web' }).click();
    const override = form(page, 'Override MODE on this device');
    assert.equal(await override.getByLabel('Value').inputValue(), 'compose');
    assert.equal(await override.getByLabel('Service').inputValue(), 'web');
    await override.getByLabel('Service').selectOption('');
    await override.getByLabel('Value').fill('device');
    await override.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved MODE.').waitFor(WAIT);
    // And one for web only beats that, for web only.
    await web.getByRole('button', { name: 'Override PLANT for web' }).click();
    await form(page, 'Override PLANT on this device').getByLabel('Value').fill('thyme');
    await form(page, 'Override PLANT on this device').getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved PLANT for web.').waitFor(WAIT);
    await waitForRows(web, [
      ['GREETING', 'hello… (11 characters)', 'fleet', 'nothing'],
      ['MODE', 'device', 'device', 'release compose'],
      ['PLANT', 'thyme', 'device · web', 'fleet basil'],
    ]);
    await waitForRows(table(page, 'Service db'), [
      ['GREETING', 'hello… (11 characters)', 'fleet', 'nothing'],
      ['MODE', 'device', 'device', 'nothing'],
      ['PLANT', 'basil', 'fleet', 'nothing'],
    ]);
    assert.equal(
      await web
        .locator('.overridden-value')
        .first()
        .evaluate((e) => getComputedStyle(e).textDecorationLine),
      'line-through',
    );

    const config = table(page, 'Configuration the device gets');
    await config.getByRole('button', { name: 'Override FLOTILLA_SUPERVISOR_DELTA' }).click();
    const configForm = form(page, 'Override FLOTILLA_SUPERVISOR_DELTA on this device');
    await configForm.getByLabel('Value').fill('0');
    await configForm.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved FLOTILLA_SUPERVISOR_DELTA.').waitFor(WAIT);
    await waitForRows(config, [['FLOTILLA_SUPERVISOR_DELTA', '0', 'device', 'fleet 1']]);

    // What the page shows is what the device is sent.
    const polled = await fetch(`${world.url}/device/v3/${uuid}/state`, {
      headers: { authorization: `Bearer ${deviceKey}` },
    });
    const target = targetStateSchema.parse(await polled.json())[uuid];
    const services = Object.values(target?.apps ?? {}).flatMap((app) =>
      Object.values(app.releases).flatMap((r) => Object.entries(r.services)),
    );
    assert.deepEqual(services.map(([name]) => name).sort(), ['db', 'web']);
    for (const [name, service] of services) {
      const shown = await table(page, `Service ${name}`)
        .locator('tbody tr')
        .evaluateAll((rows) =>
          rows.map((row) => [
            row.querySelector('th')?.textContent ?? '',
            ((cell) => cell?.querySelector('.var-value-full') ?? cell?.querySelector('.var-value'))(
              row.querySelector('td.var-value-cell'),
            )?.textContent ?? '',
          ]),
        );
      assert.deepEqual(Object.fromEntries(shown), service.environment, name);
    }
    assert.deepEqual(target?.config, { BALENA_SUPERVISOR_DELTA: '0' });

    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-variables-1280.png'), fullPage: true });

    // The device's own list: delete the override, and the fleet's value is back.
    const own = table(page, 'Environment variables set on this device');
    await own.getByRole('button', { name: 'Delete PLANT for web' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete variable' }).click();
    await page.getByText('Deleted PLANT for web.').waitFor(WAIT);
    await waitForRows(own, [['MODE', 'all services', 'device']]);

    // A deploy while the page is open: the new release's services are shown without a reload.
    await world.api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: { services: { web: { image: 'web' }, cache: { image: 'cache' } } },
        images: {
          web: `flotilla.test/vars/x@sha256:${'c'.repeat(64)}`,
          cache: `flotilla.test/vars/x@sha256:${'d'.repeat(64)}`,
        },
        status: 'success',
      },
    });
    await waitForRows(table(page, 'Service cache'), [
      ['GREETING', 'hello… (11 characters)', 'fleet', 'nothing'],
      ['MODE', 'device', 'device', 'nothing'],
      ['PLANT', 'basil', 'fleet', 'nothing'],
    ]);
    assert.equal(await table(page, 'Service db').count(), 0);

    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('heading', { name: 'Configuration', level: 2 }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the device variables page is ${overflow} px wider than a 390 px screen`);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'device-variables-390.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  test('an observer reads every value and finds no form; the server refuses their write anyway', async () => {
    const username = 'watcher';
    const password = 'watcher-long-passphrase';
    await world.api.call(USER_ROUTES.createUser, { body: { username, password } });
    await world.api.call(USER_ROUTES.invite, { params: { org: 'default' }, body: { username, role: 'observer' } });
    const { token } = await world.api.call(USER_ROUTES.login, { body: { username, password } });
    const observer = world.apiAs(token);
    const [invitation] = (await observer.call(USER_ROUTES.listInvitations)).items;
    assert.ok(invitation);
    await observer.call(USER_ROUTES.acceptInvitation, { params: { id: String(invitation.id) } });
    await assert.rejects(
      observer.call(USER_ROUTES.setFleetEnv, { params: { slug }, body: { name: 'X', value: '1' } }),
      /observers only read/,
    );

    const other = await watchPage(browser, { width: 1280, height: 800 });
    try {
      const p = other.page;
      await signIn(p, world.url, username, password);
      other.failedResponses.splice(0);
      await p.goto(`${world.url}/fleets/${slug}/variables`, { waitUntil: 'load' });
      await p.getByText(/only reads/).waitFor(WAIT);
      await table(p, 'Environment variables of the fleet').getByText('PLANT').waitFor(WAIT);
      assert.equal(await p.getByRole('form').count(), 0);
      assert.equal(await p.getByRole('button', { name: /^(Edit|Delete|Add)/ }).count(), 0);

      await p.goto(`${world.url}/devices/${uuid}/variables`, { waitUntil: 'load' });
      await p.getByText(/only reads/).waitFor(WAIT);
      await waitForRows(table(p, 'Service web'), [
        ['GREETING', 'hello… (11 characters)', 'fleet', 'nothing'],
        // The second release has no compose value for MODE.
        ['MODE', 'device', 'device', 'nothing'],
        ['PLANT', 'basil', 'fleet', 'nothing'],
      ]);
      assert.equal(await p.getByRole('form').count(), 0);
      assert.equal(await p.getByRole('button', { name: /^(Edit|Delete|Add|Override)/ }).count(), 0);
      await assertClean(other);
    } finally {
      await other.close();
    }
  });

  /** Waits for a table to show exactly these rows; on timeout, fails with what it shows instead. */
  async function waitForRows(t: Locator, expected: string[][]) {
    try {
      await waitFor('the rows', async () => isDeepStrictEqual(await rowsOf(t), expected), { timeoutMs: WAIT.timeout });
    } catch {
      assert.deepEqual(await rowsOf(t), expected);
    }
  }
});
