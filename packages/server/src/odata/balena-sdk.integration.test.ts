import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { getSdk } from 'balena-sdk';
import { type TwoTenants, twoTenants } from '../testing/tenants.js';

/**
 * The npm package balena-sdk, unmodified, pointed at a live Flotilla and logged in with tenant A's API key: each
 * call the issue lists, answered in the shapes the SDK parses, and never with tenant B's data.
 */
for (const testDb of testDatabases()) {
  describe(`OData: balena-sdk against Flotilla (${testDb.label})`, () => {
    let t: TwoTenants;
    let sdk: ReturnType<typeof getSdk>;
    before(async () => {
      t = await twoTenants(testDb);
      sdk = getSdk({ apiUrl: t.url, dataDirectory: false });
      await sdk.auth.loginWithToken(t.a.apiKey);
    });
    after(() => t.close());

    test('auth.whoami, getActorId, config.getAll, deviceType.getAll', async () => {
      const me = await sdk.auth.whoami();
      assert.equal(me?.actorType, 'user');
      assert.equal((me as { username: string }).username, t.a.username);
      assert.equal(typeof (await sdk.auth.getActorId()), 'number');
      assert.deepEqual(await sdk.models.config.getAll(), {});
      const types = await sdk.models.deviceType.getAll();
      assert.ok(types.some((dt) => dt.slug === 'raspberrypi4-64'));
      const names = types.map((dt) => dt.name);
      assert.deepEqual(names, [...names].sort());
    });

    test('application.getAll, get by slug and by id; organization.getAll: only A’s', async () => {
      const apps = await sdk.models.application.getAll();
      assert.deepEqual(
        apps.map((a) => a.slug),
        [t.a.slug],
      );
      const bySlug = await sdk.models.application.get(t.a.slug);
      assert.equal(bySlug.id, t.a.fleetId);
      assert.equal((await sdk.models.application.get(t.a.fleetId)).slug, t.a.slug);
      await assert.rejects(sdk.models.application.get(t.b.slug), /not found/i);
      await assert.rejects(sdk.models.application.get(t.b.fleetId), /not found/i);
      const orgs = await sdk.models.organization.getAll();
      assert.deepEqual(
        orgs.map((o) => o.handle),
        [t.a.org],
      );
    });

    test('device.get, getAllByApplication, getAllByOrganization, rename, pinToRelease', async () => {
      const device = await sdk.models.device.get(t.a.uuid);
      assert.equal(device.id, t.a.deviceId);
      assert.deepEqual(device.belongs_to__application, { __id: t.a.fleetId });
      await assert.rejects(sdk.models.device.get(t.b.uuid), /not found/i);
      // A short UUID, as the balena CLI takes one: pinejs-client's $startswith (and the other string functions).
      const [short, none] = await Promise.all(
        [t.a.uuid, t.b.uuid].map((uuid) =>
          sdk.pine.get({
            resource: 'device',
            options: {
              $select: ['id'],
              $filter: {
                uuid: { $startswith: uuid.slice(0, 7) },
                $not: { device_name: { $contains: 'no-such-name' } },
              },
            },
          }),
        ),
      );
      assert.deepEqual(short, [{ id: t.a.deviceId }]);
      assert.deepEqual(none, [], 'another tenant’s device is not found by its prefix');
      const byApp = await sdk.models.device.getAllByApplication(t.a.slug);
      assert.deepEqual(
        byApp.map((d) => d.uuid),
        [t.a.uuid],
      );
      await assert.rejects(sdk.models.device.getAllByApplication(t.b.slug), /not found/i);
      const byOrg = await sdk.models.device.getAllByOrganization(t.a.org);
      assert.deepEqual(
        byOrg.map((d) => d.uuid),
        [t.a.uuid],
      );
      await sdk.models.device.rename(t.a.uuid, 'renamed-by-sdk');
      assert.equal((await sdk.models.device.get(t.a.uuid)).device_name, 'renamed-by-sdk');
      await sdk.models.device.pinToRelease(t.a.uuid, t.a.releaseCommit);
      const pinned = await t.call('GET', `/api/v1/devices/${t.a.uuid}`, { key: t.a.token });
      assert.equal(pinned.data.pinnedRelease, t.a.releaseCommit);
      await assert.rejects(sdk.models.device.pinToRelease(t.a.uuid, t.b.releaseCommit));
    });

    test('device.envVar, application.envVar: getAll, set (twice), remove', async () => {
      await sdk.models.device.envVar.set(t.a.uuid, 'SDK_VAR', 'one');
      await sdk.models.device.envVar.set(t.a.uuid, 'SDK_VAR', 'two');
      const vars = await sdk.models.device.envVar.getAllByDevice(t.a.uuid);
      assert.deepEqual(
        vars.filter((v) => v.name === 'SDK_VAR').map((v) => v.value),
        ['two'],
      );
      assert.equal(await sdk.models.device.envVar.get(t.a.uuid, 'SDK_VAR'), 'two');
      await sdk.models.device.envVar.remove(t.a.uuid, 'SDK_VAR');
      assert.equal(await sdk.models.device.envVar.get(t.a.uuid, 'SDK_VAR'), undefined);
      await assert.rejects(sdk.models.device.envVar.set(t.b.uuid, 'SDK_VAR', 'x'), /not found/i);

      await sdk.models.application.envVar.set(t.a.slug, 'SDK_FLEET', 'f1');
      const fleetVars = await sdk.models.application.envVar.getAllByApplication(t.a.slug);
      assert.ok(fleetVars.some((v) => v.name === 'SDK_FLEET' && v.value === 'f1'));
      await sdk.models.application.envVar.remove(t.a.slug, 'SDK_FLEET');
      assert.equal(await sdk.models.application.envVar.get(t.a.slug, 'SDK_FLEET'), undefined);
      await assert.rejects(sdk.models.application.envVar.set(t.b.slug, 'SDK_FLEET', 'x'), /not found/i);
    });

    test('service.var: set (by id, then by its natural key), getAllByService, get, remove; the target carries it', async () => {
      const [service] = await sdk.models.service.getAllByApplication(t.a.slug, { $select: ['id', 'service_name'] });
      assert.equal(service?.service_name, 'main');
      const serviceId = service!.id;
      await sdk.models.service.var.set(serviceId, 'SDK_SERVICE', 'one');
      await sdk.models.service.var.set({ application: t.a.slug, service_name: 'main' }, 'SDK_SERVICE', 'two');
      const vars = await sdk.models.service.var.getAllByService(serviceId);
      assert.deepEqual(
        vars.map((v) => [v.name, v.value, v.service]),
        [['SDK_SERVICE', 'two', { __id: serviceId }]],
      );
      assert.equal(await sdk.models.service.var.get(serviceId, 'SDK_SERVICE'), 'two');
      // What the device runs: the service's environment in the target state (the same rows as /api/v1 writes).
      const target = await t.call('GET', `/device/v3/${t.a.uuid}/state`, { key: t.a.deviceKey });
      assert.equal(target.status, 200, target.text);
      assert.match(target.text, /"SDK_SERVICE":"two"/);
      // A fleet-wide variable of the same name is another row: the service's is not a fleet variable.
      const fleetVars = await sdk.models.application.envVar.getAllByApplication(t.a.slug);
      assert.ok(!fleetVars.some((v) => v.name === 'SDK_SERVICE'));
      await sdk.models.service.var.remove(serviceId, 'SDK_SERVICE');
      assert.equal(await sdk.models.service.var.get(serviceId, 'SDK_SERVICE'), undefined);
      // Tenant B's service: neither readable nor writable.
      const other = await t.call(
        'GET',
        `/v7/service?$select=id&$filter=${encodeURIComponent(`application eq ${t.b.fleetId}`)}`,
        {
          key: t.b.apiKey,
        },
      );
      const otherId = other.data.d[0].id as number;
      await assert.rejects(sdk.models.service.var.set(otherId, 'SDK_SERVICE', 'x'), /SERVICE_NOT_FOUND|not found/i);
      assert.deepEqual(await sdk.models.service.var.getAllByService(otherId).catch(() => []), []);
    });

    test('device.tags: getAllByDevice, set, remove', async () => {
      await sdk.models.device.tags.set(t.a.uuid, 'sdk-tag', 'v1');
      await sdk.models.device.tags.set(t.a.uuid, 'sdk-tag', 'v2');
      const tags = await sdk.models.device.tags.getAllByDevice(t.a.uuid);
      assert.deepEqual(
        tags.filter((x) => x.tag_key === 'sdk-tag').map((x) => x.value),
        ['v2'],
      );
      await sdk.models.device.tags.remove(t.a.uuid, 'sdk-tag');
      const after = await sdk.models.device.tags.getAllByDevice(t.a.uuid);
      assert.ok(!after.some((x) => x.tag_key === 'sdk-tag'));
    });

    test('release.getAllByApplication, release.get by commit and by id', async () => {
      const releases = await sdk.models.release.getAllByApplication(t.a.slug);
      assert.deepEqual(
        releases.map((r) => r.commit),
        [t.a.releaseCommit],
      );
      assert.equal((await sdk.models.release.get(t.a.releaseCommit)).id, t.a.releaseId);
      assert.equal((await sdk.models.release.get(t.a.releaseId)).commit, t.a.releaseCommit);
      await assert.rejects(sdk.models.release.get(t.b.releaseCommit), /not found/i);
      await assert.rejects(sdk.models.release.get(t.b.releaseId), /not found/i);
    });

    // After the release test: this one adds a release (two services) to A's fleet.
    test('device.serviceVar: set (twice), getAllByDevice, getAllByApplication, get, remove; only that service’s environment in the target; B’s device refused', async () => {
      const { a, b } = t;
      // Two services, so "that service only" can fail: a release of main and worker, the device pinned to it.
      const digest = (c: string) => `registry.example/app@sha256:${c.repeat(64)}`;
      const composition = { services: { main: { image: digest('a') }, worker: { image: digest('b') } } };
      const release = await t.call('POST', `/api/v1/fleets/${a.slug}/releases`, {
        key: a.token,
        body: { composition, status: 'success' },
      });
      assert.equal(release.status, 201, release.text);
      await sdk.models.device.pinToRelease(a.uuid, release.data.commit);
      const environments = async () => {
        const target = await t.call('GET', `/device/v3/${a.uuid}/state`, { key: a.deviceKey });
        assert.equal(target.status, 200, target.text);
        type Services = Record<string, { environment: Record<string, string> }>;
        type Apps = Record<string, { releases: Record<string, { services: Services }> }>;
        const [app] = Object.values(target.data[a.uuid].apps as Apps);
        const services = app?.releases[release.data.commit]?.services;
        assert.ok(services, target.text);
        return { main: services.main?.environment ?? {}, worker: services.worker?.environment ?? {} };
      };
      try {
        await sdk.models.device.serviceVar.set(a.uuid, 'main', 'SDK_DEVICE_SERVICE', 'one');
        await sdk.models.device.serviceVar.set(a.uuid, 'main', 'SDK_DEVICE_SERVICE', 'two');
        const [main] = await sdk.models.service.getAllByApplication(a.slug, {
          $select: 'id',
          $filter: { service_name: 'main' },
        });
        const byDevice = await sdk.models.device.serviceVar.getAllByDevice(a.uuid, {
          $select: ['name', 'value'],
          $expand: { service_install: { $select: ['device', 'installs__service'] } },
        });
        assert.deepEqual(byDevice, [
          {
            name: 'SDK_DEVICE_SERVICE',
            value: 'two',
            service_install: [{ device: { __id: a.deviceId }, installs__service: { __id: main!.id } }],
          },
        ]);
        const byFleet = await sdk.models.device.serviceVar.getAllByApplication(a.slug);
        assert.deepEqual(
          byFleet.map((v) => [v.name, v.value]),
          [['SDK_DEVICE_SERVICE', 'two']],
        );
        assert.equal(await sdk.models.device.serviceVar.get(a.uuid, 'main', 'SDK_DEVICE_SERVICE'), 'two');
        assert.equal(await sdk.models.device.serviceVar.get(a.uuid, main!.id, 'SDK_DEVICE_SERVICE'), 'two');
        assert.equal(await sdk.models.device.serviceVar.get(a.uuid, 'worker', 'SDK_DEVICE_SERVICE'), undefined);
        // What the device runs: main's environment has it, worker's and the device-wide variables do not.
        const env = await environments();
        assert.equal(env.main.SDK_DEVICE_SERVICE, 'two');
        assert.equal(env.worker.SDK_DEVICE_SERVICE, undefined);
        const deviceVars = await sdk.models.device.envVar.getAllByDevice(a.uuid);
        assert.ok(!deviceVars.some((v) => v.name === 'SDK_DEVICE_SERVICE'));
        // The same rows as /api/v1's device variables for a service, both ways.
        const listed = await t.call('GET', `/api/v1/devices/${a.uuid}/env`, { key: a.token });
        assert.ok(
          listed.data.items.some(
            (v: { name: string; value: string; service: string | null }) =>
              v.name === 'SDK_DEVICE_SERVICE' && v.value === 'two' && v.service === 'main',
          ),
          listed.text,
        );
        const viaApi = await t.call('POST', `/api/v1/devices/${a.uuid}/env`, {
          key: a.token,
          body: { name: 'API_DEVICE_SERVICE', value: 'w', service: 'worker' },
        });
        assert.equal(viaApi.status, 200, viaApi.text);
        assert.equal(await sdk.models.device.serviceVar.get(a.uuid, 'worker', 'API_DEVICE_SERVICE'), 'w');
        await sdk.models.device.serviceVar.remove(a.uuid, 'worker', 'API_DEVICE_SERVICE');
        await sdk.models.device.serviceVar.remove(a.uuid, 'main', 'SDK_DEVICE_SERVICE');
        assert.equal(await sdk.models.device.serviceVar.get(a.uuid, 'main', 'SDK_DEVICE_SERVICE'), undefined);
        assert.deepEqual(await sdk.models.device.serviceVar.getAllByDevice(a.uuid), []);
        assert.equal((await environments()).main.SDK_DEVICE_SERVICE, undefined);

        // Tenant B's device: no install of it is found, by UUID or by its install's id, and nothing of B's is read.
        await assert.rejects(sdk.models.device.serviceVar.set(b.uuid, 'main', 'SDK_DEVICE_SERVICE', 'x'), /not found/i);
        await assert.rejects(sdk.models.device.serviceVar.getAllByDevice(b.uuid), /not found/i);
        const theirs = await t.call(
          'GET',
          `/v7/service_install?$select=id&$filter=${encodeURIComponent(`device eq ${b.deviceId}`)}`,
          {
            key: b.apiKey,
          },
        );
        const theirInstall = theirs.data.d[0].id as number;
        const refused = await t.call('POST', '/v7/device_service_environment_variable', {
          key: a.apiKey,
          body: { service_install: theirInstall, name: 'SDK_DEVICE_SERVICE', value: 'x' },
        });
        assert.equal(refused.status, 404, refused.text);
        assert.match(refused.text, /\(SERVICE_NOT_FOUND\)$/);
        const theirVar = await t.call('POST', '/v7/device_service_environment_variable', {
          key: b.apiKey,
          body: { service_install: theirInstall, name: 'B_DEVICE_SERVICE', value: 'b secret' },
        });
        assert.equal(theirVar.status, 201, theirVar.text);
        assert.deepEqual(theirVar.data.service_install, { __id: theirInstall });
        const seen = await t.call('GET', '/v7/device_service_environment_variable', { key: a.apiKey });
        assert.deepEqual(seen.data.d, []);
        for (const method of ['PATCH', 'DELETE'])
          await t.call(method, `/v7/device_service_environment_variable(${theirVar.data.id})`, {
            key: a.apiKey,
            ...(method === 'PATCH' ? { body: { value: 'pwned' } } : {}),
          });
        const still = await t.call('GET', `/v7/device_service_environment_variable(${theirVar.data.id})`, {
          key: b.apiKey,
        });
        assert.deepEqual(
          still.data.d.map((v: { value: string }) => v.value),
          ['b secret'],
        );
        // A device key reads its own device's service variables and writes none.
        const asDevice = await t.call('POST', '/v7/device_service_environment_variable', {
          key: a.deviceKey,
          body: { service_install: theirInstall, name: 'FROM_DEVICE', value: 'x' },
        });
        assert.equal(asDevice.status, 403, asDevice.text);
      } finally {
        await sdk.models.device.pinToRelease(a.uuid, a.releaseCommit);
      }
    });

    test('server errors print as their message and code: a not-found and a forbidden call', async () => {
      const failure = async (call: Promise<unknown>) => {
        const error = await call.then(
          () => assert.fail('the call succeeded'),
          (e: unknown) => e as { message: string; statusCode?: number; name?: string },
        );
        return { message: error.message, status: error.statusCode };
      };
      // Tenant B's device, out of A's sight: the server's 404, as balena-request prints it.
      const notFound = await failure(
        sdk.pine.post({
          resource: 'device_config_variable',
          body: { device: t.b.deviceId, name: 'RESIN_SDK', value: '1' },
        }),
      );
      assert.deepEqual(notFound, {
        message: `Request error: no device ${t.b.deviceId} that you may change (DEVICE_NOT_FOUND)`,
        status: 404,
      });
      // A device key may not write its fleet's variables.
      const asDevice = getSdk({ apiUrl: t.url, dataDirectory: false });
      await asDevice.auth.loginWithToken(t.a.deviceKey);
      const forbidden = await failure(
        asDevice.pine.post({
          resource: 'application_environment_variable',
          body: { application: t.a.fleetId, name: 'SDK_DEVICE', value: '1' },
        }),
      );
      assert.deepEqual(forbidden, {
        message: 'Request error: a device key creates only its own config variables and tags (FORBIDDEN)',
        status: 403,
      });
      const unknown = await failure(sdk.request.send({ method: 'GET', url: '/v7/no_such_resource', baseUrl: t.url }));
      assert.equal(unknown.message, 'Request error: unknown resource "no_such_resource" (INVALID_ODATA_QUERY)');
    });
  });
}
