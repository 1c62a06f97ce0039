import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import type { TestDatabase } from '@flotilla/testkit';
import { tempDir } from '@flotilla/testkit';
import { createUser } from '../auth/users.js';
import type { Db } from '../db/database.js';
import { startServer } from '../server.js';
import type { StartServerOptions } from '../server.js';
import { apiCall } from '../testing/live-server.js';
import type { ApiAnswer } from '../testing/live-server.js';

/** Helpers of the registry attack tests: a live server with a data folder, and a small honest registry client. */

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
export const basicAuth = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
export const bearer = (token: string) => `Bearer ${token}`;

export interface LiveRegistry {
  url: string;
  /** The registry's service name (host of the public URL), as in image references. */
  host: string;
  dataDir: string;
  adminKey: string;
  db: Db;
  api: (method: string, path: string, body?: unknown, key?: string) => Promise<ApiAnswer>;
  close: () => Promise<void>;
}

/** A real server on loopback over a fresh database of `testDb`'s dialect, with its data (and registry) on disk. */
export async function liveRegistry(
  testDb: TestDatabase,
  extra: Partial<StartServerOptions> = {},
): Promise<LiveRegistry> {
  const created = await testDb.create();
  const dir = await tempDir('flotilla-security-registry-');
  const dataDir = join(dir.path, 'data');
  const server = await startServer({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    ...extra,
    ...(created.url ? { databaseUrl: created.url } : {}),
  });
  const adminKey = server.admin?.apiKey ?? '';
  return {
    url: server.url,
    host: new URL(server.url).host,
    dataDir,
    adminKey,
    db: server.app.flotilla.db,
    api: (method, path, body, key = adminKey) => apiCall(server.url, method, path, key, body),
    close: async () => {
      await server.close();
      await created.drop();
      await dir.remove();
    },
  };
}

export interface RegistryAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The OCI error code of an error answer. */
  code: string | undefined;
}

export async function registryCall(
  r: LiveRegistry,
  method: string,
  path: string,
  auth?: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<RegistryAnswer> {
  const response = await fetch(`${r.url}${path}`, {
    method,
    headers: { ...(auth ? { authorization: auth } : {}), ...headers },
    body: body ?? null,
  });
  const text = await response.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, headers: response.headers, text, code };
}

/** A registry token for `scope`, or the HTTP status when none was issued. */
export async function registryToken(
  r: LiveRegistry,
  username: string,
  password: string,
  scope: string,
  service = r.host,
): Promise<string | number> {
  const query = `service=${encodeURIComponent(service)}&scope=${encodeURIComponent(scope)}`;
  const answer = await registryCall(r, 'GET', `/auth/v1/token?${query}`, basicAuth(username, password));
  if (answer.status !== 200) return answer.status;
  return (JSON.parse(answer.text) as { token: string }).token;
}

/** Uploads `content` in one request (POST ?digest=); resolves the status and digest. */
export async function pushBlob(
  r: LiveRegistry,
  auth: string,
  repository: string,
  content: Buffer | string,
): Promise<{ status: number; digest: string; code: string | undefined }> {
  const digest = sha256(content);
  const answer = await registryCall(r, 'POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, auth, content, {
    'content-type': 'application/octet-stream',
  });
  return { status: answer.status, digest, code: answer.code };
}

/** Pushes a one-layer image and tags it; resolves the digests of manifest, config and layer. */
export async function pushImage(
  r: LiveRegistry,
  auth: string,
  repository: string,
  tag: string,
  layerContent: string,
): Promise<{ manifest: string; config: string; layer: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', layer: layerContent }));
  const layer = Buffer.from(layerContent);
  for (const blob of [config, layer]) assert.equal((await pushBlob(r, auth, repository, blob)).status, 201);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await registryCall(r, 'PUT', `/v2/${repository}/manifests/${tag}`, auth, manifest, {
    'content-type': MANIFEST_TYPE,
  });
  assert.equal(put.status, 201, put.text);
  return { manifest: sha256(manifest), config: sha256(config), layer: sha256(layer) };
}

/** A user made directly in the database, signed in through the API: password, session token and an API key. */
export async function newUser(
  r: LiveRegistry,
  username: string,
): Promise<{ id: number; username: string; password: string; session: string; apiKey: string; apiKeyId: number }> {
  const password = randomBytes(12).toString('base64url');
  const user = await createUser(r.db, { username, password });
  const login = await r.api('POST', '/api/v1/auth/login', { username, password }, '');
  assert.equal(login.status, 200, JSON.stringify(login.data));
  const key = await r.api('POST', '/api/v1/api-keys', { name: `${username}-key` }, login.data.token);
  assert.equal(key.status, 201, JSON.stringify(key.data));
  return { id: user.id, username, password, session: login.data.token, apiKey: key.data.key, apiKeyId: key.data.id };
}

/** Creates fleet `slug` (in `organization`, else the caller's first) and returns its id. */
export async function createFleet(
  r: LiveRegistry,
  slug: string,
  key = r.adminKey,
  organization?: string,
): Promise<number> {
  const answer = await r.api(
    'POST',
    '/api/v1/fleets',
    { name: slug, slug, ...(organization ? { organization } : {}) },
    key,
  );
  assert.equal(answer.status, 201, JSON.stringify(answer.data));
  return answer.data.id as number;
}

/** Registers a device in the fleet as a device does, with a new provisioning key. */
export async function registerDevice(r: LiveRegistry, slug: string, fleetId: number) {
  const pk = await r.api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
  const uuid = generateDeviceUuid();
  const key = generateKey();
  const registered = await r.api(
    'POST',
    '/device/register',
    { application: fleetId, uuid, device_type: 'generic-amd64', api_key: key },
    pk.data.key,
  );
  assert.equal(registered.status, 201, JSON.stringify(registered.data));
  return { uuid, key, id: registered.data.id as number, provisioningKey: pk.data.key as string };
}

/** The handle of the admin's organization. */
export async function adminOrganization(r: LiveRegistry): Promise<string> {
  const orgs = await r.api('GET', '/api/v1/organizations');
  return orgs.data.items[0].handle as string;
}

/** Every file below `dir`. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []))
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  return out;
}

/** Counts attempts and refusals of one attack and prints the summary line the report quotes. */
export class Tally {
  attempts = 0;
  refused = 0;
  readonly accepted: string[] = [];
  constructor(private readonly name: string) {}

  /** One attempt; `refused` says whether the server refused it. */
  note(what: string, refused: boolean): void {
    this.attempts += 1;
    if (refused) this.refused += 1;
    else this.accepted.push(what);
  }

  finish(): void {
    console.log(`security: registry: ${this.name}: ${this.attempts} attempts, ${this.refused} refused`);
    assert.deepEqual(this.accepted, [], `${this.name}: attacks that got through`);
  }
}
