import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/dashboard, seen from dist/tsc/e2e/. */
export const PACKAGE_DIR = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Where the browser tests write their screenshots: packages/dashboard/screenshots, the folder the READMEs show (or
 * $FLOTILLA_SCREENSHOT_DIR). INVARIANT: each file there has one writer (a test), so what a run leaves is that run's.
 */
export const SCREENSHOT_DIR = process.env.FLOTILLA_SCREENSHOT_DIR ?? join(PACKAGE_DIR, 'screenshots');
