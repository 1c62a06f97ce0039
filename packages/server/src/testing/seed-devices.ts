import { generateDeviceUuid } from '@flotilla/protocol';
import type { Insertable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';

export type SeededDevice = Insertable<Database['devices']>;

/**
 * Inserts `count` devices into fleet `fleetId` straight through the database, as many registrations and reports
 * would have left them, 500 rows per statement (tests and benchmarks of fleets with thousands of devices).
 * `shape(i)` sets any column of the i-th device; the rest get plain values (`device-<i>`, never seen, no key).
 */
export async function seedDevices(
  db: Db,
  fleetId: number,
  count: number,
  shape: (i: number) => Partial<SeededDevice> = () => ({}),
): Promise<SeededDevice[]> {
  const created = new Date().toISOString();
  const rows: SeededDevice[] = [];
  for (let i = 0; i < count; i++)
    rows.push({
      uuid: generateDeviceUuid(),
      fleet_id: fleetId,
      name: `device-${i}`,
      device_type: 'generic-amd64',
      revision: 0,
      services_json: '{}',
      created_at: created,
      ...shape(i),
    });
  for (let i = 0; i < rows.length; i += 500)
    await db
      .insertInto('devices')
      .values(rows.slice(i, i + 500))
      .execute();
  return rows;
}
