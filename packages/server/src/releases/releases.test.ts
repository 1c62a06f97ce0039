import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { harness } from '../testing/harness.js';

const digest = (n: number) => `registry.test/kitchen/web@sha256:${String(n).repeat(64).slice(0, 64)}`;

for (const testDb of testDatabases()) {
  describe(`updating a release (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
      assert.equal(
        (await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'k', slug: 'kitchen' })).statusCode,
        201,
      );
    });
    after(() => h.close());

    test('a refused update changes nothing: images given with a refused success are not kept', async () => {
      const created = await h.call('POST', '/api/v1/fleets/kitchen/releases', h.adminKey, {
        composition: { services: { web: { build: '.' }, db: { build: '.' } } },
      });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.data.id as number;
      // db has no image yet, so success is refused; the image given for web must not be half-applied.
      const refused = await h.call('PATCH', `/api/v1/releases/${id}`, h.adminKey, {
        images: { web: digest(1) },
        status: 'success',
        notes: 'first try',
      });
      assert.equal(refused.statusCode, 400, refused.body);
      assert.equal(refused.data.error.code, 'VALIDATION_FAILED');
      const after = await h.call('GET', `/api/v1/releases/${id}`, h.adminKey);
      assert.equal(after.data.status, 'running');
      assert.equal(after.data.notes, null);
      assert.deepEqual(
        after.data.services.map((s: { name: string; image: string }) => [s.name, s.image]).sort(),
        [
          ['db', ''],
          ['web', ''],
        ],
        'no image was kept from the refused update',
      );
      const done = await h.call('PATCH', `/api/v1/releases/${id}`, h.adminKey, {
        images: { web: digest(1), db: digest(2) },
        status: 'success',
      });
      assert.equal(done.statusCode, 200, done.body);
      assert.equal(done.data.status, 'success');
    });
  });
}
