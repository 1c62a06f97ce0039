import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, type MigrationProvider, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { migrations } from '../db/migrations.js';
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
    const created = await testDb.create();
    const dir = await tempDir('flotilla-release-migration-');
    const sqliteFile = join(dir.path, 'old.db');
    try {
      // The old server: the schema up to BEFORE, and a fleet with one release in it.
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
        await old
          .insertInto('releases')
          .values({
            fleet_id: fleet.id,
            commit: 'a'.repeat(32),
            version: '0.0.1',
            status: 'success',
            is_final: 1,
            composition_json: JSON.stringify({ services: { web: { image: 'busybox' } } }),
            created_at: at,
          })
          .execute();
      } finally {
        await old.destroy();
      }

      // The new server opens it: migrations run to the latest.
      const upgraded = await openDatabase(created.url === undefined ? { sqliteFile } : { databaseUrl: created.url });
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
      await dir.remove();
      await created.drop();
    }
  });
}
