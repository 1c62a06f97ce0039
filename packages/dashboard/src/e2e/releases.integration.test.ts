/**
 * Issue 13, releases and provisioning, in real Chromium against a real server, a real agent on the local Docker
 * engine and the real CLI: the fleet's releases list says who deployed each and what its images weigh (checked
 * against the bytes the registry serves); a release's page shows its services, images and composition; pinning the
 * fleet from it brings the device back to that release, a device is pinned and unpinned from it, and the fleet is
 * unpinned; the fleet page downloads a config.json that parses as one and names the fleet, its secret kept out of
 * the page. Screenshots: releases-1280.png, release-1280.png, release-390.png, config-json-1280.png.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { USER_ROUTES, configJsonSchema, formatBytes } from '@flotilla/protocol';
import { basicAuth } from '@flotilla/server/testing';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, short, signIn, startDashboardServer } from './dashboard-server.js';
import { type DeployedRelease, type RealDevice, startRealDevice } from './real-device.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { assertClean, type PageWatch, watchPage } from './watched-page.js';

const skip = chromiumSkipReason();
/** A deploy or a pin is a build, a push, a pull and a start: generous, but bounded. */
const CONVERGE_MS = 90_000;
const SHOWN_MS = 10_000;
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

describe("a fleet's releases and provisioning in the dashboard", { skip }, () => {
  let world: DashboardServer;
  let browser: Browser;
  let watch: PageWatch;
  let page: Page;
  let device: RealDevice;
  let slug = '';
  let first: DeployedRelease;
  let second: DeployedRelease;
  /** Every console message of the page, whatever its level: the provisioning key must be in none. */
  const consoleText: string[] = [];

  before(async () => {
    world = await startDashboardServer('dash-releases');
    const fleet = await world.api.call(USER_ROUTES.createFleet, { body: { name: 'Orchard gates' } });
    slug = fleet.slug;
    device = await startRealDevice(world, slug, 'dashrel');
    first = await device.deploy('one');
    second = await device.deploy('two');
    browser = await launchChromium();
    watch = await watchPage(browser, { width: 1280, height: 800 });
    page = watch.page;
    page.on('console', (message) => consoleText.push(message.text()));
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await signIn(page, world.url, world.admin.username, world.admin.password);
    assert.deepEqual(new Set(watch.failedResponses.splice(0)), new Set(['401 GET /api/v1/auth/csrf']));
  });
  after(async () => {
    await watch?.close();
    await browser?.close();
    await device?.close();
    await world?.close();
  });

  /** The bytes the registry serves for an image's config and layers, read from its manifest over HTTP. */
  const registryBytes = async (image: string): Promise<number> => {
    const match = /^[^/]+\/(.+)@(sha256:[0-9a-f]{64})$/.exec(image);
    assert.ok(match, image);
    const [, repository, digest] = match;
    const authorization = basicAuth(world.admin.username, world.admin.apiKey);
    const res = await fetch(`${world.url}/v2/${repository}/manifests/${digest}`, {
      headers: { authorization, accept: MANIFEST_TYPES },
    });
    assert.equal(res.status, 200);
    const manifest = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
    let total = 0;
    for (const blob of [manifest.config, ...manifest.layers]) {
      const head = await fetch(`${world.url}/v2/${repository}/blobs/${blob.digest}`, {
        method: 'HEAD',
        headers: { authorization },
      });
      assert.equal(head.status, 200);
      total += Number(head.headers.get('content-length'));
    }
    return total;
  };

  test("the fleet's releases: version, commit, status, who deployed, services and sizes", async () => {
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByRole('heading', { name: 'Orchard gates' }).waitFor();
    await page.locator('.fleet-facts').getByRole('link', { name: 'Releases' }).click();
    await page.getByRole('heading', { name: 'Releases' }).waitFor();
    const rows = page.locator('table.releases-table tbody tr');
    await rows.nth(1).waitFor({ timeout: SHOWN_MS });
    assert.equal(await rows.count(), 2);

    const { items } = await world.api.call(USER_ROUTES.listFleetReleases, { params: { slug } });
    for (const [index, deployed] of [second, first].entries()) {
      const release = items.find((r) => r.commit === deployed.commit);
      assert.ok(release);
      const web = release.services.find((s) => s.name === 'web');
      assert.ok(web?.imageSize, 'the registry holds the image, so its size is known');
      // The size shown is what the registry serves for the image, measured apart from the server's own reading.
      assert.equal(web.imageSize, await registryBytes(web.image));
      const row = rows.nth(index);
      const cells = async (label: string) => (await row.locator(`td[data-label="${label}"]`).textContent())?.trim();
      assert.equal(await row.getByRole('link').textContent(), deployed.version);
      assert.equal(await cells('Commit'), short(deployed.commit));
      assert.equal(await cells('Status'), 'Success');
      assert.equal(await cells('Deployed by'), world.admin.username);
      assert.equal(await cells('Services'), `web ${formatBytes(web.imageSize)}`);
      assert.equal(await cells('Size'), formatBytes(web.imageSize));
      console.log(`# release ${deployed.version}: web image ${web.imageSize} bytes`);
    }
    // The newest release is what the devices run (no pin yet).
    await rows.nth(0).getByText('devices run it').waitFor();
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'releases-1280.png') });
    await assertClean(watch);
  });

  test("a release's page: its facts, services with image and size, and its composition", async () => {
    await page.getByRole('link', { name: first.version, exact: true }).click();
    await page.getByRole('heading', { name: `Release ${first.version}` }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/releases/${first.id}`);
    const fact = (term: string) =>
      page
        .locator('.release-main .fact')
        .filter({ has: page.locator('dt', { hasText: term }) })
        .locator('dd');
    assert.equal(await fact('Commit').textContent(), first.commit);
    assert.equal(await fact('Deployed by').textContent(), world.admin.username);
    assert.equal(await fact('Status').textContent(), 'Success');
    const release = await world.api.call(USER_ROUTES.getRelease, { params: { ref: String(first.id) } });
    const web = release.services[0];
    assert.ok(web?.imageSize);
    const service = page.locator('.release-main table tbody tr').filter({ hasText: 'web' });
    assert.equal(await service.locator('td[data-label="Image"]').textContent(), web.image);
    assert.equal(await service.locator('td[data-label="Size"]').textContent(), formatBytes(web.imageSize));
    const composition = page.locator('pre.composition');
    await composition.waitFor();
    // The CLI built the service from `build: web` and recorded the pushed image in the composition.
    const text = (await composition.textContent()) ?? '';
    assert.match(text, /^services:\n {2}web:\n/);
    assert.match(text, /\n {4}build: web\n/);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'release-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('heading', { name: 'Pin a device' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the release page is ${overflow} px wider than a 390 px screen`);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'release-390.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await assertClean(watch);
  });

  test('pin the fleet to this release: the device goes back to it; pin and unpin a device; unpin the fleet', async () => {
    const fleetPin = page.locator('section', { has: page.getByRole('heading', { name: 'Fleet Orchard gates' }) });
    await fleetPin.getByText('The fleet follows its latest successful release.').waitFor();
    await page.getByRole('button', { name: 'Pin the fleet to this release' }).click();
    const dialog = page.getByRole('dialog', { name: `Pin fleet Orchard gates to ${first.version}?` });
    await dialog.getByRole('button', { name: 'Pin the fleet' }).click();
    await dialog.waitFor({ state: 'detached' });
    await fleetPin.getByText(`The fleet is pinned to ${first.version}.`).waitFor({ timeout: SHOWN_MS });
    await fleetPin.getByText('The fleet is pinned to this release').waitFor();
    assert.equal((await world.api.call(USER_ROUTES.getFleet, { params: { slug } })).pinnedRelease, first.commit);
    const started = performance.now();
    await waitFor(
      'the device to run release one again',
      async () => {
        const shown = await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } });
        return shown.targetRelease === first.commit && shown.runningRelease === first.commit;
      },
      { timeoutMs: CONVERGE_MS, intervalMs: 250 },
    );
    console.log(`# fleet pinned: device back on release one in ${Math.round(performance.now() - started)} ms`);

    // A device, pinned from the same page to the second release, then left to follow its (pinned) fleet again.
    await page.goto(`${world.url}/releases/${second.id}`, { waitUntil: 'load' });
    await page.getByRole('heading', { name: `Release ${second.version}` }).waitFor();
    const choice = page.getByLabel('Device', { exact: true });
    await choice.locator(`option[value="${device.uuid}"]`).waitFor({ state: 'attached', timeout: SHOWN_MS });
    await page.getByLabel('Find a device').fill(short(device.uuid));
    await choice.locator(`option[value="${device.uuid}"]`).waitFor({ state: 'attached', timeout: SHOWN_MS });
    const name = (await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } })).name;
    await page.getByRole('button', { name: 'Pin the device to this release' }).click();
    await page.getByText(`${name}: Pinned.`, { exact: true }).waitFor({ timeout: SHOWN_MS });
    let shown = await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } });
    assert.equal(shown.pinnedRelease, second.commit);
    assert.equal(shown.targetRelease, second.commit);
    await page.getByRole('button', { name: 'Unpin the device' }).click();
    await page.getByText(`${name}: Follows the fleet.`, { exact: true }).waitFor({ timeout: SHOWN_MS });
    shown = await world.api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } });
    assert.equal(shown.pinnedRelease, null);
    assert.equal(shown.targetRelease, first.commit, 'back to the fleet, which is pinned to release one');

    // Unpinning the fleet, from this page too: devices follow the latest release again.
    await page.getByText(`The fleet is pinned to another release (${short(first.commit)}).`).waitFor();
    await page.getByRole('button', { name: 'Unpin the fleet' }).click();
    await page
      .getByRole('dialog', { name: 'Unpin fleet Orchard gates?' })
      .getByRole('button', { name: 'Unpin the fleet' })
      .click();
    await page.getByText('The fleet follows its latest successful release.', { exact: true }).first().waitFor();
    const fleet = await world.api.call(USER_ROUTES.getFleet, { params: { slug } });
    assert.equal(fleet.pinnedRelease, null);
    assert.equal(fleet.targetRelease?.commit, second.commit);
    await assertClean(watch);
  });

  test("the fleet page downloads a new device's config.json, as `flotilla os config` makes it", async () => {
    const keysBefore = (await world.api.call(USER_ROUTES.listProvisioningKeys, { params: { slug } })).items.length;
    await page.goto(`${world.url}/fleets/${slug}`, { waitUntil: 'load' });
    await page.getByText('Add a device: download a config.json').click();
    await page.getByLabel('Hostname').fill('gate-7');
    await page.getByLabel('Poll interval (s)').fill('60');
    await page.getByLabel('Keep logs across reboots').check();
    await page.locator('details.provisioning').screenshot({ path: join(SCREENSHOT_DIR, 'config-json-1280.png') });
    const downloading = page.waitForEvent('download', { timeout: SHOWN_MS });
    await page.getByRole('button', { name: 'Download config.json' }).click();
    const download = await downloading;
    assert.equal(download.suggestedFilename(), 'config.json');
    const file = join(world.dir, 'downloaded-config.json');
    await download.saveAs(file);
    const config = configJsonSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    assert.equal(config.applicationName, slug);
    assert.equal(config.hostname, 'gate-7');
    assert.equal(config.appUpdatePollInterval, 60_000);
    assert.equal(config.persistentLogging, true);
    assert.equal(config.developmentMode, false);
    assert.equal(config.apiEndpoint, world.url);
    const key = config.provisioningApiKey;
    assert.ok(key);
    await page.getByText('config.json for fleet Orchard gates downloaded.', { exact: false }).waitFor();
    const keysAfter = (await world.api.call(USER_ROUTES.listProvisioningKeys, { params: { slug } })).items;
    assert.equal(keysAfter.length, keysBefore + 1, 'a new provisioning key for the file');

    // The secret went to the file only: not in the page, its storage or its console.
    const kept = await page.evaluate(
      (secret) => ({
        dom: document.documentElement.outerHTML.includes(secret),
        storage: JSON.stringify({ ...sessionStorage, ...localStorage }).includes(secret),
        links: [...document.querySelectorAll('a')].filter((a) => a.href.startsWith('blob:')).length,
      }),
      key,
    );
    assert.deepEqual(kept, { dom: false, storage: false, links: 0 });
    assert.equal(consoleText.filter((line) => line.includes(key)).length, 0);
    await assertClean(watch);
  });
});
