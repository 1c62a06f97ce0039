/**
 * The server side of the browser tests: a real flotilla-server in this process (SQLite in a temporary folder)
 * serving the built dashboard at `/`, its bootstrap admin, the typed API client, and signing in through the form.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ApiClient, createApiClient } from '@flotilla/protocol';
import { type AdminCredentials, type RunningServer, startServer } from '@flotilla/server';
import { tempDir } from '@flotilla/testkit';
import type { Page } from 'playwright-core';
import { PACKAGE_DIR } from './screenshots.js';

/** What the server serves: Vite's build of the app. */
export const APP_DIR = join(PACKAGE_DIR, 'dist', 'app');

export interface DashboardServer {
  server: RunningServer;
  url: string;
  /** The bootstrap admin (organization `default`): username, password, API key. */
  admin: AdminCredentials;
  /** The typed user API as the admin (API key). */
  api: ApiClient;
  /** The typed user API with another key or session token. */
  apiAs(token: string): ApiClient;
  /** A private temporary folder removed by close(). */
  dir: string;
  close(): Promise<void>;
}

export interface DashboardServerOptions {
  /** How often the server evaluates running rollouts (its default is 1 s). */
  rolloutIntervalMs?: number;
}

export async function startDashboardServer(
  name: string,
  options: DashboardServerOptions = {},
): Promise<DashboardServer> {
  assert.ok(existsSync(join(APP_DIR, 'index.html')), `${APP_DIR} is not built: npm run build`);
  const dir = await tempDir(`flotilla-${name}-`);
  try {
    const server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0, ...options });
    const admin = server.admin;
    if (!admin) throw new Error('a fresh server bootstraps its admin');
    const apiAs = (token: string) => createApiClient({ baseUrl: server.url, token, timeoutMs: 30_000 });
    return {
      server,
      url: server.url,
      admin,
      api: apiAs(admin.apiKey),
      apiAs,
      dir: dir.path,
      close: async () => {
        await server.close();
        await dir.remove();
      },
    };
  } catch (error) {
    await dir.remove();
    throw error;
  }
}

/** Signs in through the dashboard's form at `url` (any page of it) and waits for the signed-in frame. */
export async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  await page.getByRole('heading', { name: 'Sign in to Flotilla' }).waitFor({ timeout: 15_000 });
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 15_000 });
}

/** The first 7 characters, as the dashboard shows commits and UUIDs. */
export const short = (id: string): string => id.slice(0, 7);
