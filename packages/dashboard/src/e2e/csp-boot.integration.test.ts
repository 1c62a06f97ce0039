import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from './chromium.js';
import { PACKAGE_DIR, SCREENSHOT_DIR } from './screenshots.js';
import { serveDashboard } from './static-server.js';

const app = join(PACKAGE_DIR, 'dist', 'app');
const skip = chromiumSkipReason();

let browser: Browser;
let server: Awaited<ReturnType<typeof serveDashboard>>;

before(async () => {
  if (skip) return;
  assert.ok(existsSync(join(app, 'index.html')), `${app} is not built: npm run build -w @flotilla/dashboard`);
  server = await serveDashboard(app);
  browser = await launchChromium();
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

/** A page that records every CSP violation and uncaught error from its first script on. */
async function watchedPage(viewport: { width: number; height: number }) {
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
  return { page, problems, violations, close: () => context.close() };
}

async function focusedId(page: Page): Promise<string> {
  return page.evaluate(() => document.activeElement?.id ?? '');
}

test('the built dashboard boots under the strict CSP and its sign-in form works from the keyboard', {
  skip,
}, async () => {
  const { page, problems, violations, close } = await watchedPage({ width: 1280, height: 800 });
  try {
    const answer = await page.goto(`${server.url}/fleets/kitchen?status=offline`, {
      waitUntil: 'load',
      timeout: 15_000,
    });
    assert.equal(answer?.headers()['content-security-policy'], "script-src 'self'; style-src 'self'");
    // No session (the static server has no API): the app sends the user to sign in, keeping the deep link.
    await page.getByRole('heading', { name: 'Sign in to Flotilla' }).waitFor({ timeout: 15_000 });
    assert.equal(new URL(page.url()).pathname, '/sign-in');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/fleets/kitchen?status=offline');
    // The stylesheet came from a file and applied (the form is a styled card), with no inline style tag.
    assert.equal(await page.locator('style').count(), 0);
    assert.equal(await page.locator('link[rel=stylesheet]').count(), 1);
    assert.equal(await page.locator('.sign-in-form').evaluate((form) => getComputedStyle(form).display), 'grid');

    await page.keyboard.press('Tab');
    assert.equal(await focusedId(page), 'username');
    await page.keyboard.type('ada');
    await page.keyboard.press('Tab');
    assert.equal(await focusedId(page), 'password');
    await page.keyboard.type('not-a-real-password');
    assert.equal(await page.getByLabel('Username').inputValue(), 'ada');
    await page.keyboard.press('Enter');
    // The request reaches the (static) server and its refusal is shown as text with its code.
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: 10_000 });
    assert.match((await alert.textContent()) ?? '', /browser-session.*\(NOT_FOUND\)/);

    assert.deepEqual(await violations(), []);
    assert.deepEqual(problems, []);

    // The watch can see a violation: an inline script is refused, reported, and does not run.
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.inlineRan = true';
      document.head.append(script);
    });
    await page.waitForFunction(
      () => (window as unknown as { cspViolations: string[] }).cspViolations.length > 0,
      null,
      {
        timeout: 5_000,
      },
    );
    assert.match((await violations())[0] ?? '', /^script-src/);
    assert.equal(await page.evaluate(() => (window as unknown as { inlineRan?: boolean }).inlineRan), undefined);
  } finally {
    await close();
  }
});

test('the sign-in page fits a phone-width screen', { skip }, async () => {
  const { page, problems, violations, close } = await watchedPage({ width: 390, height: 844 });
  try {
    await page.goto(`${server.url}/sign-in`, { waitUntil: 'load', timeout: 15_000 });
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 15_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'sign-in-390.png') });
    assert.deepEqual(await violations(), []);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});
