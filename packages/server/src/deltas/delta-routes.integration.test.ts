import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEVICE_ROUTES, path } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { twoTenants, type Tenant, type TwoTenants } from '../testing/tenants.js';

for (const testDb of testDatabases()) {
  describe(`delta routes (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    const imageOf = async (tenant: Tenant): Promise<number> => {
      const release = await t.call('GET', `/api/v1/releases/${tenant.releaseCommit}`, { key: tenant.token });
      assert.equal(release.status, 200, release.text);
      return release.data.services[0].imageId as number;
    };
    const ask = (tenant: Tenant, key: string, fromImageId: number, toImageId: number) =>
      t.call('POST', path(DEVICE_ROUTES.deltaRequest.path, { uuid: tenant.uuid }), {
        key,
        body: { fromImageId, toImageId },
      });

    test('a device obtains deltas only between images of its own fleet, by id, with its own key', async () => {
      const { a, b } = t;
      const [own, other] = [await imageOf(a), await imageOf(b)];
      for (const [from, to] of [
        [own, other],
        [other, own],
        [other, other],
        [own, 999_999],
      ] as const) {
        const answer = await ask(a, a.deviceKey, from, to);
        assert.equal(answer.status, 404, `${from} → ${to}: ${answer.text}`);
        assert.equal(answer.data.error.code, 'IMAGE_NOT_FOUND');
      }
      // B's key on A's device, and A's key naming B's device.
      assert.equal((await ask(a, b.deviceKey, own, own)).status, 401);
      assert.equal((await ask(b, a.deviceKey, other, other)).status, 401);
      const download = path(DEVICE_ROUTES.deltaDownload.path, {
        uuid: a.uuid,
        from: other,
        to: other,
        digest: `sha256:${'0'.repeat(64)}`,
      });
      const answer = await t.call('GET', download, { key: a.deviceKey });
      assert.equal(answer.status, 404);
      assert.equal(answer.data.error.code, 'IMAGE_NOT_FOUND');
      // Its own pair is answered (pending while it is computed, or ready).
      assert.ok([200, 202].includes((await ask(a, a.deviceKey, own, own)).status));
      const outcome = await t.call('POST', path(DEVICE_ROUTES.deltaOutcome.path, { uuid: a.uuid }), {
        key: b.deviceKey,
        body: { fromImageId: own, toImageId: own, outcome: 'applied', bytesDownloaded: 1, pullBytes: 2 },
      });
      assert.equal(outcome.status, 401);
    });

    test("delta outcomes add up to the device's update bytes, shown on the user API's device", async () => {
      const { a, b } = t;
      const [own, other] = [await imageOf(a), await imageOf(b)];
      const report = (key: string, toImageId: number, body: object) =>
        t.call('POST', path(DEVICE_ROUTES.deltaOutcome.path, { uuid: a.uuid }), {
          key,
          body: { fromImageId: toImageId, toImageId, ...body },
        });
      const shown = async () => {
        const res = await t.call('GET', `/api/v1/devices/${a.uuid}`, { key: a.token });
        assert.equal(res.status, 200, res.text);
        return res.data.updateBytes;
      };
      assert.deepEqual(await shown(), { last: null, total: { downloaded: 0, pullBytes: 0 } });
      const applied = { outcome: 'applied', bytesDownloaded: 9_205, pullBytes: 58_801_642 };
      assert.equal((await report(a.deviceKey, own, applied)).status, 204);
      // A fallback downloaded part of the delta, then the whole pull.
      const fallback = { outcome: 'fallback', reason: 'test', bytesDownloaded: 1_000, pullBytes: 2_000_000 };
      assert.equal((await report(a.deviceKey, own, fallback)).status, 204);
      const expected = { downloaded: 9_205 + 1_000 + 2_000_000, pullBytes: 58_801_642 + 2_000_000 };
      assert.deepEqual(await shown(), { last: { release: a.releaseCommit, ...expected }, total: expected });
      // Another fleet's image is not counted (its commit would show here), nor a report made with another's key.
      const foreign = await report(a.deviceKey, other, applied);
      assert.equal(foreign.status, 404, foreign.text);
      assert.equal(foreign.data.error.code, 'IMAGE_NOT_FOUND');
      assert.equal((await report(b.deviceKey, own, applied)).status, 401);
      assert.deepEqual(await shown(), { last: { release: a.releaseCommit, ...expected }, total: expected });
    });

    test('every served device route (/device/…, /os/…, /ping) is a DEVICE_ROUTES entry', () => {
      const table = new Set(Object.values(DEVICE_ROUTES).map((r) => `${r.method} ${r.path}`));
      const served = t.server.app.flotilla.routes
        .filter((r) => r.url.startsWith('/device/') || r.url.startsWith('/os/') || r.url === '/ping')
        .map((r) => `${r.method} ${r.url}`);
      assert.ok(served.length >= 8, `only ${served.length} device routes served`);
      assert.deepEqual(
        served.filter((r) => !table.has(r)),
        [],
        'served but missing from DEVICE_ROUTES',
      );
    });
  });
}
