import { sql } from 'kysely';
import type { Db } from './database.js';

/**
 * Runs `work` in one transaction on one connection: all of it is committed, or none of it.
 * WARNING: SQLite rolls a transaction back by itself on some errors (SQLITE_FULL among them), after which a
 * ROLLBACK fails with "no transaction is active". Kysely's transaction() would then throw that instead of the error
 * that matters (a full disk must answer 507 STORAGE_FULL, not 500), so the error of the work or of the COMMIT is
 * the one thrown here, whatever the ROLLBACK does.
 */
export async function inTransaction<T>(db: Db, work: (trx: Db) => Promise<T>): Promise<T> {
  return db.connection().execute(async (connection) => {
    await sql`begin`.execute(connection);
    let result: T;
    try {
      result = await work(connection);
      await sql`commit`.execute(connection);
    } catch (error) {
      await sql`rollback`.execute(connection).catch(() => undefined);
      throw error;
    }
    return result;
  });
}
