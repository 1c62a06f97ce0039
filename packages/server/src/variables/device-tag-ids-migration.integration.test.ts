import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { databaseBefore } from '../testing/database-before.js';
import { setTag } from './variables.js';

/** The last migration before device tags had ids. */
const BEFORE = '0012-update-windows';

/**
 * A database written before migration 0013 (device_tags keyed by device and key, no id): upgrading keeps every tag,
 * each given a distinct numeric id, and tags made afterwards get theirs. On both databases.
 */
for (const testDb of testDatabases()) {
  test(`device tags from before 0013 keep their values and get ids (${testDb.label})`, async () => {
    const old = await databaseBefore(testDb, BEFORE, async (db, fleetId, at) => {
      const device = await db
        .insertInto('devices')
        .values({
          uuid: 'd'.repeat(32),
          fleet_id: fleetId,
          name: 'old',
          device_type: 'generic-amd64',
          created_at: at,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      await db
        .insertInto('device_tags')
        .values([
          { device_id: device.id, key: 'rack', value: 'r1' },
          { device_id: device.id, key: 'room', value: 'b2' },
        ])
        .execute();
    });
    try {
      const upgraded = await openDatabase(old.options);
      try {
        const { db } = upgraded;
        const device = await db.selectFrom('devices').select('id').executeTakeFirstOrThrow();
        await setTag(db, device.id, 'shelf', 's3');
        const rows = await db.selectFrom('device_tags').selectAll().orderBy('id').execute();
        assert.deepEqual(
          rows.map((r) => [r.key, r.value]),
          [
            ['rack', 'r1'],
            ['room', 'b2'],
            ['shelf', 's3'],
          ],
        );
        const ids = rows.map((r) => Number(r.id));
        assert.ok(ids.every((id) => Number.isInteger(id) && id > 0));
        assert.equal(new Set(ids).size, 3);
        // Still one value per device and key.
        await assert.rejects(
          db.insertInto('device_tags').values({ device_id: device.id, key: 'rack', value: 'x' }).execute(),
        );
      } finally {
        await upgraded.close();
      }
    } finally {
      await old.remove();
    }
  });
}
