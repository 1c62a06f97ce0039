import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium, installed by scripts/setup.sh; Playwright's own browser downloads are not used. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Why browser tests cannot run here, or undefined when they can. INVARIANT: in CI (`CI=true`) a missing Chromium
 * is a failure, not a skip, so a broken setup cannot pass as green.
 */
export function chromiumSkipReason(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing in CI: scripts/setup.sh installs chromium`);
  return `${CHROMIUM} is not installed (apt-get install chromium, or npm run setup)`;
}

/**
 * Headless Chromium with a fresh profile (Playwright makes a new user-data-dir per launch). The flags keep it off
 * the network (no background services, updates or sync) and able to run as root in a container.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
