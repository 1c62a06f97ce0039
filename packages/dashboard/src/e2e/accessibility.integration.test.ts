/**
 * The accessibility promise, checked in real Chromium against a real server (devices speak the device API
 * themselves; no engine): every main page and the main dialogs, at 1280×800 and 390×844, pass axe-core's WCAG 2
 * A/AA rules (colour contrast included) and its best practices (landmarks, heading order); and a main flow (sign in,
 * open a fleet, open a device, run an action through its confirmation, close a dialog with Escape) works from the
 * keyboard alone, with a visible focus indicator on every control focused and focus back on the opener after a
 * dialog. The pages keep the production CSP: axe is evaluated through the driver, never as an inline script.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import {
  DEVICE_ROUTES,
  type DeviceReport,
  USER_ROUTES,
  generateDeviceUuid,
  generateKey,
  path,
} from '@flotilla/protocol';
import { postDeviceLogs } from '@flotilla/server/testing';
import type { AxeResults, RunOptions } from 'axe-core';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, signIn, startDashboardServer } from './dashboard-server.js';
import { osReleasePusher } from './os-release-push.js';
import { watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** WCAG 2.0, 2.1 and 2.2 at levels A and AA (color-contrast is `wcag2aa`), and axe's best practices. */
const AXE_OPTIONS: RunOptions = {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  resultTypes: ['violations'],
};
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
] as const;
const OLGA = { username: 'olga', password: 'olga-password-1' };

type WithAxe = Window & { axe?: { run(context: Document, options: RunOptions): Promise<AxeResults> } };

/** One line per violation and element: what a developer needs to find and fix it. */
export function describeViolations(results: Pick<AxeResults, 'violations'>): string[] {
  return results.violations.flatMap((v) =>
    v.nodes.map(
      (node) =>
        `${v.id} (${v.impact ?? 'no impact'}) at ${node.target.join(' ')}: ${v.help}` +
        (node.failureSummary ? ` | ${node.failureSummary.replace(/\s+/g, ' ')}` : ''),
    ),
  );
}

/**
 * Runs axe on the page as it is now and returns its violations as lines. WARNING: `addScriptTag({ content })` would
 * be an inline script, which the page's CSP refuses (and reports); evaluating the source through the DevTools
 * protocol is outside the page's script-src, like any driver call. INVARIANT: the CSP stays on (the watched page
 * fails on any violation), so what is audited is what users get.
 */
async function audit(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => typeof (window as WithAxe).axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(
    (options) => (window as WithAxe).axe?.run(document, options) ?? Promise.reject(new Error('axe is not loaded')),
    AXE_OPTIONS,
  );
  return describeViolations(results);
}

interface Focused {
  tag: string;
  /** Its label (aria-label, <label>) or text, whitespace folded. */
  name: string;
  /** An outline or a box shadow is drawn around it. */
  indicated: boolean;
}

/** The focused element, or null when nothing (the body) has focus. */
const focused = (page: Page): Promise<Focused | null> =>
  page.evaluate(() => {
    const el = document.activeElement;
    if (!(el instanceof HTMLElement) || el === document.body) return null;
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && Number.parseFloat(style.outlineWidth) > 0;
    const labels = (el as HTMLInputElement).labels;
    const name = el.getAttribute('aria-label') ?? labels?.[0]?.textContent ?? el.textContent ?? '';
    return {
      tag: el.tagName.toLowerCase(),
      name: name.replace(/\s+/g, ' ').trim(),
      indicated: outline || style.boxShadow !== 'none',
    };
  });

/**
 * Presses `key` (Tab or Shift+Tab) until the focused control's name matches, at most `max` times; every control
 * passed on the way must show a focus indicator. Returns the names of the controls passed (the last is the match).
 */
async function tabTo(page: Page, name: string | RegExp, key: 'Tab' | 'Shift+Tab' = 'Tab', max = 60): Promise<string[]> {
  const passed: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    const now = await focused(page);
    if (!now) continue;
    assert.ok(now.indicated, `no visible focus indicator on <${now.tag}> "${now.name}"`);
    passed.push(now.name);
    if (typeof name === 'string' ? now.name === name : name.test(now.name)) return passed;
  }
  assert.fail(`${String(name)} not reached in ${max} presses of ${key}; passed: ${passed.join(' | ')}`);
}

describe('the dashboard is accessible: axe on every page, and a main flow by keyboard alone', { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let slug = '';
  let uuid = '';
  let deviceKey = '';
  let releaseId = 0;
  let releaseVersion = '';
  const timings: Record<string, number> = {};
  /** Controls the keyboard walk went through on the device page, all round. */
  let tabStops = 0;

  const deviceCall = async (route: { method: string; path: string }, body: unknown) => {
    const response = await fetch(`${world.url}${path(route.path, {})}`, {
      method: route.method,
      headers: { authorization: `Bearer ${deviceKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.ok(response.ok, `${route.method} ${route.path}: ${response.status} ${await response.text()}`);
  };

  before(async () => {
    world = await startDashboardServer('dash-a11y');
    const { api } = world;
    await api.call(USER_ROUTES.createUser, { body: OLGA });
    await api.call(USER_ROUTES.invite, {
      params: { org: 'default' },
      body: { username: OLGA.username, role: 'member' },
    });
    const olga = world.apiAs((await api.call(USER_ROUTES.login, { body: OLGA })).token);
    const [invitation] = (await olga.call(USER_ROUTES.listInvitations)).items;
    assert.ok(invitation, 'olga is invited');
    await olga.call(USER_ROUTES.acceptInvitation, { params: { id: String(invitation.id) } });
    // A pending invitation for the admin, so the organizations page shows its invitations section too.
    await api.call(USER_ROUTES.createOrganization, { body: { name: 'Lab', handle: 'lab' } });
    await api.call(USER_ROUTES.invite, {
      params: { org: 'lab' },
      body: { username: world.admin.username, role: 'admin' },
    });
    await api.call(USER_ROUTES.createApiKey, { body: { name: 'ci deploys' } });
    const fleet = await api.call(USER_ROUTES.createFleet, { body: { name: 'North', slug: 'north' } });
    slug = fleet.slug;
    await api.call(USER_ROUTES.createFleet, { body: { name: 'South', slug: 'south' } });
    const provisioning = await api.call(USER_ROUTES.createProvisioningKey, { params: { slug }, body: {} });
    uuid = generateDeviceUuid();
    deviceKey = generateKey();
    const registered = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ application: fleet.id, uuid, device_type: 'generic-amd64', api_key: deviceKey }),
    });
    assert.equal(registered.status, 201, await registered.text());
    await api.call(USER_ROUTES.updateDevice, { params: { uuid }, body: { name: 'pump-1' } });
    await api.call(USER_ROUTES.setDeviceTag, { params: { uuid }, body: { key: 'site', value: 'harbour' } });
    const release = await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: { services: { web: { build: '.', environment: { GREETING: 'hello' } } } },
        images: { web: 'registry.local/north/web:1' },
        status: 'success',
        notes: 'First release',
      },
    });
    releaseId = release.id;
    releaseVersion = release.version;
    const report: DeviceReport = {
      status: 'Idle',
      os_version: 'balenaOS 6.0.0',
      supervisor_version: '0.1.0',
      ip_address: '192.168.1.20 10.0.0.4',
      mac_address: '02:42:ac:11:00:02',
      cpu_usage: 12,
      cpu_temp: 48,
      memory_usage: 512,
      memory_total: 2048,
      storage_usage: 3000,
      storage_total: 16000,
      // A host OS update under way: the device page's Host OS section shows its progress bar.
      os_update: { phase: 'writing', version: '1.1.0', progress: 40, error_code: null, error: null },
      apps: {
        [String(fleet.id)]: {
          releases: {
            [release.commit]: { services: { web: { image: 'registry.local/north/web:1', status: 'Running' } } },
          },
        },
      },
    };
    await deviceCall(DEVICE_ROUTES.reportState, { [uuid]: report });
    // Every colour a log line can take (ansi.ts's classes, dim too, on each background), an error line and a system
    // line: their contrast on the log's dark background is audited like the rest.
    const ansi = [30, 31, 32, 33, 34, 35, 36, 37, 90, 91, 92, 93, 94, 95, 96, 97].map(
      (fg) => `\u001b[${fg}mfg ${fg}\u001b[0m`,
    );
    const dim = [30, 90, 37].map((fg) => `\u001b[2;${fg}mdim ${fg}\u001b[0m`);
    const bg = [40, 41, 42, 43, 44, 45, 46, 47, 100, 107].map((n) => `\u001b[${n}mbg ${n}\u001b[0m`);
    await postDeviceLogs(world.url, uuid, deviceKey, [
      { message: 'listening on :80', timestamp: Date.now(), serviceName: 'web' },
      { message: `colours ${ansi.join(' ')}`, timestamp: Date.now(), serviceName: 'web' },
      { message: `dim ${dim.join(' ')} on ${bg.join(' ')}`, timestamp: Date.now(), serviceName: 'web' },
      { message: 'warning: low disk', timestamp: Date.now(), serviceName: 'web', isStdErr: true },
      { message: 'Service started', timestamp: Date.now(), isSystem: true },
    ]);
    // More devices, one in each state a badge shows: updating, failed, offline (never reported).
    for (const [name, state] of [
      ['pump-2', { status: 'Updating' }],
      ['pump-3', { status: 'Update failed', update_failed: true }],
      ['pump-4', null],
    ] as const) {
      const other = { uuid: generateDeviceUuid(), key: generateKey() };
      const made = await fetch(`${world.url}${DEVICE_ROUTES.register.path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${provisioning.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          application: fleet.id,
          uuid: other.uuid,
          device_type: 'generic-amd64',
          api_key: other.key,
        }),
      });
      assert.equal(made.status, 201, await made.text());
      await api.call(USER_ROUTES.updateDevice, { params: { uuid: other.uuid }, body: { name } });
      if (state) {
        const response = await fetch(`${world.url}${DEVICE_ROUTES.reportState.path}`, {
          method: DEVICE_ROUTES.reportState.method,
          headers: { authorization: `Bearer ${other.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ [other.uuid]: state }),
        });
        assert.equal(response.status, 200, await response.text());
      }
    }
    // A failed release beside the good one: the releases list shows both badges.
    await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: {
        composition: { services: { web: { build: '.' } } },
        images: { web: 'registry.local/north/web:2' },
        status: 'failed',
      },
    });
    // A staged rollout of a release still building (so no device is moved): the fleet page's notice of it and the
    // rollout page, its tables and its abort dialog are audited too.
    const staged = await api.call(USER_ROUTES.createRelease, {
      params: { slug },
      body: { composition: { services: { web: { build: '.' } } }, images: { web: 'registry.local/north/web:3' } },
    });
    await api.call(USER_ROUTES.createRollout, { params: { slug }, body: { release: staged.id, batches: [50, 100] } });
    await api.call(USER_ROUTES.setFleetEnv, { params: { slug }, body: { name: 'GREETING', value: 'hi' } });
    await api.call(USER_ROUTES.setFleetConfig, { params: { slug }, body: { name: 'FLOTILLA_POLL', value: '60' } });
    await api.call(USER_ROUTES.setDeviceEnv, { params: { uuid }, body: { name: 'GREETING', value: 'hey' } });
    // OS releases for the OS releases page and the fleet's and the device's Host OS pickers (two organizations: the
    // page shows its organization filter and column).
    const pushOs = await osReleasePusher(world);
    await pushOs('generic-amd64', '1.0.0');
    await pushOs('raspberrypi4-64', '2.0.0');
    // A staged OS rollout, so the fleet page's Host OS section shows it (facts, controls, batches, events) to axe.
    await api.call(USER_ROUTES.createOsRollout, { params: { slug }, body: { version: '1.0.0', batches: [50, 100] } });
    browser = await launchChromium();
  });
  after(async () => {
    console.log(
      `# dashboard accessibility e2e timings (ms): ${JSON.stringify(timings)}; device page: ${tabStops} tab stops`,
    );
    await browser?.close();
    await world?.close();
  });

  for (const viewport of VIEWPORTS) {
    test(`every main page and dialog passes axe at ${viewport.width}×${viewport.height}`, async () => {
      const started = performance.now();
      const watch = await watchPage(browser, viewport);
      const { page } = watch;
      const found: string[] = [];
      const check = async (name: string) => {
        for (const line of await audit(page)) found.push(`${name}: ${line}`);
        // Fits the screen: nothing makes the page scroll sideways (wide tables scroll inside their own box).
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        if (wide > viewport.width) found.push(`${name}: the page is ${wide} px wide on a ${viewport.width} px screen`);
      };
      /** Opens a dialog, audits the page under it, and closes it with Cancel. */
      const checkDialog = async (name: string, open: Locator) => {
        await open.click();
        const dialog = page.getByRole('dialog');
        await dialog.waitFor();
        await check(name);
        await dialog.getByRole('button', { name: 'Cancel' }).click();
        await dialog.waitFor({ state: 'detached' });
      };
      const visit = async (url: string, ready: Locator) => {
        await page.goto(`${world.url}${url}`, { waitUntil: 'load' });
        await ready.waitFor({ timeout: 15_000 });
      };
      try {
        await visit('/sign-in', page.getByRole('heading', { name: 'Sign in to Flotilla' }));
        await check('sign-in');
        await page.getByLabel('Username').fill(world.admin.username);
        await page.getByLabel('Password').fill('not the password');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('alert').waitFor();
        await check('sign-in refused');
        await signIn(page, world.url, world.admin.username, world.admin.password);
        await visit('/fleets', page.getByText('4 in all'));
        await check('fleets');
        await checkDialog(
          'delete-fleet dialog',
          page
            .locator('table.data tbody tr')
            .filter({ hasText: 'South' })
            .getByRole('button', { name: /^Delete/ }),
        );
        await visit(`/fleets/${slug}`, page.locator('.device-table').getByRole('link', { name: 'pump-1' }));
        await page.getByText('Live', { exact: true }).waitFor();
        await page.getByText(/^Staged rollout running/).waitFor();
        await page.getByRole('form', { name: 'Set the fleet’s maintenance window' }).waitFor();
        await check('fleet devices');
        await page.getByText('Add a device: download a config.json').click();
        await page.getByLabel('Hostname').waitFor();
        await check('fleet devices, config.json form open');
        const fleetOs = page.getByRole('region', { name: 'Host OS' });
        await fleetOs.getByLabel('OS release').locator('option[value="1.0.0"]').waitFor({ state: 'attached' });
        await fleetOs.getByLabel('OS release').selectOption('1.0.0');
        await checkDialog('fleet OS dialog', fleetOs.getByRole('button', { name: 'Install on the fleet…' }));
        await visit(`/devices/${uuid}`, page.getByText('listening on :80'));
        await page.getByText('Running').first().waitFor();
        await page.getByRole('progressbar', { name: 'Image written' }).waitFor();
        await check('device');
        // An action's result line (pending: the device is not connected), and the status colours of the others.
        await page.getByRole('button', { name: 'Identify', exact: true }).click();
        await page
          .locator('.action-results li')
          .filter({ hasText: /^Identify: / })
          .waitFor();
        await check('device with an action result');
        await checkDialog('reboot dialog', page.getByRole('button', { name: 'Reboot', exact: true }));
        await checkDialog('delete-device dialog', page.getByRole('button', { name: 'Delete device' }));
        await visit(`/fleets/${slug}/rollout`, page.getByRole('rowheader', { name: 'pump-1' }));
        await page.getByText('Running · waiting for the release to build').waitFor();
        await check('rollout');
        await checkDialog('abort-rollout dialog', page.getByRole('button', { name: 'Abort…' }));
        await visit(`/fleets/${slug}/releases`, page.getByRole('link', { name: releaseVersion, exact: true }));
        await check('releases');
        await visit(`/releases/${releaseId}`, page.locator('pre.composition'));
        await check('release');
        await checkDialog('pin-fleet dialog', page.getByRole('button', { name: 'Pin the fleet to this release' }));
        await visit(`/fleets/${slug}/variables`, page.getByRole('button', { name: 'Edit GREETING' }));
        await check('fleet variables');
        await checkDialog('delete-variable dialog', page.getByRole('button', { name: 'Delete GREETING' }));
        await visit(`/fleets/${slug}/configuration`, page.getByRole('rowheader', { name: 'FLOTILLA_POLL' }));
        await check('fleet configuration');
        await visit(`/devices/${uuid}/variables`, page.getByText('hey').first());
        await check('device variables');
        await visit('/os-releases', page.getByRole('rowheader', { name: '2.0.0' }));
        await check('OS releases');
        await visit('/organizations', page.getByRole('rowheader', { name: 'ci deploys' }));
        await page.getByRole('rowheader', { name: OLGA.username, exact: true }).waitFor();
        await page.getByText('Invitations for you').waitFor();
        await check('organizations');
        await checkDialog(
          'revoke-key dialog',
          page
            .locator('table.data tbody tr')
            .filter({ hasText: 'ci deploys' })
            .getByRole('button', { name: /^Revoke/ }),
        );
        assert.deepEqual(found, [], `axe found ${found.length} violations:\n${found.join('\n')}`);
        assert.deepEqual(await watch.violations(), [], 'the CSP stayed on and nothing broke it');
        assert.deepEqual(watch.problems, []);
        // The session check before signing in is refused (401), once for each sign-in page load; so is the wrong
        // password.
        assert.deepEqual(
          new Set(watch.failedResponses),
          new Set(['401 GET /api/v1/auth/csrf', `401 POST ${USER_ROUTES.browserLogin.path}`]),
        );
      } finally {
        timings[`axe ${viewport.width}`] = Math.round(performance.now() - started);
        await watch.close();
      }
    });
  }

  test('a main flow by keyboard alone: sign in, a fleet, a device, an action confirmed, a dialog left by Escape', async () => {
    const started = performance.now();
    const watch = await watchPage(browser, { width: 1280, height: 800 });
    const { page } = watch;
    try {
      await page.goto(`${world.url}/sign-in`, { waitUntil: 'load' });
      await page.getByRole('heading', { name: 'Sign in to Flotilla' }).waitFor();
      await tabTo(page, 'Username');
      await page.keyboard.type(world.admin.username);
      await tabTo(page, 'Password');
      await page.keyboard.type(world.admin.password);
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      await page.getByRole('link', { name: 'North', exact: true }).waitFor();

      await tabTo(page, 'North');
      await page.keyboard.press('Enter');
      await page.locator('.device-table').getByRole('link', { name: 'pump-1' }).waitFor();
      await page.getByText('Live', { exact: true }).waitFor();
      await tabTo(page, 'pump-1');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'pump-1', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Reboot', exact: true }).waitFor();

      // An action that asks first: Space opens its dialog, Enter on its button confirms, focus comes back.
      await tabTo(page, 'Reboot');
      await page.keyboard.press(' ');
      const dialog = page.getByRole('dialog');
      await dialog.getByRole('heading', { name: 'Reboot pump-1?' }).waitFor();
      await tabTo(page, 'Reboot');
      assert.equal(
        await dialog.getByRole('button', { name: 'Reboot' }).evaluate((el) => el === document.activeElement),
        true,
      );
      await page.keyboard.press('Enter');
      await dialog.waitFor({ state: 'detached' });
      await page
        .locator('.action-results li')
        .filter({ hasText: /^Reboot: / })
        .waitFor();
      assert.deepEqual(
        await focused(page),
        { tag: 'button', name: 'Reboot', indicated: true },
        'focus is back on Reboot',
      );
      const actions = await world.api.call(USER_ROUTES.listDeviceActions, { params: { uuid } });
      // The page audits ran Identify; this flow's one is the only reboot.
      assert.equal(actions.items.filter((a) => a.action === 'reboot').length, 1);

      // Escape leaves a dialog without acting, and focus returns to the button that opened it.
      await tabTo(page, 'Delete device');
      await page.keyboard.press('Enter');
      await dialog.getByRole('heading', { name: 'Delete device pump-1?' }).waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.deepEqual(await focused(page), { tag: 'button', name: 'Delete device', indicated: true });
      // Shift+Tab walks back through the page, every stop drawn, to the first action.
      await tabTo(page, 'Identify', 'Shift+Tab');
      await page.keyboard.press('Enter');
      await page
        .locator('.action-results li')
        .filter({ hasText: /^Identify: / })
        .waitFor();
      // The rest of the page forward, round to its first stop (the skip link) and on to the actions again: every
      // control of the device page (log controls, services, settings, move, delete) is reached and draws its focus.
      const round = [
        ...(await tabTo(page, 'Skip to content', 'Tab', 200)),
        ...(await tabTo(page, 'Identify', 'Tab', 200)),
      ];
      tabStops = round.length;
      // The skip link takes focus past the navigation, to the page's main content.
      await tabTo(page, 'Skip to content', 'Shift+Tab', 200);
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
      assert.deepEqual(await watch.violations(), []);
      assert.deepEqual(watch.problems, []);
      assert.deepEqual(watch.failedResponses, ['401 GET /api/v1/auth/csrf']);
    } finally {
      timings.keyboard = Math.round(performance.now() - started);
      await watch.close();
    }
  });

  test('the audit can fail: an unlabelled field and grey-on-white text planted in a page are reported', async () => {
    const watch = await watchPage(browser, { width: 1280, height: 800 });
    try {
      await watch.page.goto(`${world.url}/sign-in`, { waitUntil: 'load' });
      await watch.page.getByRole('heading', { name: 'Sign in to Flotilla' }).waitFor();
      await watch.page.evaluate(() => {
        const form = document.querySelector('form');
        const input = document.createElement('input');
        const faint = document.createElement('p');
        faint.textContent = 'faint words';
        faint.style.color = '#c8c8c8';
        faint.style.background = '#ffffff';
        form?.append(input, faint);
      });
      const found = await audit(watch.page);
      assert.ok(
        found.some((line) => line.startsWith('label (critical) at ')),
        found.join('\n'),
      );
      assert.ok(
        found.some((line) => line.startsWith('color-contrast (serious) at ')),
        found.join('\n'),
      );
    } finally {
      await watch.close();
    }
  });
});
