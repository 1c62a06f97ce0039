import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { databaseBefore } from '../testing/database-before.js';
import { listReleases } from './releases.js';

/** The last migration before releases recorded their creator. */
const BEFORE = '0006-device-last-seen';

/**
 * A database written by the server before migration 0007: its releases had no creator. Upgrading keeps them, each
 * with no author (null, shown as such), and releases made afterwards record theirs. On both databases, with rows in
 * the table when the column is added.
 */
for (const testDb of testDatabases()) {
  test(`releases from before 0007 keep no author after the upgrade (${testDb.label})`, async () => {
    // The old server: the schema up to BEFORE, and a fleet with one release in it.
    const old = await databaseBefore(testDb, BEFORE, async (db, fleetId, at) => {
      await db
        .insertInto('releases')
        .values({
          fleet_id: fleetId,
          commit: 'a'.repeat(32),
          version: '0.0.1',
          status: 'success',
          is_final: 1,
          composition_json: JSON.stringify({ services: { web: { image: 'busybox' } } }),
          created_at: at,
        })
        .execute();
    });
    try {
      // The new server opens it: migrations run to the latest.
      const upgraded = await openDatabase(old.options);
      try {
        const { db } = upgraded;
        const rows = await db.selectFrom('releases').select(['commit', 'created_by']).execute();
        assert.deepEqual(rows, [{ commit: 'a'.repeat(32), created_by: null }]);
        const fleet = await db.selectFrom('fleets').select('id').executeTakeFirstOrThrow();
        const noRegistry = { of: async () => null };
        const [release] = await listReleases(db, noRegistry, fleet.id);
        assert.equal(release?.createdBy, null);
        assert.equal(release?.version, '0.0.1');
      } finally {
        await upgraded.close();
      }
    } finally {
      await old.remove();
    }
  });
}
