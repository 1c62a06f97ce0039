import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { harness } from '../testing/harness.js';
import { failStaleReleases } from './release-timeout.js';
import { findRelease, updateRelease } from './releases.js';

const composition = { services: { main: { image: 'busybox' } } };

for (const testDb of testDatabases()) {
  describe(`release timeout (${testDb.label})`, () => {
    test('a release running past the timeout is failed once, even by nodes sweeping at the same time', async () => {
      const h = await harness(testDb);
      try {
        const fleet = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'rt', slug: 'rt' });
        const stale = await h.call('POST', '/api/v1/fleets/rt/releases', h.adminKey, { composition });
        const fresh = await h.call('POST', '/api/v1/fleets/rt/releases', h.adminKey, { composition });
        const done = await h.call('POST', '/api/v1/fleets/rt/releases', h.adminKey, {
          composition,
          status: 'success',
        });
        const hourAgo = new Date(Date.now() - 61 * 60 * 1000).toISOString();
        const { db } = h.app.flotilla;
        await db
          .updateTable('releases')
          .set({ created_at: hourAgo })
          .where('id', 'in', [stale.data.id, done.data.id])
          .execute();
        // The CLI read the release while it was still running.
        const staleRow = await findRelease(db, fleet.data.id, stale.data.id);

        // Several server nodes sweep at once: each release is failed by exactly one of them.
        const sweeps = await Promise.all(Array.from({ length: 4 }, () => failStaleReleases(db, 60 * 60 * 1000)));
        assert.deepEqual(sweeps.flat(), [stale.data.id]);
        const status = async (id: number) => (await h.call('GET', `/api/v1/releases/${id}`, h.adminKey)).data.status;
        assert.equal(await status(stale.data.id), 'failed');
        assert.equal(await status(fresh.data.id), 'running');
        assert.equal(await status(done.data.id), 'success');

        // A CLI finishing late cannot turn it into a success, through the API or with the row it read before.
        const late = await h.call('PATCH', `/api/v1/releases/${stale.data.id}`, h.adminKey, { status: 'success' });
        assert.equal(late.statusCode, 409);
        // The refusal comes before any image is looked at, so no registry is needed here.
        const noRegistry = { of: async () => null };
        await assert.rejects(
          updateRelease(db, noRegistry, staleRow, { status: 'success' }),
          /RELEASE_IMMUTABLE|finished/,
        );
        assert.equal(await status(stale.data.id), 'failed');
      } finally {
        await h.close();
      }
    });
  });
}
