import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { fleetWithDevice, harness } from '../testing/harness.js';
import { GuessLimiter } from './guess-limiter.js';
import { authenticateCredentials, deviceMayPull, userMayPush } from './registry-access.js';

/**
 * Two tenants: the bootstrap admin (org "default", fleet "alpha") and bob (org "bobco", fleet "beta"). Bob tries
 * every parameterised user-API route on alpha's resources, and each device key tries the other device.
 */
for (const testDb of testDatabases()) {
  describe(`authorization across tenants (${testDb.label})`, () => {
    let h: Harness;
    let bobToken: string;
    let alpha: Awaited<ReturnType<typeof fleetWithDevice>>;
    let beta: Awaited<ReturnType<typeof fleetWithDevice>>;
    let alphaRelease: string;
    let alphaKeyId: number;

    before(async () => {
      h = await harness(testDb);
      assert.equal(
        (await h.call('POST', '/api/v1/users', h.adminKey, { username: 'bob', password: 'bob-password' })).statusCode,
        201,
      );
      const login = await h.call('POST', '/api/v1/auth/login', undefined, {
        username: 'bob',
        password: 'bob-password',
      });
      assert.equal(login.statusCode, 200);
      bobToken = login.data.token;
      assert.equal(
        (await h.call('POST', '/api/v1/organizations', bobToken, { name: 'Bob Co', handle: 'bobco' })).statusCode,
        201,
      );
      alpha = await fleetWithDevice(h, h.adminKey, 'alpha');
      beta = await fleetWithDevice(h, bobToken, 'beta', 'bobco');
      const release = await h.call('POST', '/api/v1/fleets/alpha/releases', h.adminKey, {
        composition: { services: { main: { image: 'a/b' } } },
        status: 'success',
      });
      alphaRelease = release.data.commit;
      alphaKeyId = (await h.call('GET', '/api/v1/api-keys', h.adminKey)).data.items[0].id;
      await h.call('POST', `/api/v1/devices/${alpha.uuid}/tags`, h.adminKey, { key: 'k', value: 'v' });
    });
    after(() => h.close());

    test("bob cannot reach any of alpha's resources through a parameterised route", async () => {
      const routes = h.app.flotilla.routes.filter((r) => r.url.startsWith('/api/v1/') && r.url.includes(':'));
      assert.ok(routes.length > 20, `found only ${routes.length} routes`);
      // Devices are tried by UUID and by name: a name resolves only among the caller's own devices.
      const alphaName = (await h.call('GET', `/api/v1/devices/${alpha.uuid}`, h.adminKey)).data.name as string;
      const fills: Record<string, string>[] = [alpha.uuid, alphaName].map((uuid) => ({
        slug: 'alpha',
        uuid,
        ref: alphaRelease,
        id: String(alphaKeyId),
        org: 'default',
        name: 'X',
        username: 'admin',
      }));
      for (const [route, fill] of routes.flatMap((r) => fills.map((f) => [r, f] as const))) {
        const url = route.url.replace(/:([a-zA-Z]+)/g, (_, p: string) => encodeURIComponent(fill[p] ?? 'x'));
        const body =
          route.method === 'GET' || route.method === 'DELETE'
            ? undefined
            : { name: 'X', value: 'y', key: 'k', status: 'failed', username: 'bob' };
        for (const key of [bobToken, undefined, 'garbage-token-0123456789']) {
          const res = await h.call(route.method, url, key, body);
          const expected = key === bobToken ? [400, 403, 404] : [401];
          assert.ok(
            expected.includes(res.statusCode),
            `${route.method} ${url} as ${key === bobToken ? 'bob' : String(key)}: ${res.statusCode} ${res.body}`,
          );
          if (key === bobToken && res.statusCode === 400) {
            // A 400 is acceptable only if validation happens before lookup; it must not have changed anything.
            assert.notEqual(res.data.error.code, 'INTERNAL');
          }
        }
      }
      // Nothing of alpha changed.
      const env = await h.call('GET', '/api/v1/fleets/alpha/env', h.adminKey);
      assert.deepEqual(env.data.items, []);
      assert.equal((await h.call('GET', `/api/v1/devices/${alpha.uuid}`, h.adminKey)).statusCode, 200);
      assert.equal((await h.call('GET', `/api/v1/releases/${alphaRelease}`, h.adminKey)).data.status, 'success');
      assert.equal((await h.call('GET', '/api/v1/api-keys', h.adminKey)).data.items.length, 1);
    });

    test("lists show only the caller's organizations", async () => {
      const fleets = await h.call('GET', '/api/v1/fleets', bobToken);
      assert.deepEqual(
        fleets.data.items.map((f: { slug: string }) => f.slug),
        ['beta'],
      );
      const devices = await h.call('GET', '/api/v1/devices', bobToken);
      assert.deepEqual(
        devices.data.items.map((d: { uuid: string }) => d.uuid),
        [beta.uuid],
      );
      assert.equal((await h.call('GET', '/api/v1/devices?fleet=alpha', bobToken)).statusCode, 404);
      const orgs = await h.call('GET', '/api/v1/organizations', bobToken);
      assert.deepEqual(
        orgs.data.items.map((o: { handle: string }) => o.handle),
        ['bobco'],
      );
      assert.equal(
        (await h.call('POST', '/api/v1/fleets', bobToken, { name: 'x', organization: 'default' })).statusCode,
        404,
      );
      assert.equal(
        (await h.call('POST', '/api/v1/users', bobToken, { username: 'eve', password: 'eve-password' })).statusCode,
        403,
        'administering an organization does not make bob a server administrator',
      );
    });

    test('device keys reach only their own device; provisioning keys only their fleet', async () => {
      for (const [self, other] of [
        [alpha, beta],
        [beta, alpha],
      ] as const) {
        assert.equal((await h.call('GET', `/device/v3/${other.uuid}/state`, self.deviceKey)).statusCode, 401);
        assert.equal((await h.call('GET', `/device/v3/${self.uuid}/state`, other.provisioningKey)).statusCode, 401);
        assert.equal(
          (await h.call('PATCH', '/device/v3/state', self.deviceKey, { [other.uuid]: { status: 'pwned' } })).statusCode,
          401,
        );
        assert.equal(
          (await h.call('PATCH', '/device/v3/tags', self.deviceKey, { [other.uuid]: { a: 'b' } })).statusCode,
          401,
        );
        const find = await h.call(
          'GET',
          `/v7/device?$select=id&$filter=${encodeURIComponent(`uuid eq '${other.uuid}'`)}`,
          self.deviceKey,
        );
        assert.deepEqual(find.data, { d: [] });
        const findByPk = await h.call(
          'GET',
          `/v7/device?$select=id&$filter=${encodeURIComponent(`uuid eq '${other.uuid}'`)}`,
          self.provisioningKey,
        );
        assert.deepEqual(findByPk.data, { d: [] });
        const exchange = await h.call('POST', `/api-key/device/${other.deviceId}/device-key`, self.provisioningKey, {
          apiKey: generateKey(),
        });
        assert.equal(exchange.statusCode, 404);
        const register = await h.call('POST', '/device/register', self.provisioningKey, {
          application: other.fleetId,
          uuid: generateDeviceUuid(),
          device_type: 'x',
          api_key: generateKey(),
        });
        assert.equal(register.statusCode, 403);
        assert.equal(
          (await h.call('GET', `/api/v1/devices/${self.uuid}`, self.deviceKey)).statusCode,
          401,
          'a device key is not a user credential',
        );
      }
      const device = await h.call('GET', `/api/v1/devices/${beta.uuid}`, bobToken);
      assert.equal(device.data.status, null);
    });

    test('registry access: who may pull and push which repository', async () => {
      const db = h.app.flotilla.db;
      const guard = { limiter: new GuessLimiter(), source: '192.0.2.1' };
      const dev = await authenticateCredentials(db, `d_${alpha.uuid}`, alpha.deviceKey, guard);
      const { credential, ...device } = dev ?? { credential: '' };
      assert.deepEqual(device, { kind: 'device', uuid: alpha.uuid, fleetId: alpha.fleetId, fleetSlug: 'alpha' });
      assert.match(credential, /^d:\d+:[0-9a-f]{16}$/, 'names the device key it was made from');
      assert.equal(await authenticateCredentials(db, `d_${beta.uuid}`, alpha.deviceKey, guard), null);
      assert.equal(await authenticateCredentials(db, 'admin', 'wrong-password', guard), null);
      const admin = await authenticateCredentials(db, 'admin', 'admin-password', guard);
      assert.equal(admin?.kind, 'user');
      const bob = await authenticateCredentials(db, 'anything', bobToken, guard);
      assert.equal(bob?.kind, 'user');
      assert.ok(bob && admin);
      assert.equal(await deviceMayPull(db, alpha.uuid, 'alpha/main'), true);
      assert.equal(await deviceMayPull(db, alpha.uuid, 'beta/main'), false);
      assert.equal(await deviceMayPull(db, alpha.uuid, 'alpha'), false);
      assert.equal(await userMayPush(db, admin, 'alpha/main'), true);
      assert.equal(await userMayPush(db, admin, 'beta/main'), false);
      assert.equal(await userMayPush(db, bob, 'beta/main'), true);
      assert.equal(await userMayPush(db, bob, 'alpha/main'), false);
      assert.ok(dev);
      assert.equal(await userMayPush(db, dev, 'alpha/main'), false, 'devices never push');
    });
  });
}
