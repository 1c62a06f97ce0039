import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import type { TestDatabase } from '@flotilla/testkit';
import { startServer, type RunningServer, type StartServerOptions } from '../server.js';
import { httpCall } from './tenants.js';

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  data: any;
}

/** One JSON request to a listening server, Bearer `key`. */
export async function apiCall(
  baseUrl: string,
  method: string,
  path: string,
  key: string,
  body?: unknown,
): Promise<ApiAnswer> {
  const { status, data } = await httpCall(baseUrl, method, path, { key, body });
  return { status, data };
}

/** Sends lines as a device does: one gzip NDJSON request to its log stream; resolves the HTTP status. */
export function postDeviceLogs(
  baseUrl: string,
  uuid: string,
  deviceKey: string,
  lines: readonly unknown[],
): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = {
      authorization: `Bearer ${deviceKey}`,
      'content-type': 'application/x-ndjson',
      'content-encoding': 'gzip',
    };
    const req = request(`${baseUrl}/device/v2/${uuid}/log-stream`, { method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(gzipSync(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`));
  });
}

export interface LiveDevice {
  server: RunningServer;
  apiKey: string;
  slug: string;
  uuid: string;
  deviceKey: string;
  /** The PostgreSQL database the server runs on; undefined on SQLite. */
  databaseUrl: string | undefined;
  /** `apiCall` against this server with the admin key unless another is given. */
  api: (method: string, path: string, body?: unknown, key?: string) => Promise<ApiAnswer>;
  close: () => Promise<void>;
}

/**
 * A real server listening on loopback over a fresh database of `testDb`'s dialect, with a fleet and one device
 * registered through the public endpoints, as a device would.
 */
export async function liveServerWithDevice(
  testDb: TestDatabase,
  options: Partial<StartServerOptions> = {},
): Promise<LiveDevice> {
  const created = await testDb.create();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    ...options,
    ...(created.url ? { databaseUrl: created.url } : {}),
  });
  const close = async () => {
    await server.close();
    await created.drop();
  };
  try {
    const apiKey = server.admin!.apiKey;
    // A server speaking TLS with its own CA is called on its plain-HTTP listener (fetch trusts no extra CA).
    const base = server.plainUrl ?? server.url;
    const api: LiveDevice['api'] = (method, path, body, key = apiKey) => apiCall(base, method, path, key, body);
    const slug = `fleet${Date.now()}`;
    const fleet = await api('POST', '/api/v1/fleets', { name: slug, slug });
    const pk = await api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
    const uuid = generateDeviceUuid();
    const deviceKey = generateKey();
    const registered = await api(
      'POST',
      '/device/register',
      { application: fleet.data.id, uuid, device_type: 'generic-amd64', api_key: deviceKey },
      pk.data.key,
    );
    if (registered.status !== 201) throw new Error(`register: ${JSON.stringify(registered.data)}`);
    return { server, apiKey, slug, uuid, deviceKey, databaseUrl: created.url, api, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * A server with its own CA (as `--tls-self-signed` makes it) and a plain-HTTP listener on loopback beside it, in a
 * temporary folder that `close()` removes: for tests of clients that must trust that CA.
 */
export async function selfSignedServer(
  prefix: string,
  options: Partial<StartServerOptions> = {},
): Promise<{ server: RunningServer; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const server = await startServer({
    dataDir: join(dir, 'server'),
    host: '127.0.0.1',
    port: 0,
    tls: 'self-signed',
    plainHttp: { host: '127.0.0.1', port: 0 },
    logLevel: false,
    ...options,
  }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    server,
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
