import type { OpenedDatabase } from '../db/database.js';
import { type DevicePart, type PartRow, partSql, toPart } from './device-part.js';

/** What every poll reads: identity, key and the revisions that validate a cached target state. */
export interface PollRow {
  id: number;
  key_hash: string | null;
  revision: number;
  fleet_id: number;
  fleet_revision: number;
  /** Asked for with `withPart`: the device's own part of its target state, read in the same statement. */
  part?: DevicePart;
}

/**
 * The one query of every target-state poll; synchronous on SQLite, a promise on PostgreSQL. `withPart`: the caller
 * will compute the device's target state (it has none cached), so the statement reads the device's part of it too,
 * saving the second round trip of a first poll; nothing of it is used unless the key checks out.
 */
export type PollLookup = (uuid: string, withPart?: boolean) => Promise<PollRow | undefined> | PollRow | undefined;

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

/** POLL_SQL and the device's part in one statement: the row of part 0 has both. */
const POLL_PART_SQL = (param: string) =>
  partSql('uuid', param, ['dv.key_hash', 'dv.revision', 'dv.fleet_id', 'f.revision as fleet_revision']);

type PollPartRow = PartRow & Omit<PollRow, 'part'>;

function withPartOf(rows: readonly PollPartRow[]): PollRow | undefined {
  const first = rows[0];
  const part = toPart(rows);
  if (!first || !part) return undefined;
  const { id, key_hash, revision, fleet_id, fleet_revision } = first;
  return { id, key_hash, revision, fleet_id, fleet_revision, part };
}

/**
 * Made once per app from the opened database. The query is a statement prepared once on the raw handle: at 100,000
 * polling devices, building it per request through Kysely (and, on PostgreSQL, having the server parse and plan
 * it) would cost more than running it. On SQLite it is prepared here; on PostgreSQL it is a named statement, which
 * `pg` prepares on each pooled connection the first time that connection runs it.
 * INVARIANT: the raw handles stay inside this function; routes get only the lookup.
 */
export function createPollLookup(database: Pick<OpenedDatabase, 'sqlite' | 'postgresPool'>): PollSource {
  const { sqlite, postgresPool } = database;
  if (sqlite) {
    const statement = sqlite.prepare<[string], PollRow>(`${POLL_SQL}?`);
    const withPart = sqlite.prepare<[string, string, string], PollPartRow>(POLL_PART_SQL('?'));
    return {
      lookup: (uuid, part) => (part ? withPartOf(withPart.all(uuid, uuid, uuid)) : statement.get(uuid)),
      committed: () => !sqlite.inTransaction,
    };
  }
  if (postgresPool) {
    const text = `${POLL_SQL}$1`;
    const partText = POLL_PART_SQL('$1');
    const lookup: PollLookup = async (uuid, part) =>
      part
        ? withPartOf(
            (await postgresPool.query<PollPartRow>({ name: 'flotilla-poll-part', text: partText, values: [uuid] }))
              .rows,
          )
        : (await postgresPool.query<PollRow>({ name: 'flotilla-poll-lookup', text, values: [uuid] })).rows[0];
    // Each pooled statement runs outside any transaction, so it reads committed rows only.
    return { lookup, committed: () => true };
  }
  throw new Error('createPollLookup: the opened database has neither a SQLite handle nor a PostgreSQL pool');
}
