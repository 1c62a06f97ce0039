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

/**
 * Made once per app from the opened database. On SQLite the query is a statement prepared once on the raw handle:
 * at 100,000 polling devices, building and preparing it per request through Kysely would cost more than running it.
 * INVARIANT: the raw handle stays inside this function; routes get only the lookup.
 */
export function createPollLookup(database: Pick<OpenedDatabase, 'db' | 'sqlite'>): PollLookup {
  const { db, sqlite } = database;
  if (sqlite) {
    const statement = sqlite.prepare<[string], PollRow>(
      'SELECT d.id, d.key_hash, d.revision, d.fleet_id, f.revision AS fleet_revision FROM devices d JOIN fleets f ON f.id = d.fleet_id WHERE d.uuid = ?',
    );
    return (uuid) => statement.get(uuid);
  }
  return (uuid) =>
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
}
