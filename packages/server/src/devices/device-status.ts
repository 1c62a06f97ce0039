import { FAILED_STATUSES, UPDATING_STATUSES, type DeviceStatusFilter } from '@flotilla/protocol';
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { ONLINE_WINDOW_MS } from '../fleets/fleets.js';

/**
 * The dashboard's device statuses, derived from what is stored (no column of their own, so nothing can drift):
 * - online: the device polled, reported or connected within ONLINE_WINDOW_MS (`last_seen_at`), as `isOnline` says;
 * - offline: not online (never seen, or not within the window), whatever it last reported;
 * - updating: online, and its reported status is one of UPDATING_STATUSES (the Flotilla agent says `Updating`
 *   while it downloads and applies a release);
 * - failed: online, and its reported status is one of FAILED_STATUSES (the agent's `Update failed`), or its last
 *   report said `update_failed: true` (the balena Supervisor's way); failed wins over updating.
 * Updating and failed devices are online too; the four together are not a partition. Statuses compare
 * case-insensitively. The sort order by status (STATUS_RANK) is online and idle, updating, failed, offline.
 *
 * INVARIANT: `deviceStatusOf` (in memory) and `statusCondition` / `statusRank` (SQL) say the same thing.
 */
export { FAILED_STATUSES, UPDATING_STATUSES };

/** Where the device stands: the offline/online split first, then what an online device says. */
export type DeviceState = 'idle' | 'updating' | 'failed' | 'offline';

export function deviceStateOf(
  row: { last_seen_at: string | null; status: string | null; update_failed: number },
  at = Date.now(),
  windowMs = ONLINE_WINDOW_MS,
): DeviceState {
  if (row.last_seen_at === null || Date.parse(row.last_seen_at) <= at - windowMs) return 'offline';
  const status = row.status?.toLowerCase() ?? '';
  if (row.update_failed === 1 || FAILED_STATUSES.includes(status)) return 'failed';
  if (UPDATING_STATUSES.includes(status)) return 'updating';
  return 'idle';
}

/** Whether a device in `state` matches the `status` filter. */
export function matchesStatus(state: DeviceState, status: DeviceStatusFilter): boolean {
  if (status === 'offline') return state === 'offline';
  if (status === 'online') return state !== 'offline';
  return state === status;
}

/** The oldest `last_seen_at` that still counts as online at `at` (exclusive bound). */
export function onlineSince(at = Date.now(), windowMs = ONLINE_WINDOW_MS): string {
  return new Date(at - windowMs).toISOString();
}

const online = (since: string) => sql<SqlBool>`(devices.last_seen_at is not null and devices.last_seen_at > ${since})`;
const statusIn = (values: readonly string[]) =>
  sql<SqlBool>`lower(devices.status) in (${sql.join(values.map((v) => sql`${v}`))})`;
const failed = () => sql<SqlBool>`(devices.update_failed = 1 or ${statusIn(FAILED_STATUSES)})`;

/** SQL condition on `devices` for a status filter; `since` from onlineSince(). */
export function statusCondition(status: DeviceStatusFilter, since: string): RawBuilder<SqlBool> {
  switch (status) {
    case 'online':
      return online(since);
    case 'offline':
      return sql<SqlBool>`not ${online(since)}`;
    case 'updating':
      return sql<SqlBool>`(${online(since)} and not ${failed()} and ${statusIn(UPDATING_STATUSES)})`;
    case 'failed':
      return sql<SqlBool>`(${online(since)} and ${failed()})`;
  }
}

/** SQL rank of a device's state for sorting: 0 idle, 1 updating, 2 failed, 3 offline. */
export function statusRank(since: string): RawBuilder<number> {
  return sql<number>`case when not ${online(since)} then 3 when ${failed()} then 2 when ${statusIn(
    UPDATING_STATUSES,
  )} then 1 else 0 end`;
}
