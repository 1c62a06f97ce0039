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
      key_hash: null,
      pinned_release_id: null,
      revision: 0,
      status: null,
      last_seen_at: null,
      os_version: null,
      os_variant: null,
      agent_version: null,
      ip_address: null,
      mac_address: null,
      api_port: null,
      cpu_usage: null,
      cpu_temp: null,
      memory_usage: null,
      memory_total: null,
      storage_usage: null,
      storage_total: null,
      running_release: null,
      services_json: '{}',
      created_at: created,
      public_url_port: null,
      ...shape(i),
    });
  for (let i = 0; i < rows.length; i += 500)
    await db
      .insertInto('devices')
      .values(rows.slice(i, i + 500))
      .execute();
  return rows;
}
