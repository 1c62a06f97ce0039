/**
 * Every user- or device-controlled string the dashboard shows is text, never markup: `<script>` and `<img onerror>`
 * payloads are planted through the user API and the device endpoints of a real server (each field with its own
 * label), every page that shows them is opened (and the dialogs that repeat a name), some arrive live through the
 * event streams while a page is open, and each page must show the payload as text with nothing run: no
 * `window.__xss`, no <img> or inline <script> in the document, no dialog, no CSP violation, no error.
 *
 * Release versions, commits, usernames, slugs, compose service names and variable names cannot hold markup (the
 * protocol's schemas refuse it); a release's notes, images and composition values (environment, labels, command),
 * and variable values (fleet and device, environment and configuration, one line and many) can, and are planted.
 * Organization and fleet names are also checked where the members work shows them: a pending invitation (and the
 * answer to accepting it), and the device page's move picker. A host OS update's version, reason and code, as the
 * device reports them, are planted too (the device page's Host OS section); an OS release's version and device type
 * cannot hold markup.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEVICE_ROUTES,
  type DeviceLogLine,
  type DeviceReport,
  USER_ROUTES,
  generateDeviceUuid,
  generateKey,
  path,
} from '@flotilla/protocol';
import { postDeviceLogs } from '@flotilla/server/testing';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, signIn, startDashboardServer } from './dashboard-server.js';
import { type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
const SCRIPT = '<script>window.__xss=1</script>';
const IMG = '<img src=x onerror="window.__xss=1">';
/** The payload planted in one field, labelled so the test can tell which field it sees. */
const planted = (field: string) => `${field} ${SCRIPT} ${IMG}`;
/** For fields of at most 63 characters (a log line's service name). */
const plantedShort = (field: string) => `${field} ${IMG}`;

const P = {
  organization: planted('org'),
  fleet: planted('fleet'),
  otherFleet: planted('second'),
  fleetType: planted('ftype'),
  deviceType: planted('dtype'),
  device: planted('device'),
  renamedLive: planted('renamed'),
  tagKey: planted('tkey'),
  tagValue: planted('tvalue'),
  userTagKey: planted('ukey'),
  userTagValue: planted('uvalue'),
  status: planted('status'),
  statusLive: planted('live'),
  os: planted('os'),
  variant: planted('variant'),
  agent: planted('agent'),
  ip: planted('ip'),
  mac: planted('mac'),
  service: plantedShort('svc'),
  image: planted('image'),
  serviceStatus: planted('sstatus'),
  logService: plantedShort('lsvc'),
  apiKey: planted('key'),
  fleetEnv: planted('fenv'),
  fleetConfig: planted('fconf'),
  deviceEnv: planted('denv'),
  deviceConfig: planted('dconf'),
  /** Many lines: shown by its start, the whole value one click away. */
  multiLine: `mline\n${SCRIPT}\n${IMG}`,
  releaseNotes: planted('notes'),
  releaseImage: planted('rimage'),
  envValue: planted('envval'),
  label: planted('label'),
  command: planted('command'),
  rolloutFailure: planted('rfail'),
  osUpdateVersion: planted('osver'),
  osError: planted('oserr'),
  osErrorCode: planted('oscode'),
};
/** A log line with ANSI colours around HTML, as `docker logs` of a hostile service would give it. */
const LOG_LINE = `\u001b[1;31mlog ${SCRIPT}\u001b[0m plain ${IMG} <b>not bold</b>`;
const LOG_TEXT = `log ${SCRIPT} plain ${IMG} <b>not bold</b>`;
const LOG_LIVE = `\u001b[32mlive ${IMG}\u001b[0m`;

type Probed = Window & { __xss?: unknown };

describe('the dashboard renders planted markup as text and runs none of it', { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  let slug = '';
  let uuid = '';
  let deviceKey = '';
  let releaseId = 0;
  let releaseVersion = '';

  const deviceCall = async (route: { method: string; path: string }, params: Record<string, string>, body: unknown) => {
    const response = await fetch(`${world.url}${path(route.path, params)}`, {
      method: route.method,
      headers: { authorization: `Bearer ${deviceKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.ok(response.ok, `${route.method} ${route.path}: ${response.status} ${await response.text()}`);
  };
  const report = (body: DeviceReport) => deviceCall(DEVICE_ROUTES.reportState, {}, { [uuid]: body });
  const log = async (lines: DeviceLogLine[]) =>
    assert.equal(await postDeviceLogs(world.url, uuid, deviceKey, lines), 201);

  before(async () => {
    world = await startDashboardServer('dash-xss');
    const { api } = world;
    await api.call(USER_ROUTES.createOrganization, { body: { name: P.organization, handle: 'xss-org' } });
    const fleet = await api.call(USER_ROUTES.createFleet, {
      body: { name: P.fleet, slug: 'xss-fleet', deviceType: P.fleetType, organization: 'xss-org' },
    });
    slug = fleet.slug;
    // A second fleet of the organization: offered by name in the device page's move picker.
    await api.call(USER_ROUTES.createFleet, {
      body: { name: P.otherFleet, slug: 'xss-fleet-2', deviceType: P.fleetType, organization: 'xss-org' },
    });
    // An invitation shows the organization's name to its invitee (here the admin, invited again as admin).
    await api.call(USER_ROUTES.invite, {
      params: { org: 'xss-org' },
      body: { username: world.admin.username, role: 'admin' },
    });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    uuid = generateDeviceUuid();
    deviceKey = generateKey();
    const registered = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ application: fleet.id, uuid, device_type: P.deviceType, api_key: deviceKey }),
    });
    assert.equal(registered.status, 201, await registered.text());
    await api.call(USER_ROUTES.updateDevice, { params: { uuid }, body: { name: P.device } });
    await api.call(USER_ROUTES.setDeviceTag, { params: { uuid }, body: { key: P.userTagKey, value: P.userTagValue } });
    await deviceCall(DEVICE_ROUTES.reportTags, {}, { [uuid]: { [P.tagKey]: P.tagValue } });
    await report({
      status: P.status,
      os_version: P.os,
      os_variant: P.variant,
      supervisor_version: P.agent,
      ip_address: P.ip,
      mac_address: P.mac,
      // A host OS update the device says it rolled back, with its own version, reason and code: the Host OS section.
      os_update: {
        phase: 'rolled-back',
        version: P.osUpdateVersion,
        progress: null,
        error_code: P.osErrorCode,
        error: P.osError,
      },
      apps: {
        app: {
          releases: { [IMG]: { services: { [P.service]: { image: P.image, status: P.serviceStatus } } } },
        },
      },
    });
    await log([
      { message: LOG_LINE, timestamp: Date.now(), serviceName: P.logService },
      { message: `${SCRIPT}${IMG}`, timestamp: Date.now(), isSystem: true, isStdErr: true },
    ]);
    await api.call(USER_ROUTES.createApiKey, { body: { name: P.apiKey } });
    await api.call(USER_ROUTES.setFleetEnv, { params: { slug }, body: { name: 'FLEET_VAR', value: P.fleetEnv } });
    await api.call(USER_ROUTES.setFleetEnv, { params: { slug }, body: { name: 'MULTI', value: P.multiLine } });
    await api.call(USER_ROUTES.setFleetConfig, {
      params: { slug },
      body: { name: 'FLOTILLA_XSS', value: P.fleetConfig },
    });
    await api.call(USER_ROUTES.setDeviceEnv, { params: { uuid }, body: { name: 'FLEET_VAR', value: P.deviceEnv } });
    await api.call(USER_ROUTES.setDeviceConfig, {
      params: { uuid },
      body: { name: 'BALENA_XSS', value: P.deviceConfig },
    });
    const release = await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: {
          services: {
            app: { build: '.', environment: { GREETING: P.envValue }, labels: { note: P.label }, command: P.command },
          },
        },
        images: { app: P.releaseImage },
        status: 'success',
        notes: P.releaseNotes,
      },
    });
    releaseId = release.id;
    releaseVersion = release.version;

    browser = await launchChromium();
    watch = await watchPage(browser, { width: 1280, height: 800 });
    page = watch.page;
    await signIn(page, world.url, world.admin.username, world.admin.password);
    // The session check before signing in is refused (401): how the app knows to show the form.
    assert.deepEqual(new Set(watch.failedResponses.splice(0)), new Set(['401 GET /api/v1/auth/csrf']));
  });
  after(async () => {
    await watch?.close();
    await browser?.close();
    await world?.close();
  });

  /** Each text is on screen (visible, as text), and the page ran nothing of it. */
  const assertInert = async (texts: readonly string[]) => {
    for (const text of texts) await page.getByText(text).first().waitFor({ timeout: 10_000 });
    const state = await page.evaluate(() => ({
      xss: (window as Probed).__xss,
      images: document.querySelectorAll('img').length,
      inlineScripts: [...document.scripts].filter((s) => !s.src).length,
      handlers: document.querySelectorAll('[onerror], [onload], [onclick]').length,
    }));
    assert.deepEqual(state, { xss: undefined, images: 0, inlineScripts: 0, handlers: 0 });
    assert.deepEqual(await watch.violations(), []);
    assert.deepEqual(watch.problems, []);
    assert.deepEqual(watch.failedResponses, []);
  };
  /** Opens a dialog with `open`, checks it, and closes it with Cancel. */
  const inDialog = async (open: () => Promise<void>, texts: readonly string[]) => {
    await open();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await assertInert(texts);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
  };

  test('the fleets page and the delete-fleet dialog', async () => {
    await page.goto(`${world.url}/fleets`, { waitUntil: 'load' });
    await assertInert([P.fleet, P.fleetType, P.otherFleet]);
    const row = page.locator('table.data tbody tr').filter({ hasText: P.fleet });
    await inDialog(() => row.getByRole('button', { name: /^Delete/ }).click(), [`Delete fleet ${P.fleet}?`]);
  });

  test("the fleet's device table, with a rename and a status arriving live", async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByText('Live', { exact: true }).waitFor();
    await assertInert([P.fleet, P.fleetType, P.device, P.status, P.agent, P.ip]);
    await world.api.call(USER_ROUTES.updateDevice, { params: { uuid }, body: { name: P.renamedLive } });
    await report({ status: P.statusLive });
    await assertInert([P.renamedLive, P.statusLive]);
  });

  test('the device page, its dialogs, and a log line arriving live', async () => {
    await page.locator('.device-table').getByRole('link', { name: P.renamedLive }).click();
    await page.getByRole('heading', { name: 'Actions' }).waitFor();
    const fields = [P.renamedLive, P.statusLive, P.deviceType, P.os, P.variant, P.agent, P.ip, P.mac];
    await assertInert([...fields, P.tagKey, P.tagValue, P.userTagKey, P.userTagValue]);
    await assertInert([P.service, P.image, P.serviceStatus, IMG.slice(0, 7)]);
    await assertInert([P.osUpdateVersion, P.osError, P.osErrorCode]);
    const box = page.getByRole('log', { name: 'Device log' });
    await assertInert([LOG_TEXT, P.logService, `${SCRIPT}${IMG}`]);
    // The escape codes became a style on the text around the HTML, and the HTML stayed characters.
    assert.equal(await box.locator('.log-message .ansi-bold').first().textContent(), `log ${SCRIPT}`);
    assert.equal(await box.locator('b').count(), 0);
    assert.ok((await page.getByLabel('Service').locator('option').allTextContents()).includes(P.service));
    const moveTo = await page.getByLabel('Move to fleet').locator('option').allTextContents();
    assert.ok(
      moveTo.some((text) => text.startsWith(`${P.otherFleet} (`)),
      JSON.stringify(moveTo),
    );

    await log([{ message: LOG_LIVE, timestamp: Date.now(), serviceName: P.logService }]);
    await assertInert([`live ${IMG}`]);

    await inDialog(
      () => page.getByRole('button', { name: 'Reboot', exact: true }).click(),
      [`Reboot ${P.renamedLive}?`],
    );
    await inDialog(
      () => page.getByRole('button', { name: 'Delete device' }).click(),
      [`Delete device ${P.renamedLive}?`],
    );
  });

  test("the fleet's releases, a release's page with its composition, and the pin-fleet dialog", async () => {
    await page.goto(`${world.url}/fleets/${slug}/releases`, { waitUntil: 'load' });
    await assertInert([P.fleet, releaseVersion]);
    await page.getByRole('link', { name: releaseVersion, exact: true }).click();
    await page.getByRole('heading', { name: `Release ${releaseVersion}` }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/releases/${releaseId}`);
    await page.locator('pre.composition').waitFor();
    await assertInert([P.fleet, P.releaseNotes, P.releaseImage, P.envValue, P.label, P.command]);
    const devices = page.getByLabel('Device', { exact: true });
    await devices.locator(`option[value="${uuid}"]`).waitFor({ state: 'attached' });
    assert.ok((await devices.locator('option').allTextContents()).some((t) => t.startsWith(`${P.renamedLive} (`)));
    await inDialog(
      () => page.getByRole('button', { name: 'Pin the fleet to this release' }).click(),
      [`Pin fleet ${P.fleet} to ${releaseVersion}?`],
    );
  });

  test('the fleet variables and configuration pages, the edit form and the delete dialog', async () => {
    await page.goto(`${world.url}/fleets/${slug}/variables`, { waitUntil: 'load' });
    await assertInert([P.fleet, P.fleetEnv]);
    const multi = page.locator('tbody tr').filter({ hasText: 'MULTI' });
    await multi.locator('summary').click();
    await assertInert([SCRIPT, IMG]);
    await multi.getByRole('button', { name: 'Edit MULTI' }).click();
    assert.equal(await page.getByRole('form', { name: 'Edit MULTI' }).getByLabel('Value').inputValue(), P.multiLine);
    await assertInert([]);
    await inDialog(() => multi.getByRole('button', { name: 'Delete MULTI' }).click(), ['Delete MULTI?']);
    await page.getByRole('navigation', { name: 'Fleet' }).getByRole('link', { name: 'Configuration' }).click();
    await assertInert([P.fleetConfig]);
  });

  test("the device's variables: inherited, overriding and overridden values", async () => {
    await page.goto(`${world.url}/devices/${uuid}/variables`, { waitUntil: 'load' });
    await assertInert([P.renamedLive, P.fleetConfig, P.deviceConfig]);
    await assertInert([P.fleetEnv, P.deviceEnv, P.envValue]);
    await page.getByRole('button', { name: 'Override MULTI' }).click();
    const form = page.getByRole('form', { name: 'Override MULTI on this device' });
    assert.equal(await form.getByLabel('Value').inputValue(), P.multiLine);
    await assertInert([]);
  });

  test('the organizations page and the revoke-key dialog', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Organizations' }).click();
    await assertInert([P.organization, P.apiKey]);
    const invitation = page.locator('.invitations li').filter({ hasText: P.organization });
    await invitation.getByRole('button', { name: /^Accept/ }).click();
    await assertInert([`You joined ${P.organization} as admin.`]);
    const row = page.locator('table.data tbody tr').filter({ hasText: P.apiKey });
    await inDialog(() => row.getByRole('button', { name: /^Revoke/ }).click(), [`Revoke key ${P.apiKey}?`]);
  });

  test("a staged rollout's page (the plan's tag, a device's name and the status it failed with) and its abort dialog", async () => {
    const { api } = world;
    const staged = await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: { composition: { services: { app: { build: '.' } } }, images: { app: 'registry.local/xss/app:2' } },
    });
    // The first batch is the devices with the planted user tag: the planted device.
    await api.call(USER_ROUTES.createRollout, {
      params: { slug },
      body: { release: staged.id, batches: [100], tag: { key: P.userTagKey, value: P.userTagValue } },
    });
    await api.call(USER_ROUTES.updateRelease, { params: { ref: String(staged.id) }, body: { status: 'success' } });
    await waitFor('the tagged batch to open', async () => {
      const r = await api.call(USER_ROUTES.getRollout, { params: { slug } });
      return r.batches[0]?.opened === true;
    });
    await report({ status: P.rolloutFailure, update_failed: true });
    await waitFor('the rollout to pause', async () => {
      const r = await api.call(USER_ROUTES.getRollout, { params: { slug } });
      return r.status === 'paused';
    });
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await assertInert([P.fleet, 'Staged rollout paused']);
    await page.getByRole('link', { name: 'See the rollout' }).click();
    await assertInert([P.fleet, P.renamedLive, `reported: ${P.rolloutFailure}`, `${P.userTagKey}=${P.userTagValue}`]);
    await inDialog(
      () => page.getByRole('button', { name: 'Abort…' }).click(),
      [`Abort the rollout of ${staged.version}?`],
    );
  });

  test('the checks see markup that was parsed: the same payload through innerHTML fails them', async () => {
    await page.evaluate((html) => document.querySelector('main')?.insertAdjacentHTML('beforeend', html), IMG);
    await page.waitForFunction(
      () => ((window as Window & { __cspViolations?: string[] }).__cspViolations ?? []).length,
    );
    await assert.rejects(assertInert([]), /images: 1/);
    // The CSP refused the handler (which is why __xss stays unset even then), and said so.
    assert.match((await watch.violations())[0] ?? '', /^script-src-attr/);
    assert.equal(await page.evaluate(() => (window as Probed).__xss), undefined);
  });
});
