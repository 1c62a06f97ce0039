import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, type MigrationProvider, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { migrations } from '../db/migrations.js';
import { setTag } from './variables.js';

/** The last migration before device tags had ids. */
const BEFORE = '0012-update-windows';

/**
 * A database written before migration 0013 (device_tags keyed by device and key, no id): upgrading keeps every tag,
 * each given a distinct numeric id, and tags made afterwards get theirs. On both databases.
 */
for (const testDb of testDatabases()) {
  test(`device tags from before 0013 keep their values and get ids (${testDb.label})`, async () => {
    const created = await testDb.create();
    const dir = await tempDir('flotilla-tag-migration-');
    const sqliteFile = join(dir.path, 'old.db');
    try {
      // biome-ignore lint/suspicious/noExplicitAny: the old schema has no type of its own
      const old = new Kysely<any>({
        dialect:
          created.url === undefined
            ? new SqliteDialect({ database: new SqliteDatabase(sqliteFile) })
            : new PostgresDialect({ pool: new pg.Pool({ connectionString: created.url, max: 1 }) }),
      });
      try {
        const all = await migrations(testDb.dialect).getMigrations();
        const upToBefore: MigrationProvider = {
          getMigrations: async () => Object.fromEntries(Object.entries(all).filter(([name]) => name <= BEFORE)),
        };
        const { error } = await new Migrator({ db: old, provider: upToBefore }).migrateToLatest();
        assert.equal(error, undefined);
        const at = new Date().toISOString();
        const org = await old
          .insertInto('organizations')
          .values({ name: 'Old', handle: 'old', created_at: at })
          .returning('id')
          .executeTakeFirstOrThrow();
        const fleet = await old
          .insertInto('fleets')
          .values({
            uuid: 'f'.repeat(32),
            organization_id: org.id,
            name: 'Old fleet',
            slug: 'old-fleet',
            device_type: 'generic-amd64',
            created_at: at,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const device = await old
          .insertInto('devices')
          .values({
            uuid: 'd'.repeat(32),
            fleet_id: fleet.id,
            name: 'old',
            device_type: 'generic-amd64',
            created_at: at,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        await old
          .insertInto('device_tags')
          .values([
            { device_id: device.id, key: 'rack', value: 'r1' },
            { device_id: device.id, key: 'room', value: 'b2' },
          ])
          .execute();
      } finally {
        await old.destroy();
      }

      const upgraded = await openDatabase(created.url === undefined ? { sqliteFile } : { databaseUrl: created.url });
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
      await dir.remove();
      await created.drop();
    }
  });
}
