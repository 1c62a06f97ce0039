import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { osRepository, targetStateSchema } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { collectFleetGarbage } from '../registry/fleet-repositories.js';
import { RegistryStorage } from '../registry/storage.js';
import { basicAuth } from '../testing/attacks.js';
import { pushOsImage } from '../testing/os-release-image.js';
import { sha256Digest } from '../testing/registry-client.js';
import { twoTenants, type Tenant, type TwoTenants } from '../testing/tenants.js';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';

/**
 * Clearing OS targets and deleting OS releases, on the real server and both dialects: a cleared device's target
 * has no `os` (its reported update stays as it was), a release in use is refused with OS_RELEASE_IN_USE, a deleted
 * one's image is freed by the registry's garbage collection, and the other tenant (or an observer) can do none of it.
 */

const TYPE = 'generic-amd64';
const DAY = 24 * 3600 * 1000;

for (const testDb of testDatabases()) {
  describe(`clearing OS targets and deleting OS releases (${testDb.label})`, () => {
    let t: TwoTenants;
    let orgA: number;
    /** Version → {id, sha256 hex} of the releases recorded for tenant A. */
    const recorded = new Map<string, { id: number; hex: string }>();
    const slots = new Map<string, Buffer>();
    before(async () => {
      t = await twoTenants(testDb);
      const orgs = await t.call('GET', '/api/v1/organizations', { key: t.a.token });
      orgA = orgs.data.items.find((o: { handle: string }) => o.handle === t.a.org).id;
      for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
        const slot = randomBytes(70_000);
        slots.set(version, slot);
        const auth = basicAuth(t.a.username, t.a.apiKey);
        const pushed = await pushOsImage(t.url, auth, osRepository(orgA, TYPE), slot, { deviceType: TYPE, version });
        assert.equal(pushed.status, 201);
        const body = { deviceType: TYPE, version, manifestDigest: pushed.digest };
        const made = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.a.apiKey, body });
        assert.equal(made.status, 201, made.text);
        recorded.set(version, { id: made.data.id, hex: sha256Digest(slot).slice(7) });
      }
    });
    after(() => t.close());

    const target = async (x: Tenant) => {
      const answer = await t.call('GET', `/device/v3/${x.uuid}/state`, { key: x.deviceKey });
      assert.equal(answer.status, 200, answer.text);
      return { device: targetStateSchema.parse(answer.data)[x.uuid], etag: answer.headers.get('etag') };
    };
    const setDevice = async (version: string) => {
      const set = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey, body: { version } });
      assert.equal(set.status, 200, set.text);
    };
    const idOf = (version: string) => recorded.get(version)?.id ?? -1;

    test("clearing a device's OS target removes `os` from its target; what it reported stays", async () => {
      await setDevice('1.0.0');
      const committed = { phase: 'committed', version: '1.0.0', progress: null, error_code: null, error: null };
      const report = await t.call('PATCH', '/device/v3/state', {
        key: t.a.deviceKey,
        body: { [t.a.uuid]: { os_update: committed } },
      });
      assert.equal(report.status, 200, report.text);
      const before = await target(t.a);
      assert.equal(before.device?.os?.version, '1.0.0');

      for (const key of [t.b.apiKey, t.b.token]) {
        const foreign = await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key });
        assert.equal(foreign.status, 404);
        assert.equal(foreign.data.error.code, 'DEVICE_NOT_FOUND');
      }
      assert.equal((await target(t.a)).device?.os?.version, '1.0.0', 'the other tenant changed nothing');

      const cleared = await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey });
      assert.equal(cleared.status, 200, cleared.text);
      assert.deepEqual(cleared.data, { devices: [t.a.uuid] });
      const after = await target(t.a);
      assert.equal(after.device?.os, undefined);
      assert.ok(after.device && !('os' in after.device), 'no `os` field at all');
      assert.notEqual(after.etag, before.etag, 'the device sees a new ETag');
      const view = await t.call('GET', `/api/v1/devices/${t.a.uuid}`, { key: t.a.apiKey });
      assert.equal(view.data.targetOs, null);
      assert.equal(view.data.osUpdate.phase, 'committed', 'the update it committed is still what it reported');
      assert.equal(view.data.osUpdate.version, '1.0.0');

      const again = await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey });
      assert.deepEqual(again.data, { devices: [] }, 'nothing left to clear');
      assert.equal((await target(t.a)).etag, after.etag, 'and nothing changed');
    });

    test("clearing a fleet's OS target clears each of its devices; the other tenant cannot", async () => {
      const set = await t.call('PUT', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey, body: { version: '2.0.0' } });
      assert.equal(set.status, 200, set.text);
      assert.equal((await target(t.a)).device?.os?.version, '2.0.0');
      const foreign = await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: t.b.apiKey });
      assert.equal(foreign.status, 404);
      assert.equal(foreign.data.error.code, 'FLEET_NOT_FOUND');
      const cleared = await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey });
      assert.equal(cleared.status, 200, cleared.text);
      assert.deepEqual(cleared.data, { devices: [t.a.uuid] });
      assert.equal((await target(t.a)).device?.os, undefined);
      assert.deepEqual((await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey })).data, {
        devices: [],
      });
    });

    test("a device registered after the fleet's OS was set starts with it; one of another type does not", async () => {
      const register = async (deviceType: string) => {
        const uuid = generateDeviceUuid();
        const deviceKey = generateKey();
        const made = await t.call('POST', '/device/register', {
          key: t.a.provisioningKey,
          body: { application: t.a.fleetId, uuid, device_type: deviceType, api_key: deviceKey },
        });
        assert.equal(made.status, 201, made.text);
        return { ...t.a, uuid, deviceKey };
      };
      const set = await t.call('PUT', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey, body: { version: '3.0.0' } });
      assert.equal(set.status, 200, set.text);
      const fleetOs = async () =>
        (await t.call('GET', `/api/v1/fleets/${t.a.slug}`, { key: t.a.apiKey })).data.targetOs;
      assert.deepEqual(await fleetOs(), { deviceType: TYPE, version: '3.0.0' });
      const late = await register(TYPE);
      assert.equal((await target(late)).device?.os?.version, '3.0.0');
      assert.equal((await target(await register('raspberrypi4-64'))).device?.os, undefined);
      const refused = await t.call('DELETE', `/api/v1/os-releases/${idOf('3.0.0')}`, { key: t.a.apiKey });
      assert.equal(refused.data.error?.code, 'OS_RELEASE_IN_USE', refused.text);
      assert.match(refused.data.error.message, new RegExp(`fleet\\(s\\) ${t.a.slug} target it`));

      const cleared = await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey });
      assert.equal(cleared.status, 200, cleared.text);
      assert.equal(await fleetOs(), null);
      assert.equal((await target(await register(TYPE))).device?.os, undefined, 'cleared: a new device gets none');
      for (const uuid of [late.uuid])
        assert.ok((await t.call('DELETE', `/api/v1/devices/${uuid}`, { key: t.a.apiKey })).status < 300);
    });

    test("a device moved to another fleet follows that fleet's OS unless its own was set by hand", async () => {
      const second = 'alpha-second-fleet';
      const made = await t.call('POST', '/api/v1/fleets', {
        key: t.a.token,
        body: { name: second, slug: second, organization: t.a.org },
      });
      assert.equal(made.status, 201, made.text);
      const put = async (path: string, version: string) =>
        assert.equal((await t.call('PUT', path, { key: t.a.apiKey, body: { version } })).status, 200);
      const move = async (fleet: string) => {
        const moved = await t.call('PATCH', `/api/v1/devices/${t.a.uuid}`, { key: t.a.apiKey, body: { fleet } });
        assert.equal(moved.status, 200, moved.text);
        return (await target(t.a)).device?.os?.version;
      };
      await put(`/api/v1/fleets/${t.a.slug}/os`, '3.0.0');
      await put(`/api/v1/fleets/${second}/os`, '1.0.0');
      assert.equal((await target(t.a)).device?.os?.version, '3.0.0');
      assert.equal(await move(second), '1.0.0', "its OS was its fleet's: it takes the new fleet's");
      assert.equal((await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: t.a.apiKey })).status, 200);
      assert.equal(await move(t.a.slug), undefined, 'a fleet with no OS target: the one it followed is dropped');
      await put(`/api/v1/devices/${t.a.uuid}/os`, '3.0.0');
      assert.equal(await move(second), '3.0.0', 'set by hand: it stays');
      assert.equal(await move(t.a.slug), '3.0.0');
      const info = await t.call('GET', `/api/v1/devices/${t.a.uuid}`, { key: t.a.apiKey });
      assert.equal(info.data.targetOs, '3.0.0');
      assert.equal((await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey })).status, 200);
      assert.equal((await t.call('DELETE', `/api/v1/fleets/${second}`, { key: t.a.apiKey })).status, 204);
    });

    test('an OS release a device targets is OS_RELEASE_IN_USE; unused, it goes and GC frees its image', async () => {
      await setDevice('2.0.0');
      const refused = await t.call('DELETE', `/api/v1/os-releases/${idOf('2.0.0')}`, { key: t.a.apiKey });
      assert.equal(refused.status, 409, refused.text);
      assert.equal(refused.data.error.code, 'OS_RELEASE_IN_USE');
      assert.match(refused.data.error.message, new RegExp(t.a.deviceName));
      // Another organization: missing, whether it exists or not; and it does not see it listed.
      for (const id of [idOf('2.0.0'), 999_999]) {
        const foreign = await t.call('DELETE', `/api/v1/os-releases/${id}`, { key: t.b.apiKey });
        assert.equal(foreign.status, 404);
        assert.equal(foreign.data.error.code, 'OS_RELEASE_NOT_FOUND');
      }
      assert.deepEqual((await t.call('GET', '/api/v1/os-releases', { key: t.b.apiKey })).data.items, []);
      const bad = await t.call('DELETE', '/api/v1/os-releases/abc', { key: t.a.apiKey });
      assert.equal(bad.status, 400);
      assert.equal(bad.data.error.code, 'VALIDATION_FAILED');

      assert.equal((await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey })).status, 200);
      const deleted = await t.call('DELETE', `/api/v1/os-releases/${idOf('2.0.0')}`, { key: t.a.apiKey });
      assert.equal(deleted.status, 204, deleted.text);
      const listed = await t.call('GET', `/api/v1/os-releases?deviceType=${TYPE}`, { key: t.a.apiKey });
      assert.deepEqual(
        listed.data.items.map((r: { version: string }) => r.version),
        ['3.0.0', '1.0.0'],
      );
      const twice = await t.call('DELETE', `/api/v1/os-releases/${idOf('2.0.0')}`, { key: t.a.apiKey });
      assert.equal(twice.data.error.code, 'OS_RELEASE_NOT_FOUND');
      const unknown = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, {
        key: t.a.apiKey,
        body: { version: '2.0.0' },
      });
      assert.equal(unknown.data.error.code, 'OS_RELEASE_NOT_FOUND');

      const storage = new RegistryStorage(join(t.dataDir, 'registry'));
      const gone = recorded.get('2.0.0')?.hex ?? '';
      const kept = recorded.get('1.0.0')?.hex ?? '';
      assert.equal(await storage.blobSize(gone), slots.get('2.0.0')?.length, 'still there before the collection');
      const result = await collectFleetGarbage(t.server.app.flotilla.db, storage, { now: Date.now() + 2 * DAY });
      assert.ok(result.bytesFreed >= (slots.get('2.0.0')?.length ?? 0), JSON.stringify(result));
      assert.equal(await storage.blobSize(gone), undefined, "the deleted release's slot image is freed");
      assert.equal(await storage.blobSize(kept), slots.get('1.0.0')?.length, 'the others stay');
      const download = await t.call('GET', `/device/v1/${t.a.uuid}/os-images/${gone}`, { key: t.a.deviceKey });
      assert.equal(download.status, 404);
    });

    test('an observer of the organization can neither clear an OS target nor delete a release', async () => {
      const username = 'os-admin-watcher';
      const password = 'os-admin-watcher-password-1';
      assert.equal(
        (await t.call('POST', '/api/v1/users', { key: t.adminKey, body: { username, password } })).status,
        201,
      );
      const invited = await t.call('POST', `/api/v1/organizations/${t.a.org}/invitations`, {
        key: t.a.token,
        body: { username, role: 'observer' },
      });
      assert.equal(invited.status, 202, invited.text);
      const token = (await t.call('POST', '/api/v1/auth/login', { body: { username, password } })).data.token as string;
      const id = (await t.call('GET', '/api/v1/invitations', { key: token })).data.items[0].id as number;
      assert.equal((await t.call('POST', `/api/v1/invitations/${id}/accept`, { key: token })).status, 200);

      await setDevice('3.0.0');
      const device = await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: token });
      assert.equal(device.data.error.code, 'DEVICE_NOT_FOUND');
      const fleet = await t.call('DELETE', `/api/v1/fleets/${t.a.slug}/os`, { key: token });
      assert.equal(fleet.data.error.code, 'FLEET_NOT_FOUND');
      assert.equal((await target(t.a)).device?.os?.version, '3.0.0');
      const release = await t.call('DELETE', `/api/v1/os-releases/${idOf('1.0.0')}`, { key: token });
      assert.equal(release.data.error.code, 'OS_RELEASE_NOT_FOUND');
      assert.equal((await t.call('GET', '/api/v1/os-releases', { key: token })).data.items.length, 2);
    });

    test('a deletion racing a device being pointed at the release: never a device left with a silently dropped target', async () => {
      for (let round = 0; round < 4; round++) {
        const version = `9.0.${round}`;
        const auth = basicAuth(t.a.username, t.a.apiKey);
        const pushed = await pushOsImage(t.url, auth, osRepository(orgA, TYPE), randomBytes(2_000), {
          deviceType: TYPE,
          version,
        });
        const body = { deviceType: TYPE, version, manifestDigest: pushed.digest };
        const made = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.a.apiKey, body });
        assert.equal(made.status, 201, made.text);
        const [set, deleted] = await Promise.all([
          t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey, body: { version } }),
          t.call('DELETE', `/api/v1/os-releases/${made.data.id}`, { key: t.a.apiKey }),
        ]);
        const now = (await target(t.a)).device?.os?.version;
        if (deleted.status === 204) {
          // The deletion went first: the set found nothing; or the set went first and the deletion... could not.
          assert.equal(set.data.error?.code, 'OS_RELEASE_NOT_FOUND', `${set.status} ${set.text}`);
          assert.notEqual(now, version);
        } else {
          assert.equal(deleted.data.error.code, 'OS_RELEASE_IN_USE', deleted.text);
          assert.equal(set.status, 200, set.text);
          assert.equal(now, version);
        }
      }
    });
  });
}
