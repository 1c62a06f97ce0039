import type { OpenedDatabase } from '../db/database.js';
import type { TargetStateInput } from './build-target-state.js';

/** What a device's target state takes from its own rows (the fleet's part is cached per fleet revision). */
export interface DevicePart {
  uuid: string;
  name: string;
  pinnedReleaseId: number | null;
  updateWindowJson: string | null;
  targetOsReleaseId: number | null;
  env: TargetStateInput['deviceEnv'];
  config: TargetStateInput['deviceConfig'];
}

export interface PartRow {
  part: number;
  a: string;
  b: string;
  c: string | null;
  d: string | null;
  e: string | null;
}

/** Reads a device's part of its target state; undefined when the device is gone. */
export type DevicePartReader = (deviceId: number) => Promise<DevicePart | undefined>;

/**
 * The device's row, its variables and its configuration in ONE statement: a first poll (a target computed) made
 * three round trips for them, the largest cost of a first poll on PostgreSQL after the lookup. A union of text
 * columns (both databases accept it as written; ids travel as text), ordered like the three queries it replaces.
 * `by`: the device's id, or its UUID (the variables then reach it through a join). `lookupColumns`: columns of
 * `dv` (the device) and `f` (its fleet, joined) added to part 0's row, nulls in the others, so that the poll lookup
 * (poll-lookup.ts) reads its row and the part in one statement. `param`: the placeholder (`?` or `$1`).
 */
export function partSql(by: 'id' | 'uuid', param: string, lookupColumns: readonly string[] = []): string {
  const extra = lookupColumns.map((c) => `, ${c}`).join('');
  const nulls = lookupColumns.map(() => ', null').join('');
  const fleet = lookupColumns.length > 0 ? ' join fleets f on f.id = dv.fleet_id' : '';
  const rows = (table: string) =>
    by === 'id'
      ? `from ${table} x where x.device_id = ${param}`
      : `from ${table} x join devices dv on dv.id = x.device_id where dv.uuid = ${param}`;
  return `
  select 0 as part, dv.id as id, dv.uuid as a, dv.name as b, cast(dv.pinned_release_id as text) as c,
    dv.update_window_json as d, cast(dv.target_os_release_id as text) as e${extra}
    from devices dv${fleet} where dv.${by} = ${param}
  union all select 1, x.id, x.name, x.value, x.service, null, null${nulls} ${rows('env_vars')}
  union all select 2, x.id, x.name, x.value, null, null, null${nulls} ${rows('config_vars')}
  order by part, id`;
}

/**
 * Made once per app, like the poll lookup (poll-lookup.ts) and for the same reason: every first poll runs it, so it
 * is prepared once on the raw handle (SQLite) or a named statement each pooled connection plans once (PostgreSQL:
 * through Kysely it was parsed and planned at every poll). INVARIANT: the raw handles stay inside this function.
 */
export function devicePartReader(database: Pick<OpenedDatabase, 'sqlite' | 'postgresPool'>): DevicePartReader {
  const { sqlite, postgresPool } = database;
  if (sqlite) {
    const statement = sqlite.prepare<[number, number, number], PartRow>(partSql('id', '?'));
    return async (deviceId) => toPart(statement.all(deviceId, deviceId, deviceId));
  }
  if (postgresPool) {
    const text = partSql('id', '$1');
    return async (deviceId) =>
      toPart((await postgresPool.query<PartRow>({ name: 'flotilla-device-part', text, values: [deviceId] })).rows);
  }
  throw new Error('devicePartReader: the opened database has neither a SQLite handle nor a PostgreSQL pool');
}

/** The part from the rows of `partSql`; undefined: no device. */
export function toPart(rows: readonly PartRow[]): DevicePart | undefined {
  const device = rows[0];
  if (!device || Number(device.part) !== 0) return undefined;
  const part: DevicePart = {
    uuid: device.a,
    name: device.b,
    pinnedReleaseId: device.c === null ? null : Number(device.c),
    updateWindowJson: device.d,
    targetOsReleaseId: device.e === null ? null : Number(device.e),
    env: [],
    config: [],
  };
  for (const row of rows.slice(1)) {
    if (Number(row.part) === 1) part.env.push({ name: row.a, value: row.b, service: row.c });
    else part.config.push({ name: row.a, value: row.b });
  }
  return part;
}
