import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/** What a page did that a dashboard page must never do: run a refused script, throw, log an error, open a dialog. */
export interface PageWatch {
  context: BrowserContext;
  page: Page;
  /** Uncaught errors, console errors and JavaScript dialogs (alert, confirm, prompt), in order. */
  problems: string[];
  /**
   * Answers of 400 and above, as `<status> <method> <path and query>`. The browser also logs each as a console error ("Failed
   * to load resource"), which `problems` leaves out: a refusal may be the very thing a test expects (401 before
   * signing in, 404 for another tenant's device), so each test says which ones it expects.
   */
  failedResponses: string[];
  /** The CSP violations the page's document reported (`securitypolicyviolation`), across navigations. */
  violations(): Promise<string[]>;
  close(): Promise<void>;
}

type Watched = Window & { __cspViolations?: string[] };

/**
 * A new browser context (its own cookies) with one page watched from its first script on. A dialog is recorded and
 * dismissed, so a payload calling alert() shows up here instead of hanging the page.
 * INVARIANT: the violation listener is installed by an init script, before any script of the page, on every
 * navigation; violations are also copied to sessionStorage so a navigation does not lose the ones before it.
 */
export async function watchPage(browser: Browser, viewport: { width: number; height: number }): Promise<PageWatch> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  const failedResponses: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource:'))
      problems.push(`console error: ${message.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      const { pathname, search } = new URL(response.url());
      failedResponses.push(`${response.status()} ${response.request().method()} ${pathname}${search}`);
    }
  });
  page.on('dialog', (dialog) => {
    problems.push(`${dialog.type()} dialog: ${dialog.message()}`);
    void dialog.dismiss().catch(() => undefined);
  });
  await page.addInitScript(() => {
    const key = 'flotilla-e2e-csp-violations';
    const seen: string[] = JSON.parse(sessionStorage.getItem(key) ?? '[]');
    (window as Watched).__cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (e) => {
      seen.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`);
      sessionStorage.setItem(key, JSON.stringify(seen));
    });
  });
  return {
    context,
    page,
    problems,
    failedResponses,
    violations: () => page.evaluate(() => (window as Watched).__cspViolations ?? []),
    close: () => context.close(),
  };
}

/**
 * The page is clean: no CSP violation, no console error or dialog, and the refused requests since the last check are
 * exactly `expected` (taken off the list, so each check answers for its own step).
 */
export async function assertClean(watch: PageWatch, expected: string[] = []): Promise<void> {
  assert.deepEqual(await watch.violations(), []);
  assert.deepEqual(watch.problems, []);
  assert.deepEqual(watch.failedResponses.splice(0), expected);
}
