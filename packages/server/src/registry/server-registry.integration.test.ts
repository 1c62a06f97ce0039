import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { startServer } from '../server.js';
import type { RunningServer } from '../server.js';

/** The registry inside the real server: API keys and device keys from the database decide access. */
let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

before(async () => {
  dir = await tempDir('flotilla-server-registry-');
  server = await startServer({ dataDir: join(dir.path, 'data'), host: '127.0.0.1', port: 0 });
});
after(async () => {
  await server.close();
  await dir.remove();
});

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${server.admin?.apiKey ?? ''}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

async function grants(user: string, password: string, scope: string): Promise<string[] | number> {
  const host = new URL(server.url).host;
  const res = await fetch(`${server.url}/auth/v1/token?service=${host}&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: basic(user, password) },
  });
  if (res.status !== 200) return res.status;
  const { token } = (await res.json()) as { token: string };
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
    access: Array<{ actions: string[] }>;
  };
  return claims.access[0]?.actions ?? [];
}

test('users push their fleets; devices pull only their own fleet; others get nothing', async () => {
  const a = await api<{ id: number; slug: string }>('POST', '/fleets', { name: 'Reg A', slug: 'reg-a' });
  await api('POST', '/fleets', { name: 'Reg B', slug: 'reg-b' });
  const key = server.admin?.apiKey ?? '';
  assert.deepEqual(await grants('anything', key, 'repository:reg-a/web:pull,push'), ['pull', 'push']);
  assert.deepEqual(await grants('anything', key, 'repository:no-such-fleet/web:pull,push'), []);
  assert.equal(await grants('anything', 'not-a-key', 'repository:reg-a/web:pull'), 401);

  const config = await api<{ provisioningApiKey?: string; apiKey?: string }>('POST', '/fleets/reg-a/config-json', {});
  const provisioning = config.provisioningApiKey ?? config.apiKey ?? '';
  const uuid = randomBytes(16).toString('hex');
  const deviceKey = randomBytes(24).toString('base64url');
  const reg = await fetch(`${server.url}/device/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${provisioning}`, 'content-type': 'application/json' },
    body: JSON.stringify({ application: a.id, uuid, device_type: 'generic-amd64', api_key: deviceKey }),
  });
  assert.equal(reg.status, 201, await reg.clone().text());
  assert.deepEqual(await grants(`d_${uuid}`, deviceKey, 'repository:reg-a/web:pull,push'), ['pull']);
  assert.deepEqual(await grants(`d_${uuid}`, deviceKey, 'repository:reg-b/web:pull'), []);
  assert.equal(await grants(`d_${uuid}`, 'wrong-device-key', 'repository:reg-a/web:pull'), 401);

  // The /v2/ challenge names the server's public URL.
  const res = await fetch(`${server.url}/v2/`);
  assert.equal(res.status, 401);
  assert.equal(
    res.headers.get('www-authenticate'),
    `Bearer realm="${server.url}/auth/v1/token",service="${new URL(server.url).host}"`,
  );
  // Direct basic auth on a registry route by a device for another fleet is refused.
  const denied = await fetch(`${server.url}/v2/reg-b/web/tags/list`, {
    headers: { authorization: basic(`d_${uuid}`, deviceKey) },
  });
  assert.equal(denied.status, 403);
});
