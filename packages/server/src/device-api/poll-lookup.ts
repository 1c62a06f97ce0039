import type { OpenedDatabase } from '../db/database.js';

/** What every poll reads: identity, key and the revisions that validate a cached target state. */
export interface PollRow {
  id: number;
  key_hash: string | null;
  revision: number;
  fleet_id: number;
  fleet_revision: number;
}

/** The one query of every target-state poll; synchronous on SQLite, a promise on PostgreSQL. */
export type PollLookup = (uuid: string) => Promise<PollRow | undefined> | PollRow | undefined;

export interface PollSource {
  lookup: PollLookup;
  /**
   * False while a transaction is open on the connection the lookup reads through (SQLite: the server's one
   * connection), so a row read now may still be rolled back: answered, never kept (device-api/poll-cache.ts).
   */
  committed(): boolean;
}

const POLL_SQL =
  'SELECT d.id, d.key_hash, d.revision, d.fleet_id, f.revision AS fleet_revision FROM devices d JOIN fleets f ON f.id = d.fleet_id WHERE d.uuid = ';

/**
 * Made once per app from the opened database. The query is a statement prepared once on the raw handle: at 100,000
 * polling devices, building it per request through Kysely (and, on PostgreSQL, having the server parse and plan
 * it) would cost more than running it. On SQLite it is prepared here; on PostgreSQL it is a named statement, which
 * `pg` prepares on each pooled connection the first time that connection runs it.
 * INVARIANT: the raw handles stay inside this function; routes get only the lookup.
 */
export function createPollLookup(database: Pick<OpenedDatabase, 'db' | 'sqlite' | 'postgresPool'>): PollSource {
  const { db, sqlite, postgresPool } = database;
  if (sqlite) {
    const statement = sqlite.prepare<[string], PollRow>(`${POLL_SQL}?`);
    return { lookup: (uuid) => statement.get(uuid), committed: () => !sqlite.inTransaction };
  }
  // PostgreSQL: each pooled statement runs outside any transaction, so it reads committed rows only.
  const committed = () => true;
  if (postgresPool) {
    const text = `${POLL_SQL}$1`;
    const lookup: PollLookup = async (uuid) =>
      (await postgresPool.query<PollRow>({ name: 'flotilla-poll-lookup', text, values: [uuid] })).rows[0];
    return { lookup, committed };
  }
  const lookup: PollLookup = (uuid) =>
    db
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .select([
        'devices.id',
        'devices.key_hash',
        'devices.revision',
        'devices.fleet_id',
        'fleets.revision as fleet_revision',
      ])
      .where('devices.uuid', '=', uuid)
      .executeTakeFirst();
  return { lookup, committed };
}
