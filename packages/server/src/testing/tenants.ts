import { join } from 'node:path';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import type { TestDatabase } from '@flotilla/testkit';
import { tempDir } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { answerData } from './answer-data.js';
import { basicAuth } from './attacks.js';
import { pushTinyImage, type PushedImage } from './registry-client.js';

export interface HttpAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  data: any;
  text: string;
  headers: Headers;
}

export interface HttpOptions {
  /** Sent as `Authorization: Bearer <key>` unless `headers.authorization` is given. */
  key?: string | undefined;
  /** JSON-encoded unless a string or Buffer. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One request to a listening server; never throws on an HTTP status. */
export async function httpCall(
  baseUrl: string,
  method: string,
  path: string,
  o: HttpOptions = {},
): Promise<HttpAnswer> {
  const raw = typeof o.body === 'string' || Buffer.isBuffer(o.body);
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(o.key ? { authorization: `Bearer ${o.key}` } : {}),
      ...(o.body === undefined || raw ? {} : { 'content-type': 'application/json' }),
      ...o.headers,
    },
    body: o.body === undefined ? null : raw ? (o.body as string | Buffer) : JSON.stringify(o.body),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const text = await response.text();
  const data = answerData(text, (name) => response.headers.get(name), false);
  return { status: response.status, data, text, headers: response.headers };
}

/** Everything one tenant owns, made through the public endpoints; ids and names are what an attacker would aim at. */
export interface Tenant {
  username: string;
  password: string;
  /** Session token from /auth/login. */
  token: string;
  apiKey: string;
  apiKeyId: number;
  org: string;
  slug: string;
  fleetId: number;
  provisioningKey: string;
  provisioningKeyId: number;
  uuid: string;
  deviceName: string;
  deviceId: number;
  deviceKey: string;
  releaseId: number;
  releaseCommit: string;
  actionId: number;
  /** A pending invitation addressed to this tenant's user (into the bootstrap organization). */
  invitationId: number;
  /** Names of the fleet's and the device's env var, config var and the device's tag. */
  envName: string;
  configName: string;
  tagKey: string;
  /** An image pushed to `<slug>/main`. */
  image: PushedImage;
}

export interface TwoTenants {
  server: RunningServer;
  url: string;
  /** The server's data folder (SQLite file, registry/) and its parent, which holds nothing else of the server's. */
  dataDir: string;
  outerDir: string;
  adminKey: string;
  a: Tenant;
  b: Tenant;
  call: (method: string, path: string, o?: HttpOptions) => Promise<HttpAnswer>;
  close: () => Promise<void>;
}

async function expectStatus(answer: Promise<HttpAnswer>, status: number, what: string): Promise<HttpAnswer> {
  const res = await answer;
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${res.text}`);
  return res;
}

async function makeTenant(call: TwoTenants['call'], url: string, adminKey: string, name: string): Promise<Tenant> {
  const username = `${name}-user`;
  const password = `${name}-password-${generateKey().slice(0, 8)}`;
  await expectStatus(call('POST', '/api/v1/users', { key: adminKey, body: { username, password } }), 201, 'user');
  const login = await expectStatus(call('POST', '/api/v1/auth/login', { body: { username, password } }), 200, 'login');
  const token = login.data.token as string;
  const org = `${name}-org`;
  await expectStatus(
    call('POST', '/api/v1/organizations', { key: token, body: { name: org, handle: org } }),
    201,
    'org',
  );
  const apiKey = await expectStatus(call('POST', '/api/v1/api-keys', { key: token, body: { name: 'ci' } }), 201, 'key');
  const slug = `${name}-fleet`;
  const fleet = await expectStatus(
    call('POST', '/api/v1/fleets', { key: token, body: { name: slug, slug, organization: org } }),
    201,
    'fleet',
  );
  const pk = await expectStatus(
    call('POST', `/api/v1/fleets/${slug}/provisioning-keys`, { key: token, body: {} }),
    201,
    'provisioning key',
  );
  const uuid = generateDeviceUuid();
  const deviceKey = generateKey();
  const registered = await expectStatus(
    call('POST', '/device/register', {
      key: pk.data.key,
      body: { application: fleet.data.id, uuid, device_type: 'generic-amd64', api_key: deviceKey },
    }),
    201,
    'register',
  );
  // A name no other tenant's device has, so "by name" can only ever find this one.
  const deviceName = `${name}-device`;
  await expectStatus(call('PATCH', `/api/v1/devices/${uuid}`, { key: token, body: { name: deviceName } }), 200, 'name');
  const repoAuth = basicAuth(username, apiKey.data.key);
  const image = await pushTinyImage(url, repoAuth, `${slug}/main`, name);
  const release = await expectStatus(
    call('POST', `/api/v1/fleets/${slug}/releases`, {
      key: token,
      body: {
        composition: { services: { main: { image: 'main' } } },
        images: { main: `${new URL(url).host}/${slug}/main@${image.manifestDigest}` },
        status: 'success',
      },
    }),
    201,
    'release',
  );
  const envName = `${name.toUpperCase()}_SECRET`;
  const configName = 'BALENA_SUPERVISOR_POLL_INTERVAL';
  const tagKey = `${name}-tag`;
  for (const [path, body] of [
    [`/api/v1/fleets/${slug}/env`, { name: envName, value: `${name} fleet secret` }],
    [`/api/v1/fleets/${slug}/config`, { name: configName, value: '900000' }],
    [`/api/v1/devices/${uuid}/env`, { name: envName, value: `${name} device secret` }],
    [`/api/v1/devices/${uuid}/config`, { name: configName, value: '600000' }],
    [`/api/v1/devices/${uuid}/tags`, { key: tagKey, value: name }],
  ] as const)
    await expectStatus(call('POST', path, { key: token, body }), 200, path);
  const action = await expectStatus(
    call('POST', `/api/v1/devices/${uuid}/actions?wait=0`, { key: token, body: { action: 'identify' } }),
    201,
    'action',
  );
  return {
    username,
    password,
    token,
    apiKey: apiKey.data.key,
    apiKeyId: apiKey.data.id,
    org,
    slug,
    fleetId: fleet.data.id,
    provisioningKey: pk.data.key,
    provisioningKeyId: pk.data.id,
    uuid,
    deviceName,
    deviceId: registered.data.id,
    deviceKey,
    releaseId: release.data.id,
    releaseCommit: release.data.commit,
    actionId: action.data.id,
    envName,
    configName,
    tagKey,
    image,
    // Set by twoTenants once both tenants exist.
    invitationId: 0,
  };
}

/**
 * A real server on loopback over a fresh database of `testDb`'s dialect, with a data folder, and two tenants made
 * by the bootstrap admin: users "alpha-user" (org alpha-org, fleet alpha-fleet) and "beta-user" (beta-org,
 * beta-fleet), each with a device, a release and its image, variables, a tag, a pending action, a provisioning
 * key, an API key and a pending invitation into the bootstrap organization. Neither user is a member of the other's
 * organization.
 */
/** Invites the tenant's user into the bootstrap organization and returns the invitation's id as the user sees it. */
async function pendingInvitation(call: TwoTenants['call'], adminKey: string, tenant: Tenant): Promise<number> {
  const body = { username: tenant.username, role: 'member' };
  await expectStatus(call('POST', '/api/v1/organizations/default/invitations', { key: adminKey, body }), 202, 'invite');
  const listed = await expectStatus(call('GET', '/api/v1/invitations', { key: tenant.token }), 200, 'invitations');
  const id = (listed.data as { items?: { id: number }[] }).items?.[0]?.id;
  if (id === undefined) throw new Error(`no invitation for ${tenant.username}`);
  return id;
}

export async function twoTenants(testDb: TestDatabase): Promise<TwoTenants> {
  const outer = await tempDir('flotilla-security-');
  const created = await testDb.create();
  const dataDir = join(outer.path, 'data');
  let server: RunningServer | undefined;
  const close = async () => {
    await server?.close();
    await created.drop();
    await outer.remove();
  };
  try {
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      ...(created.url ? { databaseUrl: created.url } : {}),
    });
    const url = server.url;
    const adminKey = server.admin?.apiKey;
    if (!adminKey) throw new Error('the fresh database had no bootstrap admin');
    const call: TwoTenants['call'] = (method, path, o) => httpCall(url, method, path, o);
    const a = await makeTenant(call, url, adminKey, 'alpha');
    const b = await makeTenant(call, url, adminKey, 'beta');
    for (const tenant of [a, b]) tenant.invitationId = await pendingInvitation(call, adminKey, tenant);
    return { server, url, dataDir, outerDir: outer.path, adminKey, a, b, call, close };
  } catch (error) {
    await close();
    throw error;
  }
}
