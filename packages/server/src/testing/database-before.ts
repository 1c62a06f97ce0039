import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, type MigrationProvider, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { TestDatabase } from '@flotilla/testkit';
import type { DatabaseOptions } from '../db/database.js';
import { migrations } from '../db/migrations.js';

// biome-ignore lint/suspicious/noExplicitAny: an old schema has no type of its own
export type OldDb = Kysely<any>;

/**
 * A test database as an older server left it, for migration tests: migrated only up to `before` (that migration
 * included), holding one organization and one fleet, plus what `seed` writes. `options` open it as the new server
 * does (`openDatabase` runs the remaining migrations); `remove()` drops it.
 */
export async function databaseBefore(
  testDb: TestDatabase,
  before: string,
  seed: (old: OldDb, fleetId: number, at: string) => Promise<void>,
): Promise<{ options: DatabaseOptions; remove: () => Promise<void> }> {
  const created = await testDb.create();
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-old-db-'));
  const remove = async () => {
    await rm(dir, { recursive: true, force: true });
    await created.drop();
  };
  const sqliteFile = join(dir, 'old.db');
  try {
    const old: OldDb = new Kysely({
      dialect:
        created.url === undefined
          ? new SqliteDialect({ database: new SqliteDatabase(sqliteFile) })
          : new PostgresDialect({ pool: new pg.Pool({ connectionString: created.url, max: 1 }) }),
    });
    try {
      const all = await migrations(testDb.dialect).getMigrations();
      const upToBefore: MigrationProvider = {
        getMigrations: async () => Object.fromEntries(Object.entries(all).filter(([name]) => name <= before)),
      };
      const { error } = await new Migrator({ db: old, provider: upToBefore }).migrateToLatest();
      if (error) throw error;
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
      await seed(old, fleet.id, at);
    } finally {
      await old.destroy();
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { options: created.url === undefined ? { sqliteFile } : { databaseUrl: created.url }, remove };
}
