import { sql } from 'kysely';
import type { Db } from '../db/database.js';
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

interface PartRow {
  part: number;
  a: string;
  b: string;
  c: string | null;
  d: string | null;
  e: string | null;
}

/**
 * The device's row, its variables and its configuration in ONE statement: a first poll (a target computed) made
 * three round trips for them, the largest cost of a first poll on PostgreSQL after the lookup. A union of text
 * columns (both databases accept it as written; ids travel as text), ordered like the three queries it replaces.
 * Undefined when the device is gone.
 */
export async function loadDevicePart(db: Db, deviceId: number): Promise<DevicePart | undefined> {
  const { rows } = await sql<PartRow>`
    select 0 as part, id, uuid as a, name as b, cast(pinned_release_id as text) as c, update_window_json as d,
      cast(target_os_release_id as text) as e from devices where id = ${deviceId}
    union all select 1 as part, id, name, value, service, null, null from env_vars where device_id = ${deviceId}
    union all select 2 as part, id, name, value, null, null, null from config_vars where device_id = ${deviceId}
    order by part, id`.execute(db);
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
