import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configJsonSchema, generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { fleetWithDevice, harness } from '../testing/harness.js';

for (const testDb of testDatabases()) {
  describe(`users, organizations, fleets, devices (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('login, sessions, API keys and whoami', async () => {
      const wrong = await h.call('POST', '/api/v1/auth/login', undefined, { username: 'admin', password: 'nope-nope' });
      assert.equal(wrong.statusCode, 401);
      assert.equal(wrong.data.error.code, 'INVALID_CREDENTIALS');
      const unknown = await h.call('POST', '/api/v1/auth/login', undefined, {
        username: 'ghost',
        password: 'nope-nope',
      });
      assert.equal(unknown.data.error.code, 'INVALID_CREDENTIALS');
      const login = await h.call('POST', '/api/v1/auth/login', undefined, {
        username: 'admin',
        password: 'admin-password',
      });
      assert.equal(login.statusCode, 200);
      const who = await h.call('GET', '/api/v1/whoami', login.data.token);
      assert.equal(who.data.user.username, 'admin');
      assert.equal(who.data.authMethod, 'session');
      assert.deepEqual(
        who.data.organizations.map((o: { handle: string; role: string }) => [o.handle, o.role]),
        [['default', 'admin']],
      );
      const created = await h.call('POST', '/api/v1/api-keys', login.data.token, { name: 'ci' });
      assert.equal(created.statusCode, 201);
      assert.equal((await h.call('GET', '/api/v1/whoami', created.data.key)).data.authMethod, 'api-key');
      const list = await h.call('GET', '/api/v1/api-keys', h.adminKey);
      assert.ok(
        list.data.items.every((k: Record<string, unknown>) => !('key' in k)),
        'secrets are shown once only',
      );
      assert.equal((await h.call('DELETE', `/api/v1/api-keys/${created.data.id}`, h.adminKey)).statusCode, 204);
      assert.equal((await h.call('GET', '/api/v1/whoami', created.data.key)).statusCode, 401);
      const expired = await h.call('POST', '/api/v1/api-keys', h.adminKey, {
        name: 'old',
        expiresAt: '2000-01-01T00:00:00Z',
      });
      assert.equal(expired.statusCode, 400, 'a key cannot be born expired');
      assert.equal(expired.data.error.code, 'VALIDATION_FAILED');
    });

    test("members see their organization's fleets; only admins manage members", async () => {
      await h.call('POST', '/api/v1/users', h.adminKey, { username: 'carol', password: 'carol-password' });
      const carol = (
        await h.call('POST', '/api/v1/auth/login', undefined, { username: 'carol', password: 'carol-password' })
      ).data.token;
      await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'Shared Fleet' });
      assert.equal((await h.call('GET', '/api/v1/fleets/shared-fleet', carol)).statusCode, 404);
      assert.equal(
        (await h.call('POST', '/api/v1/organizations/default/invitations', h.adminKey, { username: 'carol' }))
          .statusCode,
        202,
      );
      assert.equal((await h.call('GET', '/api/v1/fleets/shared-fleet', carol)).statusCode, 404, 'not yet accepted');
      const [invitation] = (await h.call('GET', '/api/v1/invitations', carol)).data.items;
      assert.equal((await h.call('POST', `/api/v1/invitations/${invitation.id}/accept`, carol)).statusCode, 200);
      assert.equal((await h.call('GET', '/api/v1/fleets/shared-fleet', carol)).statusCode, 200);
      assert.equal(
        (await h.call('POST', '/api/v1/organizations/default/invitations', carol, { username: 'carol', role: 'admin' }))
          .statusCode,
        403,
      );
      assert.equal((await h.call('POST', '/api/v1/fleets/shared-fleet/provisioning-keys', carol, {})).statusCode, 403);
      assert.equal((await h.call('DELETE', '/api/v1/fleets/shared-fleet', carol)).statusCode, 403);
      const members = await h.call('GET', '/api/v1/organizations/default/members', carol);
      assert.deepEqual(
        members.data.items.map((m: { user: { username: string }; role: string }) => [m.user.username, m.role]),
        [
          ['admin', 'admin'],
          ['carol', 'member'],
        ],
      );
      assert.equal(
        (await h.call('DELETE', `/api/v1/organizations/default/members/${members.data.items[0].user.id}`, h.adminKey))
          .data.error.code,
        'LAST_ADMIN',
      );
      assert.equal(
        (await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'Shared Fleet' })).data.error.code,
        'SLUG_TAKEN',
      );
    });

    test('config.json carries the public URL and a working new provisioning key', async () => {
      const fleet = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'cfg', deviceType: 'raspberrypi4-64' });
      const res = await h.call('POST', '/api/v1/fleets/cfg/config-json', h.adminKey, {
        hostname: 'kiosk',
        developmentMode: true,
        sshKeys: ['ssh-ed25519 AAAA me'],
        wifiSsid: 'home',
        wifiKey: 'secret-psk',
      });
      assert.equal(res.statusCode, 200, res.body);
      const config = configJsonSchema.parse(res.data);
      assert.equal(config.apiEndpoint, 'http://flotilla.test:8080');
      assert.equal(config.applicationId, fleet.data.id);
      assert.equal(config.deviceType, 'raspberrypi4-64');
      assert.equal(config.listenPort, 48484);
      assert.equal(config.hostname, 'kiosk');
      assert.deepEqual(config.os?.sshKeys, ['ssh-ed25519 AAAA me']);
      assert.deepEqual(config.os?.network?.wifi, { ssid: 'home', psk: 'secret-psk' });
      const reg = await h.call('POST', '/device/register', config.provisioningApiKey, {
        application: fleet.data.id,
        uuid: generateDeviceUuid(),
        device_type: 'raspberrypi4-64',
        api_key: generateKey(),
      });
      assert.equal(reg.statusCode, 201);
      assert.match((await h.call('GET', `/api/v1/devices/${reg.data.uuid}`, h.adminKey)).data.name, /^[a-z]+-[a-z]+$/);
      assert.equal(
        (await h.call('POST', '/api/v1/fleets/cfg/config-json', h.adminKey, { wifiKey: 'short' })).statusCode,
        400,
      );
    });

    test('device references: prefixes, ambiguity, moves between fleets', async () => {
      const a = await fleetWithDevice(h, h.adminKey, 'refs');
      const other = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'refs2' });
      assert.equal((await h.call('GET', `/api/v1/devices/${a.uuid.slice(0, 7)}`, h.adminKey)).data.uuid, a.uuid);
      assert.equal((await h.call('GET', `/api/v1/devices/${a.uuid.slice(0, 6)}`, h.adminKey)).statusCode, 404);
      // Two devices sharing a 7-char prefix.
      const pk = (await h.call('POST', '/api/v1/fleets/refs/provisioning-keys', h.adminKey, {})).data.key;
      const twin = a.uuid.slice(0, 7) + 'f'.repeat(25);
      const twinUuid = twin === a.uuid ? a.uuid.slice(0, 7) + 'e'.repeat(25) : twin;
      assert.equal(
        (
          await h.call('POST', '/device/register', pk, {
            application: a.fleetId,
            uuid: twinUuid,
            device_type: 'x',
            api_key: generateKey(),
          })
        ).statusCode,
        201,
      );
      assert.equal(
        (await h.call('GET', `/api/v1/devices/${a.uuid.slice(0, 7)}`, h.adminKey)).data.error.code,
        'AMBIGUOUS_REFERENCE',
      );
      const moved = await h.call('PATCH', `/api/v1/devices/${a.uuid}`, h.adminKey, { fleet: 'refs2', name: 'renamed' });
      assert.equal(moved.data.fleet, 'refs2');
      assert.equal(moved.data.name, 'renamed');
      const list = await h.call('GET', '/api/v1/devices?fleet=refs2', h.adminKey);
      assert.deepEqual(
        list.data.items.map((d: { uuid: string }) => d.uuid),
        [a.uuid],
      );
      const state = await h.call('GET', `/device/v3/${a.uuid}/state`, a.deviceKey);
      assert.ok(state.data[a.uuid].apps[other.data.uuid], 'target state follows the move');
      assert.equal(state.data[a.uuid].name, 'renamed');

      // By name: exact, within the user's organizations; a name two devices share is ambiguous.
      assert.equal((await h.call('GET', '/api/v1/devices/renamed', h.adminKey)).data.uuid, a.uuid);
      assert.equal((await h.call('GET', '/api/v1/devices/renam', h.adminKey)).data.error.code, 'DEVICE_NOT_FOUND');
      assert.equal(
        (await h.call('GET', `/api/v1/devices/${encodeURIComponent('two words')}`, h.adminKey)).data.error.code,
        'DEVICE_NOT_FOUND',
      );
      await h.call('PATCH', `/api/v1/devices/${twinUuid}`, h.adminKey, { name: 'renamed' });
      assert.equal((await h.call('GET', '/api/v1/devices/renamed', h.adminKey)).data.error.code, 'AMBIGUOUS_REFERENCE');
      await h.call('PATCH', `/api/v1/devices/${twinUuid}`, h.adminKey, { name: 'two words' });
      assert.equal(
        (await h.call('GET', `/api/v1/devices/${encodeURIComponent('two words')}`, h.adminKey)).data.uuid,
        twinUuid,
      );
    });

    test('metrics and health', async () => {
      const health = await h.call('GET', '/healthz');
      assert.deepEqual(health.data, { status: 'ok' });
      const metrics = await h.call('GET', '/metrics');
      assert.match(metrics.body, /flotilla_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/);
      assert.match(metrics.body, /flotilla_devices_online \d+/);
      const openapi = await h.call('GET', '/api/v1/openapi.json');
      assert.equal(openapi.data.openapi, '3.1.0');
      assert.ok(openapi.data.paths['/api/v1/fleets/{slug}/config-json'].post.requestBody);
    });
  });
}
