import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { AttackTally, basicAuth, bounded } from '../testing/attacks.js';
import { randomBytes } from 'node:crypto';
import { osRepository } from '@flotilla/protocol';
import { pushOsImage } from '../testing/os-release-image.js';
import { sha256Digest } from '../testing/registry-client.js';
import { twoTenants, type HttpAnswer, type Tenant, type TwoTenants } from '../testing/tenants.js';

/**
 * User API routes that name no resource of a tenant, so there is nothing of another tenant to aim them at. Every
 * other served /api/v1 route must be in the attack table below: a new route fails this test until it is attacked
 * or listed here with its reason.
 */
const NAMES_NO_TENANT_RESOURCE = new Map<string, string>([
  ['POST /api/v1/auth/login', 'credentials only; guessing is the login rate limit’s concern'],
  [
    'POST /api/v1/auth/browser-session',
    'credentials only, as /auth/login (the cookie is checked in security/browser-session)',
  ],
  ['GET /api/v1/auth/csrf', 'the caller’s own cookie session'],
  ['POST /api/v1/auth/logout', 'ends the caller’s own session'],
  ['GET /api/v1/whoami', 'the caller only (its answer is checked for leaks below)'],
  ['GET /api/v1/api-keys', 'the caller’s own keys (checked for leaks below)'],
  ['POST /api/v1/api-keys', 'creates a key of the caller'],
  ['POST /api/v1/users', 'creates a user; who may is decided by the user-creation rule, not by tenancy'],
  ['GET /api/v1/organizations', 'the caller’s organizations (checked for leaks below)'],
  ['POST /api/v1/organizations', 'creates a new organization'],
  ['GET /api/v1/fleets', 'the caller’s fleets (checked for leaks below)'],
  ['GET /api/v1/invitations', 'the caller’s own invitations (B’s pending one is checked unchanged below)'],
  ['GET /api/v1/openapi.json', 'the public API description'],
  [
    'GET /api/v1/fleet-counts/events',
    'the counts of the caller’s fleets (events/fleet-counts.integration.test: another organization’s user gets none)',
  ],
]);

interface Attack {
  /** `METHOD /template` of the served route. */
  route: string;
  path: string;
  body?: unknown;
}

/** Every way user A can name a resource of tenant B through the user API. */
function attacksOn(a: Tenant, b: Tenant, bOsReleaseId: number): Attack[] {
  const out: Attack[] = [];
  const add = (method: string, template: string, params: Record<string, string | number>, body?: unknown) => {
    const path = template.replace(/:([a-zA-Z]+)/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined) throw new Error(`no value for :${name} in ${template}`);
      return encodeURIComponent(String(value));
    });
    out.push({ route: `${method} ${template.split('?')[0]}`, path, ...(body === undefined ? {} : { body }) });
  };
  const api = '/api/v1';

  // Organization by handle.
  add('GET', `${api}/organizations/:org`, { org: b.org });
  add('GET', `${api}/organizations/:org/members`, { org: b.org });
  add('POST', `${api}/organizations/:org/invitations`, { org: b.org }, { username: a.username, role: 'admin' });
  // Any user id: A never gets past finding B's organization, whose members it names.
  add('DELETE', `${api}/organizations/:org/members/:userId`, { org: b.org, userId: 1 });
  add('PATCH', `${api}/organizations/:org/members/:userId`, { org: b.org, userId: 1 }, { role: 'observer' });

  // Fleet by slug, and what hangs off it.
  const slug = { slug: b.slug };
  const fleet = `${api}/fleets/:slug`;
  add('GET', fleet, slug);
  add('PATCH', fleet, slug, { name: 'taken over' });
  add('PATCH', fleet, slug, { pinnedRelease: null });
  add('DELETE', fleet, slug);
  add('GET', `${fleet}/provisioning-keys`, slug);
  add('POST', `${fleet}/provisioning-keys`, slug, {});
  add('DELETE', `${fleet}/provisioning-keys/:id`, { slug: b.slug, id: b.provisioningKeyId });
  // B's provisioning key id through A's own fleet.
  add('DELETE', `${fleet}/provisioning-keys/:id`, { slug: a.slug, id: b.provisioningKeyId });
  add('POST', `${fleet}/config-json`, slug, {});
  add('GET', `${fleet}/releases`, slug);
  add('POST', `${fleet}/releases`, slug, { composition: { services: { main: { image: 'evil/image' } } } });
  for (const method of ['GET', 'POST', 'PUT']) {
    add(method, `${fleet}/env`, slug, method === 'GET' ? undefined : { name: b.envName, value: 'taken over' });
    add(method, `${fleet}/config`, slug, method === 'GET' ? undefined : { name: b.configName, value: '60000' });
  }
  add('DELETE', `${fleet}/env/:name`, { slug: b.slug, name: b.envName });
  add('DELETE', `${fleet}/config/:name`, { slug: b.slug, name: b.configName });
  add('GET', `${fleet}/tags`, slug);
  add('GET', `${fleet}/events`, slug);
  add('GET', `${fleet}/rollout`, slug);
  add('POST', `${fleet}/rollouts`, slug, { release: b.releaseId, batches: [100] });
  for (const action of ['pause', 'resume', 'abort']) add('POST', `${fleet}/rollout/${action}`, slug);
  add('GET', `${fleet}/rollout-policies`, slug);
  add('PUT', `${fleet}/rollout-policies/:name`, { slug: b.slug, name: 'canary' }, { batches: [100] });
  add('DELETE', `${fleet}/rollout-policies/:name`, { slug: b.slug, name: 'canary' });
  const window = { cron: '0 2 * * *', durationSeconds: 3600, timezone: 'UTC' };
  add('PUT', `${fleet}/update-window`, slug, window);
  add('DELETE', `${fleet}/update-window`, slug);
  add('PUT', `${fleet}/os`, slug, { version: '1.0.0' });
  add('DELETE', `${fleet}/os`, slug);
  add('POST', `${fleet}/os-rollouts`, slug, { version: '1.0.0', batches: [100] });
  add('GET', `${fleet}/os-rollout`, slug);
  for (const action of ['pause', 'resume', 'abort']) add('POST', `${fleet}/os-rollout/${action}`, slug);
  // Host OS releases by organization, and B's by id.
  add('DELETE', `${api}/os-releases/:id`, { id: bOsReleaseId });
  const osRelease = { deviceType: 'generic-amd64', version: '1.0.0', manifestDigest: b.image.manifestDigest };
  add('POST', `${api}/organizations/:org/os-releases`, { org: b.org }, osRelease);
  add('GET', `${api}/os-releases?organization=:org`, { org: b.org });
  // B's release staged in A's own fleet.
  add('POST', `${fleet}/rollouts`, { slug: a.slug }, { release: b.releaseId, batches: [100] });
  add('POST', `${fleet}/rollouts`, { slug: a.slug }, { release: b.releaseCommit, batches: [100] });

  // Device by UUID, short UUID (7 and 12 characters) and name.
  const device = `${api}/devices/:uuid`;
  for (const ref of [b.uuid, b.uuid.slice(0, 7), b.uuid.slice(0, 12), b.deviceName]) {
    const uuid = { uuid: ref };
    add('GET', device, uuid);
    add('PATCH', device, uuid, { name: 'taken over' });
    add('DELETE', device, uuid);
    for (const kind of ['env', 'config', 'tags'] as const) {
      const name = kind === 'env' ? b.envName : kind === 'config' ? b.configName : b.tagKey;
      const body =
        kind === 'tags' ? { key: b.tagKey, value: 'taken over' } : { name, value: kind === 'env' ? 'x' : '60000' };
      add('GET', `${device}/${kind}`, uuid);
      add('POST', `${device}/${kind}`, uuid, body);
      add('PUT', `${device}/${kind}`, uuid, body);
      add('DELETE', `${device}/${kind}/:name`, { uuid: ref, name });
    }
    add('GET', `${device}/logs`, uuid);
    add('POST', `${device}/actions?wait=0`, uuid, { action: 'reboot' });
    add('GET', `${device}/actions`, uuid);
    add('GET', `${device}/actions/:id`, { uuid: ref, id: b.actionId });
    // Remote access: the WebSocket routes check before the upgrade, so a plain GET meets the same refusal.
    add('GET', `${device}/shell`, uuid);
    add('GET', `${device}/tunnel?port=22`, uuid);
    add('GET', `${device}/public-url`, uuid);
    add('PUT', `${device}/public-url`, uuid, { port: 80 });
    add('DELETE', `${device}/public-url`, uuid);
    add('PUT', `${device}/update-window`, uuid, { cron: '0 2 * * *', durationSeconds: 3600, timezone: 'UTC' });
    add('DELETE', `${device}/update-window`, uuid);
    add('PUT', `${device}/os`, uuid, { version: '1.0.0' });
    add('DELETE', `${device}/os`, uuid);
    add('GET', `${api}/remote-sessions?device=:uuid`, uuid);
  }
  // B's action id through A's own device.
  add('GET', `${device}/actions/:id`, { uuid: a.uuid, id: b.actionId });

  // Release by id, commit and commit prefix.
  for (const ref of [String(b.releaseId), b.releaseCommit, b.releaseCommit.slice(0, 7)]) {
    add('GET', `${api}/releases/:ref`, { ref });
    add('PATCH', `${api}/releases/:ref`, { ref }, { status: 'failed' });
    add('PATCH', `${api}/releases/:ref`, { ref }, { notes: 'taken over' });
  }

  add('DELETE', `${api}/api-keys/:id`, { id: b.apiKeyId });
  add('POST', `${api}/invitations/:id/accept`, { id: b.invitationId });
  add('POST', `${api}/invitations/:id/decline`, { id: b.invitationId });

  // B's resources named in a body or query of a request about A's own resources.
  add('POST', `${api}/fleets`, {}, { name: 'stolen', slug: 'stolen-fleet', organization: b.org });
  add('GET', `${api}/devices?fleet=:slug`, slug);
  add('GET', `${api}/devices?fleet=:slug&release=:release`, { slug: b.slug, release: b.releaseCommit });
  add('GET', `${api}/devices?fleet=:slug&search=:search`, { slug: b.slug, search: b.uuid.slice(0, 7) });
  add('PATCH', device, { uuid: a.uuid }, { fleet: b.slug });
  for (const pinnedRelease of [b.releaseId, b.releaseCommit]) {
    add('PATCH', device, { uuid: a.uuid }, { pinnedRelease });
    add('PATCH', fleet, { slug: a.slug }, { pinnedRelease });
  }
  return out;
}

/** A refusal that tells nothing: the resource "does not exist" for the caller, or the caller may not. */
function refused(res: HttpAnswer): boolean {
  const code = res.data?.error?.code as string | undefined;
  return (res.status === 404 && /(^|_)NOT_FOUND$/.test(code ?? '')) || (res.status === 403 && code === 'FORBIDDEN');
}

/** What B can see of its own things; volatile fields (last seen, last used) left out. */
async function stateOf(t: TwoTenants, b: Tenant): Promise<unknown> {
  const paths = [
    `/api/v1/organizations/${b.org}`,
    `/api/v1/organizations/${b.org}/members`,
    `/api/v1/fleets/${b.slug}`,
    `/api/v1/fleets/${b.slug}/provisioning-keys`,
    `/api/v1/fleets/${b.slug}/releases`,
    `/api/v1/fleets/${b.slug}/env`,
    `/api/v1/fleets/${b.slug}/config`,
    `/api/v1/fleets/${b.slug}/tags`,
    `/api/v1/devices?fleet=${b.slug}`,
    `/api/v1/devices/${b.uuid}/env`,
    `/api/v1/devices/${b.uuid}/config`,
    `/api/v1/devices/${b.uuid}/tags`,
    `/api/v1/devices/${b.uuid}/actions`,
    `/api/v1/devices/${b.uuid}/public-url`,
    '/api/v1/remote-sessions',
    `/api/v1/releases/${b.releaseId}`,
    '/api/v1/api-keys',
    '/api/v1/invitations',
    '/api/v1/os-releases',
  ];
  const state: Record<string, unknown> = {};
  for (const path of paths) {
    const res = await t.call('GET', path, { key: b.token });
    assert.equal(res.status, 200, `${path}: ${res.text}`);
    state[path] = JSON.parse(res.text, (key, value: unknown) =>
      ['lastSeenAt', 'isOnline', 'lastUsedAt'].includes(key) ? undefined : value,
    );
  }
  return state;
}

for (const testDb of testDatabases()) {
  describe(`security: user A against every user API route naming tenant B's resources (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('every attack is refused with a NOT_FOUND or FORBIDDEN, B is unchanged, and no route is left out', async () => {
      const { a, b } = t;
      // B's OS release 1.0.0, which B's device targets: what the OS routes above aim at.
      const orgs = await t.call('GET', '/api/v1/organizations', { key: b.token });
      const bOrg = orgs.data.items.find((o: { handle: string }) => o.handle === b.org).id as number;
      const config = { deviceType: 'generic-amd64', version: '1.0.0' };
      const repository = osRepository(bOrg, config.deviceType);
      const pushed = await pushOsImage(t.url, basicAuth(b.username, b.apiKey), repository, randomBytes(3000), config);
      const made = await t.call('POST', `/api/v1/organizations/${b.org}/os-releases`, {
        key: b.apiKey,
        body: { ...config, manifestDigest: pushed.digest },
      });
      assert.equal(made.status, 201, made.text);
      const set = await t.call('PUT', `/api/v1/devices/${b.uuid}/os`, { key: b.apiKey, body: { version: '1.0.0' } });
      assert.equal(set.status, 200, set.text);
      const attacks = attacksOn(a, b, made.data.id as number);
      const served = t.server.app.flotilla.routes
        .filter((r) => r.url.startsWith('/api/v1/'))
        .map((r) => `${r.method} ${r.url}`);
      const attacked = new Set(attacks.map((x) => x.route));
      const unchecked = served.filter((r) => !attacked.has(r) && !NAMES_NO_TENANT_RESOURCE.has(r));
      assert.deepEqual(unchecked, [], 'served routes neither attacked here nor listed as naming no tenant resource');
      for (const route of [...attacked, ...NAMES_NO_TENANT_RESOURCE.keys()])
        assert.ok(served.includes(route), `${route} is listed here but no longer served`);

      // B's device runs B's release, so the list filters below have something of B's to leak; B finds it itself.
      const report = { [b.uuid]: { is_on__commit: b.releaseCommit, status: 'Idle' } };
      assert.equal((await t.call('PATCH', '/device/v3/state', { key: b.deviceKey, body: report })).status, 200);
      for (const query of [`release=${b.releaseCommit.slice(0, 7)}`, 'search=beta', `search=${b.uuid.slice(0, 9)}`]) {
        const own = await t.call('GET', `/api/v1/devices?${query}`, { key: b.token });
        assert.deepEqual(
          own.data.items.map((d: { uuid: string }) => d.uuid),
          [b.uuid],
          `B's own ?${query} finds B's device`,
        );
      }

      const before = await stateOf(t, b);
      const tally = new AttackTally('cross-tenant');
      // Both of A's credentials: the session token and the API key take different paths to a principal.
      const tasks = [a.token, a.apiKey].flatMap((key) =>
        attacks.map((attack) => async () => {
          // Bounded: a stream (fleet events) let through would otherwise keep this request open forever.
          const res = await t.call(attack.route.split(' ')[0] as string, attack.path, {
            key,
            body: attack.body,
            signal: AbortSignal.timeout(10_000),
          });
          tally.record(refused(res), `${attack.route.split(' ')[0]} ${attack.path} → ${res.status} ${res.text}`);
        }),
      );
      // A follow request that was let through would stream B's logs forever: it must be refused at once.
      tasks.push(async () => {
        const res = await t.call('GET', `/api/v1/devices/${b.uuid}/logs?follow=1`, {
          key: a.token,
          signal: AbortSignal.timeout(5000),
        });
        tally.record(refused(res), `follow B's logs → ${res.status}`);
      });
      await bounded(8, tasks);

      // Lists answer 200 with A's things only, whatever B's names, UUIDs and commits their filters carry.
      for (const path of [
        '/api/v1/fleets',
        '/api/v1/devices',
        '/api/v1/organizations',
        '/api/v1/whoami',
        `/api/v1/devices?release=${b.releaseCommit}`,
        `/api/v1/devices?release=${b.releaseCommit.slice(0, 7)}`,
        `/api/v1/devices?search=${b.uuid.slice(0, 7)}`,
        `/api/v1/devices?search=${encodeURIComponent(b.deviceName)}`,
        '/api/v1/devices?search=beta',
        `/api/v1/devices?fleet=${a.slug}&release=${b.releaseCommit}`,
        `/api/v1/devices?fleet=${a.slug}&search=${b.uuid}`,
        `/api/v1/devices?status=offline&sort=-lastSeen&limit=1000`,
      ]) {
        const res = await t.call('GET', path, { key: a.token });
        const leaked = [b.slug, b.uuid, b.org, b.deviceName].filter((s) => res.text.includes(s));
        tally.record(res.status === 200 && leaked.length === 0, `list ${path} → ${res.status} shows ${leaked}`);
      }
      tally.finish();
      assert.ok(tally.attempts >= 240, `only ${tally.attempts} attempts`);

      assert.deepEqual(await stateOf(t, b), before, "B's state changed");
      // B's credentials all still work.
      assert.equal((await t.call('GET', `/device/v3/${b.uuid}/state`, { key: b.deviceKey })).status, 200);
      assert.equal((await t.call('GET', '/api/v1/whoami', { key: b.apiKey })).status, 200);
      const self = await t.call('GET', `/v7/device?$filter=${encodeURIComponent(`uuid eq '${b.uuid}'`)}`, {
        key: b.provisioningKey,
      });
      assert.deepEqual(self.data, { d: [{ id: b.deviceId }] }, "B's provisioning key still valid");
      // And A's own device was neither moved nor pinned to B's things.
      const own = await t.call('GET', `/api/v1/devices/${a.uuid}`, { key: a.token });
      assert.equal(own.data.fleet, a.slug);
      assert.equal(own.data.pinnedRelease, null);
    });

    test("user A's credentials on B's registry repositories: no token grant, no pull, push, delete or mount", async () => {
      const { a, b } = t;
      const repo = `${b.slug}/main`;
      const img = b.image;
      const tally = new AttackTally('cross-tenant registry');
      const host = new URL(t.url).host;
      for (const auth of [
        basicAuth(a.username, a.apiKey),
        basicAuth(a.username, a.password),
        basicAuth('x', a.token),
      ]) {
        const headers = { authorization: auth };
        for (const actions of ['pull', 'push', 'pull,push', '*']) {
          const res = await t.call('GET', `/auth/v1/token?service=${host}&scope=repository:${repo}:${actions}`, {
            headers,
          });
          const grants = JSON.parse(Buffer.from(res.data.token.split('.')[1], 'base64url').toString()).access;
          tally.record(
            res.status === 200 && grants.every((g: { actions: string[] }) => g.actions.length === 0),
            `token ${actions} → ${res.text}`,
          );
        }
        const blob = Buffer.from('not yours');
        for (const [method, path, body] of [
          ['GET', `/v2/${repo}/manifests/${img.tag}`],
          ['HEAD', `/v2/${repo}/manifests/${img.manifestDigest}`],
          ['GET', `/v2/${repo}/blobs/${img.layerDigest}`],
          ['GET', `/v2/${repo}/tags/list`],
          ['POST', `/v2/${repo}/blobs/uploads/`],
          ['POST', `/v2/${repo}/blobs/uploads/?digest=${sha256Digest(blob)}`, blob],
          ['PUT', `/v2/${repo}/manifests/${img.tag}`, Buffer.from('{}')],
          ['DELETE', `/v2/${repo}/manifests/${img.manifestDigest}`],
          ['DELETE', `/v2/${repo}/blobs/${img.layerDigest}`],
          // B's blob through A's own repository: blobs are stored once by digest, but served per repository.
          ['GET', `/v2/${a.slug}/main/blobs/${img.layerDigest}`],
        ] as const) {
          const res = await t.call(method, path, { headers, ...(body ? { body } : {}) });
          const expected = path.startsWith(`/v2/${a.slug}/`) ? [404] : [401, 403];
          tally.record(expected.includes(res.status), `${method} ${path} → ${res.status} ${res.text}`);
        }
        // A mount from B's repository falls back to a plain upload (202), never links B's blob (201).
        const mount = await t.call(
          'POST',
          `/v2/${a.slug}/main/blobs/uploads/?mount=${img.layerDigest}&from=${encodeURIComponent(repo)}`,
          { headers },
        );
        tally.record(mount.status === 202, `mount from ${repo} → ${mount.status}`);
        const read = await t.call('GET', `/v2/${a.slug}/main/blobs/${img.layerDigest}`, { headers });
        tally.record(read.status === 404, `read of the mounted blob → ${read.status}`);
      }
      tally.finish();
      // B still has its image.
      const own = await t.call('GET', `/v2/${repo}/manifests/${img.tag}`, {
        headers: {
          authorization: basicAuth(b.username, b.apiKey),
          accept: 'application/vnd.oci.image.manifest.v1+json',
        },
      });
      assert.equal(own.status, 200);
      assert.equal(own.headers.get('docker-content-digest'), img.manifestDigest);
    });
  });
}
