import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import type { TestDatabase } from '@flotilla/testkit';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../app.js';
import { answerData } from './answer-data.js';
import type { AppOptions, FlotillaApp } from '../app.js';
import { bootstrapAdmin } from '../auth/bootstrap.js';
import { openDatabase, type OpenedDatabase } from '../db/database.js';

/** An in-process app over a fresh database of the given dialect, with the bootstrap admin's API key. */
export interface Harness {
  app: FlotillaApp;
  /** The database the app runs on (its dialect's extras: SQLite's revision-bump feed). */
  database: OpenedDatabase;
  adminKey: string;
  close: () => Promise<void>;
  /** `app.inject` with JSON in and out, Bearer `key` when given. */
  call: (
    method: string,
    url: string,
    key?: string,
    body?: unknown,
    headers?: Record<string, string>,
    // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  ) => Promise<LightMyRequestResponse & { body: string; data: any }>;
}

export async function harness(testDb: TestDatabase, options: Partial<AppOptions> = {}): Promise<Harness> {
  const created = await testDb.create();
  const database = await openDatabase({ databaseUrl: created.url });
  const admin = await bootstrapAdmin(database.db, 'admin-password');
  if (!admin) throw new Error('fresh database already had users');
  const app = await buildApp({ database, publicUrl: 'http://flotilla.test:8080', logLevel: false, ...options });
  await app.ready();
  const call: Harness['call'] = async (method, url, key, body, headers = {}) => {
    const response = await app.inject({
      method: method as 'GET',
      url,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const data = answerData(response.body, (name) => response.headers[name] as string | undefined, false);
    return Object.assign(response, { data }) as Awaited<ReturnType<Harness['call']>>;
  };
  return {
    app,
    database,
    adminKey: admin.apiKey,
    call,
    close: async () => {
      await app.close();
      await database.close();
      await created.drop();
    },
  };
}

/** A fleet with a provisioning key and one registered device, made through the public endpoints. */
export async function fleetWithDevice(h: Harness, key: string, slug: string, organization?: string) {
  const fleet = await h.call('POST', '/api/v1/fleets', key, {
    name: slug,
    slug,
    ...(organization ? { organization } : {}),
  });
  if (fleet.statusCode !== 201) throw new Error(`create fleet: ${fleet.body}`);
  const pk = await h.call('POST', `/api/v1/fleets/${slug}/provisioning-keys`, key, {});
  if (pk.statusCode !== 201) throw new Error(`provisioning key: ${pk.body}`);
  const uuid = generateDeviceUuid();
  const deviceKey = generateKey();
  const reg = await h.call('POST', '/device/register', pk.data.key, {
    application: fleet.data.id,
    uuid,
    device_type: 'generic-amd64',
    api_key: deviceKey,
  });
  if (reg.statusCode !== 201) throw new Error(`register: ${reg.body}`);
  return {
    fleetId: fleet.data.id as number,
    fleetUuid: fleet.data.uuid as string,
    slug,
    provisioningKey: pk.data.key as string,
    uuid,
    deviceKey,
    deviceId: reg.data.id as number,
  };
}
