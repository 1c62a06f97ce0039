import type { FleetCounts } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { onlineSince, statusCondition } from './device-status.js';

export type Counts = Omit<FleetCounts, 'fleet'>;

const ZERO: Counts = { total: 0, online: 0, offline: 0, updating: 0, failed: 0 };

/**
 * Devices of each fleet by status (device-status.ts), in one grouped query over the fleets' rows (the
 * `devices_fleet_last_seen_idx` index); a fleet without devices counts zeros. INVARIANT: the same conditions as the
 * device list's status filter, so a count and the list it links to agree.
 */
export async function countDevicesByStatus(
  db: Db,
  fleetIds: readonly number[],
  at = Date.now(),
): Promise<Map<number, Counts>> {
  const counts = new Map<number, Counts>(fleetIds.map((id) => [id, { ...ZERO }]));
  if (fleetIds.length === 0) return counts;
  const since = onlineSince(at);
  const tally = (status: 'online' | 'updating' | 'failed') =>
    sql<number | string>`sum(case when ${statusCondition(status, since)} then 1 else 0 end)`;
  const rows = await db
    .selectFrom('devices')
    .select((eb) => [
      'fleet_id',
      eb.fn.countAll<number | string>().as('total'),
      tally('online').as('online'),
      tally('updating').as('updating'),
      tally('failed').as('failed'),
    ])
    .where('fleet_id', 'in', fleetIds)
    .groupBy('fleet_id')
    .execute();
  // PostgreSQL answers count and sum as strings (bigint); SQLite as numbers.
  for (const row of rows) {
    const total = Number(row.total);
    const online = Number(row.online ?? 0);
    counts.set(row.fleet_id, {
      total,
      online,
      offline: total - online,
      updating: Number(row.updating ?? 0),
      failed: Number(row.failed ?? 0),
    });
  }
  return counts;
}
