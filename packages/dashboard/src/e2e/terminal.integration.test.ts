/**
 * The web terminal end to end: a real flotilla-server serving the built dashboard, a real agent (in-process, from
 * the fleet's config.json, its own engine namespace), Chromium signed in through the form. Also the server's side
 * of the page's security: a fresh CSP nonce per index.html, and a cookie WebSocket from another origin refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AgentHandle, startAgent } from '@flotilla/agent';
import { USER_ROUTES, createApiClient } from '@flotilla/protocol';
import { type RunningServer, startServer } from '@flotilla/server';
import { run, tempDir, waitFor } from '@flotilla/testkit';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';

const pkg = fileURLToPath(new URL('../../../', import.meta.url));
const app = join(pkg, 'dist', 'app');
const shots = process.env.FLOTILLA_SCREENSHOT_DIR ?? join(pkg, 'dist', 'screenshots');
const skip = chromiumSkipReason();
const namespace = `webterm${process.pid}x`;

let dir: Awaited<ReturnType<typeof tempDir>>;
let server: RunningServer;
let agent: AgentHandle | undefined;
let browser: Browser | undefined;
let uuid: string;

before(async () => {
  if (skip) return;
  assert.ok(existsSync(join(app, 'index.html')), `${app} is not built: npm run build -w @flotilla/dashboard`);
  dir = await tempDir('flotilla-web-terminal-');
  server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0, dashboardDir: app });
  const api = createApiClient({ baseUrl: server.url, token: server.admin?.apiKey });
  const fleet = await api.call(USER_ROUTES.createFleet, {
    body: { name: 'Web terminal', slug: `webterm-${process.pid}` },
  });
  const config = await api.call(USER_ROUTES.fleetConfigJson, { params: { slug: fleet.slug }, body: {} });
  const configPath = join(dir.path, 'config.json');
  await writeFile(configPath, JSON.stringify(config), { mode: 0o600 });
  agent = await startAgent({
    configPath,
    dataDir: join(dir.path, 'agent'),
    namespace,
    pollIntervalMs: 300,
    reportIntervalMs: 100,
    apiPort: 0,
    logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
  });
  const started = agent;
  uuid = await waitFor(
    'the device to register and connect',
    async () => {
      const [device] = (await api.call(USER_ROUTES.listDevices, { query: { fleet: fleet.slug } })).items;
      // Shells need the device's WebSocket, which the agent opens after registering.
      return device && started.state().remoteActionsConnected ? device.uuid : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  browser = await launchChromium();
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  // Each step runs whatever the one before did: a failed stop must not leave engine objects behind.
  await browser?.close().catch(() => undefined);
  await agent?.stop().catch(() => undefined);
  await server?.close().catch(() => undefined);
  const containers = await run('docker', ['ps', '-aq', '--filter', `label=io.flotilla.namespace=${namespace}`]).catch(
    () => ({ stdout: '' }),
  );
  const ids = containers.stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['rm', '-f', '-v', ...ids]).catch(() => undefined);
  await dir?.remove();
});

/** A page that records every CSP violation and uncaught error from its first script on. */
async function watchedPage(viewport: { width: number; height: number }) {
  if (!browser) throw new Error('no browser');
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/content security policy/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const violations = () => page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);
  return { context, page, problems, violations };
}

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
      const at = lines.findIndex((line) => line === marker);
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
  const { context, page, problems, violations } = await watchedPage({ width: 1280, height: 900 });
  try {
    const admin = server.admin;
    assert.ok(admin);
    await page.goto(`${server.url}/sign-in`, { waitUntil: 'load', timeout: 15_000 });
    await page.getByLabel('Username').fill(admin.username);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleets' }).first().waitFor({ timeout: 15_000 });
    await page.goto(`${server.url}/devices/${uuid}`, { waitUntil: 'load', timeout: 15_000 });

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
    await page.screenshot({ path: join(shots, 'terminal-1280.png'), fullPage: true });
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
    await context.close();
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
  const nonces = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${server.url}/devices/${uuid}`);
    const csp = response.headers.get('content-security-policy') ?? '';
    const nonce = /style-src 'self' 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce, csp);
    assert.ok((await response.text()).includes(`<meta name="csp-nonce" content="${nonce}">`));
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(csp, /unsafe-inline/);
    nonces.add(nonce);
  }
  assert.equal(nonces.size, 3);

  const admin = server.admin;
  assert.ok(admin);
  const signIn = await fetch(`${server.url}${USER_ROUTES.browserLogin.path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: admin.username, password: admin.password }),
  });
  assert.equal(signIn.status, 200);
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const shell = `${server.url}/api/v1/devices/${uuid}/shell?tty=1`;
  assert.equal(await upgradeStatus(shell, { cookie, origin: 'http://evil.example' }), 403);
  assert.equal(await upgradeStatus(shell, { cookie }), 403);
  // The same cookie from the dashboard's own origin is let through: the refusal is the origin's doing.
  assert.equal(await upgradeStatus(shell, { cookie, origin: new URL(server.url).origin }), 101);
});
