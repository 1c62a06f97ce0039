/**
 * The web terminal end to end: a real flotilla-server serving the built dashboard, a real agent (in-process, from
 * the fleet's config.json, its own engine namespace), Chromium signed in through the form. Also the server's side
 * of the page's security: a fresh CSP nonce per index.html, and a cookie WebSocket from another origin refused; and
 * the device's public URL, turned on and off from its page.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { USER_ROUTES } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { type DashboardServer, signIn, startDashboardServer } from './dashboard-server.js';
import { type RealDevice, startRealDevice } from './real-device.js';
import { SCREENSHOT_DIR } from './screenshots.js';
import { watchPage } from './watched-page.js';

const skip = chromiumSkipReason();

let world: DashboardServer | undefined;
let device: RealDevice | undefined;
let browser: Browser | undefined;
let uuid: string;

before(async () => {
  if (skip) return;
  world = await startDashboardServer('web-terminal');
  const fleet = await world.api.call(USER_ROUTES.createFleet, {
    body: { name: 'Web terminal', slug: `webterm-${process.pid}` },
  });
  device = await startRealDevice(world, fleet.slug, 'webterm');
  uuid = device.uuid;
  browser = await launchChromium();
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
});

after(async () => {
  // Each step runs whatever the one before did: a failed stop must not leave engine objects behind.
  await browser?.close().catch(() => undefined);
  await device?.close().catch(() => undefined);
  await world?.close().catch(() => undefined);
});

/** The terminal's screen as xterm's DOM renderer draws it, one string per row, trailing blanks cut. */
function screen(page: Page): Promise<string[]> {
  return page
    .locator('.terminal-box .xterm-rows > div')
    .evaluateAll((rows) => rows.map((row) => (row.textContent ?? '').replace(/\s+$/, '')));
}

async function waitForRow(page: Page, what: string, match: (row: string) => boolean): Promise<string> {
  return waitFor(what, async () => (await screen(page)).find(match), { timeoutMs: 10_000, intervalMs: 50 }).catch(
    async (error: Error) => {
      throw new Error(`${error.message}; the screen: ${JSON.stringify(await screen(page))}`);
    },
  );
}

/** Runs `stty size` and reads its answer ("rows cols") from the screen, after a marker so an old answer is not taken. */
async function sttySize(page: Page): Promise<{ rows: number; cols: number }> {
  const marker = `size-${randomBytes(3).toString('hex')}`;
  await page.keyboard.type(`echo ${marker}; stty size\n`);
  const rows = await waitFor(
    `stty size after ${marker}`,
    async () => {
      const lines = await screen(page);
      const at = lines.indexOf(marker);
      const answer = at >= 0 ? lines[at + 1]?.match(/^(\d+) (\d+)$/) : undefined;
      return answer ? { rows: Number(answer[1]), cols: Number(answer[2]) } : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  return rows;
}

test('a host terminal on the device page: a command runs, resizing reaches the device, the exit status shows', {
  skip,
}, async () => {
  assert.ok(browser && world);
  const { page, problems, violations, close } = await watchPage(browser, { width: 1280, height: 900 });
  try {
    await signIn(page, world.url, world.admin.username, world.admin.password);
    await page.goto(`${world.url}/devices/${uuid}`, { waitUntil: 'load', timeout: 15_000 });

    const panel = page.getByRole('region', { name: 'Terminal', exact: true });
    await panel.getByLabel('Shell on').selectOption({ label: 'Host' });
    // Nothing of xterm is loaded before the terminal opens.
    assert.equal(await page.locator('.xterm').count(), 0);
    await panel.getByRole('button', { name: 'Open terminal' }).click();
    const status = panel.getByRole('status');
    await waitFor('the shell to be ready', async () => (await status.textContent()) === 'Connected to the host.', {
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    // The keyboard is in the terminal at once (xterm's labelled input), and what is typed runs on the device.
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Terminal input');
    await page.keyboard.type('echo $((6*7))\n');
    await waitForRow(page, 'the answer 42 on a row of its own', (row) => row === '42');

    // xterm made its own style elements; each carries the page's nonce, and none was refused.
    const styles = await page.evaluate(() => [...document.querySelectorAll('style')].map((s) => s.nonce ?? ''));
    assert.ok(styles.length > 0, 'xterm made style elements');
    const pageNonce = await page.evaluate(
      () => document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? '',
    );
    assert.ok(pageNonce.length > 0);
    assert.deepEqual(
      styles,
      styles.map(() => pageNonce),
    );

    // The device's terminal has the size the page's box has, and follows it when the window narrows.
    const wide = await sttySize(page);
    const drawnRows = await page.locator('.terminal-box .xterm-rows > div').count();
    assert.equal(wide.rows, drawnRows);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'terminal-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 1000, height: 900 });
    const narrow = await waitFor(
      'the device to see the narrower terminal',
      async () => {
        const size = await sttySize(page);
        return size.cols < wide.cols ? size : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    assert.equal(narrow.rows, wide.rows);

    await page.keyboard.type('exit 3\n');
    await waitFor(
      'the exit status in the status line',
      async () => (await status.textContent()) === 'The shell exited with status 3.',
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    // F6 leaves the terminal for the Close button, which removes it.
    await page.locator('.terminal-box textarea').focus();
    await page.keyboard.press('F6');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Close terminal');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('.xterm').count(), 0);

    assert.deepEqual(await violations(), []);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

/**
 * The status of a WebSocket upgrade with these headers: 101, or the server's refusal. Written on a bare socket
 * (Node's HTTP client hangs up on a refused upgrade answered keep-alive), only the status line is read.
 */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const { hostname, port, pathname, search, host } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no answer to the upgrade: ${answer}`)), 10_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      answer += chunk;
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(answer);
      if (!status) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(Number(status[1]));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    const lines = [
      `GET ${pathname}${search} HTTP/1.1`,
      `host: ${host}`,
      'connection: Upgrade',
      'upgrade: websocket',
      'sec-websocket-version: 13',
      `sec-websocket-key: ${randomBytes(16).toString('base64')}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

test('index.html carries a fresh nonce per response; a cookie WebSocket from another origin is refused', {
  skip,
}, async () => {
  const { url, admin } = world!;
  const nonces = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${url}/devices/${uuid}`);
    const csp = response.headers.get('content-security-policy') ?? '';
    const nonce = /style-src 'self' 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce, csp);
    assert.ok((await response.text()).includes(`<meta name="csp-nonce" content="${nonce}">`));
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(csp, /unsafe-inline/);
    nonces.add(nonce);
  }
  assert.equal(nonces.size, 3);

  const signedIn = await fetch(`${url}${USER_ROUTES.browserLogin.path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: admin.username, password: admin.password }),
  });
  assert.equal(signedIn.status, 200);
  const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const shell = `${url}/api/v1/devices/${uuid}/shell?tty=1`;
  assert.equal(await upgradeStatus(shell, { cookie, origin: 'http://evil.example' }), 403);
  assert.equal(await upgradeStatus(shell, { cookie }), 403);
  // The same cookie from the dashboard's own origin is let through: the refusal is the origin's doing.
  assert.equal(await upgradeStatus(shell, { cookie, origin: new URL(url).origin }), 101);
});

test('the device page turns the public URL on for a port, shows where it answers, and turns it off', {
  skip,
}, async () => {
  assert.ok(browser && world);
  // The device is this machine (an in-process agent): a web server here is the device's HTTP service.
  const web = createServer((request, response) => response.end(`device web answered ${request.url}`));
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  const { port } = web.address() as AddressInfo;
  const { page, problems, violations, close } = await watchPage(browser, { width: 390, height: 844 });
  try {
    await signIn(page, world.url, world.admin.username, world.admin.password);
    await page.goto(`${world.url}/devices/${uuid}`, { waitUntil: 'load', timeout: 15_000 });
    const panel = page.getByRole('region', { name: 'Public URL' });
    await panel.getByText(/^Off:/).waitFor();
    await panel.getByLabel('Port').fill(String(port));
    await panel.getByRole('button', { name: 'Turn on' }).click();
    await panel.getByText(`Public URL on, reaching port ${port}.`).waitFor();
    const href = await panel.getByRole('link').getAttribute('href');
    assert.ok(href, 'the address is a link');
    const answer = await fetch(`${href}hello`);
    assert.equal(await answer.text(), 'device web answered /hello');
    // Nothing wider than a phone: the long address wraps.
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);

    await panel.getByRole('button', { name: 'Turn off' }).click();
    await panel.getByText(/^Public URL off/).waitFor();
    assert.equal((await fetch(`${href}hello`)).status, 404);
    assert.deepEqual(await violations(), []);
    assert.deepEqual(problems, []);
  } finally {
    await close();
    await new Promise((resolve) => web.close(resolve));
  }
});
