import type SqliteDatabase from 'better-sqlite3';
import { type Insertable, sql } from 'kysely';
import type { Db, OpenedDatabase } from '../db/database.js';
import type { Database } from '../db/schema.js';

export type LogInsert = Insertable<Database['device_logs']>;

/** Stores rows in one transaction and resolves, once it is committed, with each row's id, in the rows' order. */
export type InsertLogs = (rows: readonly LogInsert[]) => Promise<number[]>;

/** The insert for the database `LogStore` writes to, and how many commits it may have in flight at once. */
export function logInserts(database: Pick<OpenedDatabase, 'db' | 'sqlite'>): {
  insert: InsertLogs;
  maxInFlight: number;
} {
  const { db, sqlite } = database;
  // SQLite has one connection, so one commit at a time; PostgreSQL's pool lets the next group commit go out while
  // one is on its way, so the server does not sit idle waiting for a round trip with posts queued.
  return sqlite ? { insert: sqliteInsert(db, sqlite), maxInFlight: 1 } : { insert: postgresInsert(db), maxInFlight: 4 };
}

/**
 * SQLite: one prepared single-row insert run per row in a better-sqlite3 transaction. Kysely built a multi-row insert
 * of up to 512 rows (3,584 parameters) per statement, and building it was the largest share of a group commit.
 * INVARIANT: the raw handle is only used while Kysely's one connection is held (`db.connection()`), so no transaction
 * Kysely opened (a write awaiting between its statements) is open on it: the rows are never committed or rolled back
 * as part of someone else's transaction.
 */
function sqliteInsert(db: Db, sqlite: SqliteDatabase.Database): InsertLogs {
  const statement = sqlite.prepare(
    'INSERT INTO device_logs (device_id, timestamp, created_at, message, is_system, is_std_err, service_name) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertAll = sqlite.transaction((rows: readonly LogInsert[]) =>
    rows.map((r) =>
      Number(
        statement.run(
          r.device_id,
          r.timestamp,
          r.created_at,
          r.message,
          r.is_system,
          r.is_std_err,
          r.service_name ?? null,
        ).lastInsertRowid,
      ),
    ),
  );
  return (rows) =>
    db.connection().execute(async () => {
      if (sqlite.inTransaction) throw new Error('a transaction is open on the connection the log insert holds');
      return insertAll(rows);
    });
}

/**
 * PostgreSQL: every row in one statement (columns as arrays, unnested), so a group commit is one round trip and its
 * own transaction, where a transaction of multi-row inserts took one round trip per statement plus BEGIN and COMMIT.
 * INVARIANT: a statement draws its rows' ids from the sequence in the order it inserts them (the unnest order), so its
 * ids sorted are its rows' ids in order; another statement's ids may fall between them, but never those of the same
 * device (LogStore keeps a device's rows in one commit at a time) and readers filter by device.
 */
function postgresInsert(db: Db): InsertLogs {
  return async (rows) => {
    const column = <K extends keyof LogInsert>(key: K) => rows.map((r) => r[key] ?? null);
    const { rows: ids } = await sql<{ id: number }>`
      INSERT INTO device_logs (device_id, "timestamp", created_at, message, is_system, is_std_err, service_name)
      SELECT * FROM unnest(${column('device_id')}::integer[], ${column('timestamp')}::bigint[],
        ${column('created_at')}::bigint[], ${column('message')}::text[], ${column('is_system')}::integer[],
        ${column('is_std_err')}::integer[], ${column('service_name')}::text[])
      RETURNING id`.execute(db);
    return ids.map((r) => Number(r.id)).sort((a, b) => a - b);
  };
}
