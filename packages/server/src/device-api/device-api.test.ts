import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { effectiveEnvironment, generateDeviceUuid, generateKey, targetStateSchema } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { fleetWithDevice, harness } from '../testing/harness.js';

const composition = {
  services: {
    main: {
      build: '.',
      environment: { FROM_COMPOSE: 'c', OVERRIDDEN: 'compose' },
      labels: { 'io.balena.update.strategy': 'hand-over' },
      restart: 'always' as const,
      volumes: ['data:/data'],
      depends_on: ['db'],
    },
    db: { image: 'postgres:16' },
  },
  volumes: { data: null },
  networks: { backend: { driver: 'bridge' } },
};

for (const testDb of testDatabases()) {
  describe(`device API (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('register, find self, key exchange and conflicts', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'reg');
      const again = await h.call('POST', '/device/register', d.provisioningKey, {
        application: d.fleetId,
        uuid: d.uuid,
        device_type: 'x',
        api_key: generateKey(),
      });
      assert.equal(again.statusCode, 409);
      assert.equal(again.data.error.code, 'DEVICE_ALREADY_REGISTERED');
      const filter = `/v7/device?$select=id&$filter=${encodeURIComponent(`uuid eq '${d.uuid}'`)}`;
      assert.deepEqual((await h.call('GET', filter, d.deviceKey)).data, { d: [{ id: d.deviceId }] });
      assert.deepEqual((await h.call('GET', filter, d.provisioningKey)).data, { d: [{ id: d.deviceId }] });
      assert.equal((await h.call('GET', filter, 'not-a-key-at-all-000000')).statusCode, 401);
      const newKey = generateKey();
      const exchanged = await h.call('POST', `/api-key/device/${d.deviceId}/device-key`, d.provisioningKey, {
        apiKey: newKey,
      });
      assert.equal(exchanged.statusCode, 200);
      assert.equal(
        (await h.call('GET', `/device/v3/${d.uuid}/state`, d.deviceKey)).statusCode,
        401,
        'the old key no longer works',
      );
      assert.equal((await h.call('GET', `/device/v3/${d.uuid}/state`, newKey)).statusCode, 200);
      const wrongFleet = await h.call('POST', '/device/register', d.provisioningKey, {
        application: d.fleetId + 1000,
        uuid: generateDeviceUuid(),
        device_type: 'x',
        api_key: generateKey(),
      });
      assert.equal(wrongFleet.statusCode, 403);
    });

    test('concurrent registrations of one UUID: one wins, the rest get 409', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'race');
      const uuid = generateDeviceUuid();
      const results = await Promise.all(
        Array.from({ length: 6 }, () =>
          h.call('POST', '/device/register', d.provisioningKey, {
            application: d.fleetId,
            uuid,
            device_type: 'x',
            api_key: generateKey(),
          }),
        ),
      );
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409]);
    });

    test('revoked and expired provisioning keys cannot register', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'revoke');
      const keys = await h.call('GET', '/api/v1/fleets/revoke/provisioning-keys', h.adminKey);
      const id = keys.data.items[0].id;
      assert.equal(
        (await h.call('DELETE', `/api/v1/fleets/revoke/provisioning-keys/${id}`, h.adminKey)).statusCode,
        200,
      );
      const body = { application: d.fleetId, uuid: generateDeviceUuid(), device_type: 'x', api_key: generateKey() };
      const revoked = await h.call('POST', '/device/register', d.provisioningKey, body);
      assert.equal(revoked.data.error.code, 'PROVISIONING_KEY_EXPIRED');
      const bornExpired = await h.call('POST', '/api/v1/fleets/revoke/provisioning-keys', h.adminKey, {
        expiresAt: new Date(Date.now() - 1000).toISOString(),
      });
      assert.equal(bornExpired.data.error.code, 'VALIDATION_FAILED');
      // A key that expires later, seen after its expiry.
      const expired = await h.call('POST', '/api/v1/fleets/revoke/provisioning-keys', h.adminKey, {
        expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      });
      await h.app.flotilla.db
        .updateTable('provisioning_keys')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('id', '=', expired.data.id)
        .execute();
      assert.equal(
        (await h.call('POST', '/device/register', expired.data.key, body)).data.error.code,
        'PROVISIONING_KEY_EXPIRED',
      );
    });

    test('target state follows releases, pins and variables, with ETag and 304', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'ts');
      const url = `/device/v3/${d.uuid}/state`;
      const empty = await h.call('GET', url, d.deviceKey);
      assert.equal(empty.statusCode, 200);
      const parsed = targetStateSchema.parse(empty.data);
      assert.deepEqual(parsed[d.uuid]?.apps[d.fleetUuid]?.releases, {});
      const etag0 = empty.headers.etag as string;
      assert.match(etag0, /^"[^"]+"$/);
      assert.equal((await h.call('GET', url, d.deviceKey, undefined, { 'if-none-match': etag0 })).statusCode, 304);

      const r1 = await h.call('POST', '/api/v1/fleets/ts/releases', h.adminKey, { composition });
      assert.equal(r1.statusCode, 201, r1.body);
      assert.equal(r1.data.version, '0.0.1');
      assert.equal(r1.data.status, 'running');
      const notYet = await h.call('GET', url, d.deviceKey, undefined, { 'if-none-match': etag0 });
      assert.equal(notYet.statusCode, 304, 'a running release is not a target');
      const early = await h.call('PATCH', `/api/v1/releases/${r1.data.id}`, h.adminKey, { status: 'success' });
      assert.equal(early.statusCode, 400, 'success needs every image');
      const image = `flotilla.test:8080/ts/main@sha256:${'a'.repeat(64)}`;
      const done = await h.call('PATCH', `/api/v1/releases/${r1.data.commit}`, h.adminKey, {
        images: { main: image },
        status: 'success',
      });
      assert.equal(done.statusCode, 200, done.body);
      assert.equal(
        (await h.call('PATCH', `/api/v1/releases/${r1.data.id}`, h.adminKey, { status: 'failed' })).data.error.code,
        'RELEASE_IMMUTABLE',
      );

      await h.call('POST', '/api/v1/fleets/ts/env', h.adminKey, { name: 'LEVEL', value: 'fleet' });
      await h.call('POST', '/api/v1/fleets/ts/env', h.adminKey, { name: 'OVERRIDDEN', value: 'fleet' });
      await h.call('POST', `/api/v1/devices/${d.uuid}/env`, h.adminKey, { name: 'LEVEL', value: 'device' });
      await h.call('POST', '/api/v1/fleets/ts/env', h.adminKey, {
        name: 'SVC',
        value: 'fleet-service',
        service: 'main',
      });
      await h.call('POST', `/api/v1/devices/${d.uuid.slice(0, 7)}/env`, h.adminKey, {
        name: 'SVC',
        value: 'device-service',
        service: 'main',
      });
      await h.call('POST', `/api/v1/devices/${d.uuid}/env`, h.adminKey, {
        name: 'LEVEL',
        value: 'device-main',
        service: 'main',
      });
      await h.call('POST', '/api/v1/fleets/ts/config', h.adminKey, {
        name: 'FLOTILLA_SUPERVISOR_POLL_INTERVAL',
        value: '60000',
      });
      await h.call('POST', `/api/v1/devices/${d.uuid}/config`, h.adminKey, {
        name: 'RESIN_SUPERVISOR_POLL_INTERVAL',
        value: '30000',
      });
      // balena's host settings keep config.txt's lower-case names after the prefix.
      const hostConfig = await h.call('POST', '/api/v1/fleets/ts/config', h.adminKey, {
        name: 'BALENA_HOST_CONFIG_gpu_mem',
        value: '16',
      });
      assert.equal(hostConfig.statusCode, 200, hostConfig.body);

      const full = await h.call('GET', url, d.deviceKey, undefined, { 'if-none-match': etag0 });
      assert.equal(full.statusCode, 200);
      const state = targetStateSchema.parse(full.data)[d.uuid];
      assert.ok(state);
      assert.deepEqual(state.config, { BALENA_SUPERVISOR_POLL_INTERVAL: '30000', BALENA_HOST_CONFIG_gpu_mem: '16' });
      const release = state.apps[d.fleetUuid]?.releases[r1.data.commit];
      assert.ok(release, 'the successful release is the target');
      const main = release.services.main;
      assert.ok(main);
      assert.equal(main.image, image);
      assert.deepEqual(main.environment, {
        FROM_COMPOSE: 'c',
        OVERRIDDEN: 'fleet',
        LEVEL: 'device-main',
        SVC: 'device-service',
      });
      // What the dashboard shows from the same user API lists is exactly what the device got.
      const listed = async (url: string) => (await h.call('GET', url, h.adminKey)).data.items;
      const explained = effectiveEnvironment('main', composition.services.main.environment, {
        fleetEnv: await listed('/api/v1/fleets/ts/env'),
        deviceEnv: await listed(`/api/v1/devices/${d.uuid}/env`),
      });
      assert.deepEqual(Object.fromEntries(explained.map((v) => [v.name, v.value])), main.environment);
      assert.deepEqual(
        explained.find((v) => v.name === 'LEVEL')?.overridden.map((v) => v.source),
        ['fleet', 'device'],
      );
      assert.deepEqual(main.labels, { 'io.balena.update.strategy': 'hand-over' });
      assert.deepEqual(main.composition, { restart: 'always', volumes: ['data:/data'], depends_on: ['db'] });
      assert.equal(release.services.db?.image, 'postgres:16');
      assert.deepEqual(Object.keys(release.volumes), ['data']);
      assert.equal(release.networks.backend?.driver, 'bridge');
      const etag1 = full.headers.etag as string;
      assert.notEqual(etag1, etag0);
      assert.equal((await h.call('GET', url, d.deviceKey, undefined, { 'if-none-match': etag1 })).statusCode, 304);

      const r2 = await h.call('POST', '/api/v1/fleets/ts/releases', h.adminKey, {
        composition: { services: { main: { image: `x/y@sha256:${'b'.repeat(64)}` } } },
        status: 'success',
      });
      assert.equal(r2.data.version, '0.0.2');
      const moved = await h.call('GET', url, d.deviceKey, undefined, { 'if-none-match': etag1 });
      assert.equal(moved.statusCode, 200);
      assert.deepEqual(Object.keys(moved.data[d.uuid].apps[d.fleetUuid].releases), [r2.data.commit]);

      const pin = await h.call('PATCH', `/api/v1/devices/${d.uuid}`, h.adminKey, { pinnedRelease: r1.data.commit });
      assert.equal(pin.data.pinnedRelease, r1.data.commit);
      const pinned = await h.call('GET', url, d.deviceKey);
      assert.deepEqual(Object.keys(pinned.data[d.uuid].apps[d.fleetUuid].releases), [r1.data.commit]);
      const fleet = await h.call('GET', '/api/v1/fleets/ts', h.adminKey);
      assert.equal(fleet.data.targetRelease.commit, r2.data.commit);
    });

    test('polling alone marks a device as seen (written in batches)', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'seen');
      assert.equal((await h.call('GET', `/api/v1/devices/${d.uuid}`, h.adminKey)).data.lastSeenAt, null);
      assert.equal((await h.call('GET', `/device/v3/${d.uuid}/state`, d.deviceKey)).statusCode, 200);
      const device = await waitFor(
        'lastSeenAt after a poll',
        async () => {
          const res = await h.call('GET', `/api/v1/devices/${d.uuid}`, h.adminKey);
          return res.data.lastSeenAt !== null && res.data;
        },
        { timeoutMs: 10_000 },
      );
      assert.equal(device.isOnline, true);
    });

    test('state reports update the device; tags from the device', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'rep');
      const report = {
        [d.uuid]: {
          os_version: 'balenaOS 6.0.0',
          supervisor_version: '0.1.0',
          ip_address: '10.0.0.2 192.168.1.4',
          cpu_usage: 12,
          memory_usage: 100,
          memory_total: 1000,
          status: 'Idle',
          apps: {
            [d.fleetUuid]: {
              releases: {
                abcdef1234567: {
                  update_status: 'done',
                  services: { main: { image: 'img', status: 'Running', download_progress: null } },
                },
              },
            },
          },
        },
      };
      const res = await h.call('PATCH', '/device/v3/state', d.deviceKey, report);
      assert.equal(res.statusCode, 200, res.body);
      const device = await h.call('GET', `/api/v1/devices/${d.uuid}`, h.adminKey);
      assert.equal(device.data.isOnline, true);
      assert.equal(device.data.osVersion, 'balenaOS 6.0.0');
      assert.equal(device.data.agentVersion, '0.1.0');
      assert.equal(device.data.metrics.cpuUsage, 12);
      assert.equal(device.data.runningRelease, 'abcdef1234567');
      assert.deepEqual(device.data.services.main, {
        status: 'Running',
        image: 'img',
        releaseCommit: 'abcdef1234567',
        downloadProgress: null,
      });
      assert.equal(
        (await h.call('PATCH', '/device/v3/tags', d.deviceKey, { [d.uuid]: { room: 'kitchen' } })).statusCode,
        200,
      );
      assert.deepEqual((await h.call('GET', `/api/v1/devices/${d.uuid}/tags`, h.adminKey)).data.items, [
        { key: 'room', value: 'kitchen' },
      ]);
    });
  });
}
