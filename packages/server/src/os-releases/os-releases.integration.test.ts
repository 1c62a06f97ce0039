import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { osRepository, targetStateSchema } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { collectFleetGarbage } from '../registry/fleet-repositories.js';
import { RegistryStorage } from '../registry/storage.js';
import { basicAuth } from '../testing/attacks.js';
import { sha256Digest } from '../testing/registry-client.js';
import { pushOsImage } from '../testing/os-release-image.js';
import { twoTenants, type Tenant, type TwoTenants } from '../testing/tenants.js';

/**
 * Host OS releases through the real server on both dialects: an organization's member pushes the image to the
 * registry and records it, lists it, points a device (or a fleet) at a version, which reaches the device's target
 * state; the device downloads the slot image with its key, with Range. The other tenant sees and gets none of it.
 */

const TYPE = 'generic-amd64';

for (const testDb of testDatabases()) {
  describe(`host OS releases (${testDb.label})`, () => {
    let t: TwoTenants;
    let orgA: number;
    const slot = randomBytes(300_000);
    const hex = sha256Digest(slot).slice(7);
    before(async () => {
      t = await twoTenants(testDb);
      const orgs = await t.call('GET', '/api/v1/organizations', { key: t.a.token });
      orgA = orgs.data.items.find((o: { handle: string }) => o.handle === t.a.org).id;
    });
    after(() => t.close());

    const auth = (x: Tenant) => basicAuth(x.username, x.apiKey);
    const target = async (x: Tenant) => {
      const answer = await t.call('GET', `/device/v3/${x.uuid}/state`, { key: x.deviceKey });
      assert.equal(answer.status, 200, answer.text);
      return { device: targetStateSchema.parse(answer.data)[x.uuid], etag: answer.headers.get('etag') };
    };

    test('a member pushes and records an OS release; the other tenant can neither push there nor see it', async () => {
      const repository = osRepository(orgA, TYPE);
      assert.equal(
        (await pushOsImage(t.url, auth(t.b), repository, slot, { deviceType: TYPE, version: '1.0.0' })).status,
        403,
      );
      const pushed = await pushOsImage(t.url, auth(t.a), repository, slot, { deviceType: TYPE, version: '1.0.0' });
      assert.equal(pushed.status, 201);
      const body = { deviceType: TYPE, version: '1.0.0', manifestDigest: pushed.digest };
      const stolen = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.b.apiKey, body });
      assert.equal(stolen.status, 404);
      assert.equal(stolen.data.error.code, 'ORGANIZATION_NOT_FOUND');
      const created = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.a.apiKey, body });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.data.sha256, hex);
      assert.equal(created.data.size, slot.length);
      assert.equal(created.data.createdBy, t.a.username);
      assert.equal(created.data.organization, t.a.org);
      assert.equal(created.data.image, `${new URL(t.url).host}/${repository}@${pushed.digest}`);

      const again = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.a.apiKey, body });
      assert.equal(again.data.error.code, 'OS_RELEASE_EXISTS');
      assert.equal(again.status, 409);
      // The image's config says 1.0.0: recording it as 2.0.0 is refused, as is a manifest never pushed.
      const mislabeled = { ...body, version: '2.0.0' };
      const wrong = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, {
        key: t.a.apiKey,
        body: mislabeled,
      });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.data.error.code, 'OS_RELEASE_INVALID');
      const missing = { ...body, version: '3.0.0', manifestDigest: sha256Digest('nothing') };
      const none = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, {
        key: t.a.apiKey,
        body: missing,
      });
      assert.equal(none.data.error.code, 'OS_RELEASE_INVALID');

      const listed = await t.call('GET', `/api/v1/os-releases?deviceType=${TYPE}`, { key: t.a.apiKey });
      assert.deepEqual(
        listed.data.items.map((r: { version: string }) => r.version),
        ['1.0.0'],
      );
      assert.deepEqual(
        (await t.call('GET', '/api/v1/os-releases?deviceType=raspberrypi4-64', { key: t.a.apiKey })).data.items,
        [],
      );
      assert.deepEqual((await t.call('GET', '/api/v1/os-releases', { key: t.b.apiKey })).data.items, []);
    });

    test('os-update puts the OS in the target state; an unknown version or another tenant is refused', async () => {
      const before = await target(t.a);
      assert.equal(before.device?.os, undefined, 'no OS asked: no field');
      const unknown = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, {
        key: t.a.apiKey,
        body: { version: '9.9.9' },
      });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.data.error.code, 'OS_RELEASE_NOT_FOUND');
      const foreignDevice = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, {
        key: t.b.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(foreignDevice.data.error.code, 'DEVICE_NOT_FOUND');
      // B's own device may not take A's release: B's organization has no such OS.
      const foreignRelease = await t.call('PUT', `/api/v1/devices/${t.b.uuid}/os`, {
        key: t.b.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(foreignRelease.data.error.code, 'OS_RELEASE_NOT_FOUND');

      const set = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, {
        key: t.a.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(set.status, 200, set.text);
      assert.deepEqual(set.data, { deviceType: TYPE, version: '1.0.0', devices: [t.a.uuid] });
      const after = await target(t.a);
      assert.notEqual(after.etag, before.etag);
      assert.deepEqual(after.device?.os, {
        version: '1.0.0',
        url: `/device/v1/${t.a.uuid}/os-images/${hex}`,
        sha256: hex,
        size: slot.length,
      });
      assert.equal((await target(t.b)).device?.os, undefined);
      assert.equal((await t.call('GET', `/api/v1/devices/${t.a.uuid}`, { key: t.a.apiKey })).data.targetOs, '1.0.0');
      assert.equal((await t.call('GET', `/api/v1/devices/${t.b.uuid}`, { key: t.b.apiKey })).data.targetOs, null);

      const fleet = await t.call('PUT', `/api/v1/fleets/${t.a.slug}/os`, {
        key: t.a.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(fleet.status, 200, fleet.text);
      assert.deepEqual(fleet.data.devices, [t.a.uuid]);
      const foreignFleet = await t.call('PUT', `/api/v1/fleets/${t.a.slug}/os`, {
        key: t.b.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(foreignFleet.data.error.code, 'FLEET_NOT_FOUND');
    });

    test('the device downloads its slot image with its key, with Range; no other key gets it', async () => {
      const path = `/device/v1/${t.a.uuid}/os-images/${hex}`;
      const whole = await fetch(`${t.url}${path}`, { headers: { authorization: `Bearer ${t.a.deviceKey}` } });
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get('accept-ranges'), 'bytes');
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(slot));
      const rest = await fetch(`${t.url}${path}`, {
        headers: { authorization: `Bearer ${t.a.deviceKey}`, range: 'bytes=123456-' },
      });
      assert.equal(rest.status, 206);
      assert.equal(rest.headers.get('content-range'), `bytes 123456-${slot.length - 1}/${slot.length}`);
      assert.ok(Buffer.from(await rest.arrayBuffer()).equals(slot.subarray(123456)));
      const beyond = await t.call('GET', path, { key: t.a.deviceKey, headers: { range: `bytes=${slot.length}-` } });
      assert.equal(beyond.status, 416);

      const otherKey = await t.call('GET', path, { key: t.b.deviceKey });
      assert.equal(otherKey.status, 401);
      assert.equal((await t.call('GET', path, { key: t.a.apiKey })).status, 401, 'a user key is no device key');
      const otherDevice = await t.call('GET', `/device/v1/${t.b.uuid}/os-images/${hex}`, { key: t.b.deviceKey });
      assert.equal(otherDevice.status, 404);
      assert.equal(otherDevice.data.error.code, 'OS_RELEASE_NOT_FOUND');
    });

    test('an observer of the organization lists its OS releases but can neither push, record nor set one', async () => {
      const username = 'os-watcher';
      const password = 'os-watcher-password-1';
      const made = await t.call('POST', '/api/v1/users', { key: t.adminKey, body: { username, password } });
      assert.equal(made.status, 201, made.text);
      const invite = { username, role: 'observer' };
      const invited = await t.call('POST', `/api/v1/organizations/${t.a.org}/invitations`, {
        key: t.a.token,
        body: invite,
      });
      assert.equal(invited.status, 202, invited.text);
      const token = (await t.call('POST', '/api/v1/auth/login', { body: { username, password } })).data.token as string;
      const id = (await t.call('GET', '/api/v1/invitations', { key: token })).data.items[0].id as number;
      assert.equal((await t.call('POST', `/api/v1/invitations/${id}/accept`, { key: token })).status, 200);

      const listed = await t.call('GET', '/api/v1/os-releases', { key: token });
      assert.deepEqual(
        listed.data.items.map((r: { version: string }) => r.version),
        ['1.0.0'],
      );
      const other = randomBytes(1000);
      const push = await pushOsImage(t.url, basicAuth(username, token), osRepository(orgA, TYPE), other, {
        deviceType: TYPE,
        version: '4.0.0',
      });
      assert.equal(push.status, 403, 'an observer never pushes');
      const body = { deviceType: TYPE, version: '1.0.1', manifestDigest: sha256Digest('x') };
      const record = await t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: token, body });
      assert.equal(record.data.error.code, 'ORGANIZATION_NOT_FOUND');
      const set = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, { key: token, body: { version: '1.0.0' } });
      assert.equal(set.data.error.code, 'DEVICE_NOT_FOUND');
    });

    test('two records of the same version at once: one is made, the other is OS_RELEASE_EXISTS', async () => {
      const image = randomBytes(5000);
      const config = { deviceType: TYPE, version: '1.0.2' };
      const pushed = await pushOsImage(t.url, auth(t.a), osRepository(orgA, TYPE), image, config);
      assert.equal(pushed.status, 201);
      const body = { ...config, manifestDigest: pushed.digest };
      const answers = await Promise.all(
        [0, 1, 2].map(() => t.call('POST', `/api/v1/organizations/${t.a.org}/os-releases`, { key: t.a.apiKey, body })),
      );
      assert.deepEqual(answers.map((a) => a.status).sort(), [201, 409, 409], answers.map((a) => a.text).join('\n'));
    });

    test('garbage collection keeps the images of recorded OS releases', async () => {
      const storage = new RegistryStorage(join(t.dataDir, 'registry'));
      await collectFleetGarbage(t.server.app.flotilla.db, storage, { now: Date.now() + 2 * 24 * 3600 * 1000 });
      assert.equal(await storage.blobSize(hex), slot.length);
      const answer = await t.call('GET', `/device/v1/${t.a.uuid}/os-images/${hex}`, { key: t.a.deviceKey });
      assert.equal(answer.status, 200);
    });
  });
}
