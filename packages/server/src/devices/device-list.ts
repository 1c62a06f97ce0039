import type { Device, listDevicesQuerySchema } from '@flotilla/protocol';
import { sql, type SqlBool } from 'kysely';
import type { z } from 'zod';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds } from '../auth/principal.js';
import type { Db } from '../db/database.js';
import type { Dialect } from '../db/dialect.js';
import { visibleFleet } from '../fleets/fleets.js';
import { onlineSince, statusCondition, statusRank } from './device-status.js';
import { toDevices } from './device-view.js';

export type ListDevicesQuery = z.output<typeof listDevicesQuerySchema>;

/** Devices per page when the query names no limit (the protocol caps a page at 1,000). */
export const DEFAULT_DEVICE_PAGE = 100;

/** `%`, `_` and the escape character itself match literally in a LIKE pattern with `escape '\'`. */
function likeEscaped(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * One page of the devices the user can see, with the number matching the filters. Filtering, counting, sorting
 * and paging happen in SQL, and the page is turned into Devices in a fixed number of queries (device-view.ts),
 * so a page costs the same in a fleet of 10,000 devices as in one of ten.
 *
 * - search: a case-insensitive substring of the name or of a tag value, or a UUID prefix (hex only);
 * - status: see device-status.ts;
 * - release: the commit the device runs, or a prefix of it of 7 characters or more;
 * - sort: by name (case-insensitive, byte order so both dialects agree), last seen (never seen counts as oldest),
 *   status rank or creation; `-` descends. Ties (and no sort at all) go by id, so pages are stable.
 */
export async function listDevices(
  db: Db,
  dialect: Dialect,
  user: UserPrincipal,
  query: ListDevicesQuery,
  at = Date.now(),
): Promise<{ items: Device[]; total: number }> {
  const ids = orgIds(user);
  if (ids.length === 0) return { items: [], total: 0 };
  // Visibility first: a fleet the user cannot see is FLEET_NOT_FOUND, never an empty page.
  const fleetId = query.fleet === undefined ? undefined : (await visibleFleet(db, user, query.fleet)).id;
  const since = onlineSince(at);
  let q = db.selectFrom('devices');
  q =
    fleetId !== undefined
      ? q.where('devices.fleet_id', '=', fleetId)
      : q.where('devices.fleet_id', 'in', (eb) =>
          eb.selectFrom('fleets').select('fleets.id').where('fleets.organization_id', 'in', ids),
        );
  if (query.search !== undefined) {
    const pattern = `%${likeEscaped(query.search.toLowerCase())}%`;
    const hex = /^[0-9a-f]+$/i.test(query.search) ? query.search.toLowerCase() : undefined;
    q = q.where((eb) =>
      eb.or([
        sql<SqlBool>`lower(devices.name) like ${pattern} escape '\\'`,
        ...(hex ? [eb('devices.uuid', 'like', `${hex}%`)] : []),
        eb.exists(
          eb
            .selectFrom('device_tags')
            .select(sql`1`.as('one'))
            .whereRef('device_tags.device_id', '=', 'devices.id')
            .where(sql<SqlBool>`lower(device_tags.value) like ${pattern} escape '\\'`),
        ),
      ]),
    );
  }
  if (query.status !== undefined) q = q.where(statusCondition(query.status, since));
  if (query.release !== undefined) {
    const release = query.release;
    q = q.where(
      release.length >= 7
        ? sql<SqlBool>`devices.running_release like ${`${likeEscaped(release)}%`} escape '\\'`
        : sql<SqlBool>`devices.running_release = ${release}`,
    );
  }
  const counted = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirst();
  const sort = query.sort ?? 'id';
  const direction = sort.startsWith('-') ? 'desc' : 'asc';
  let page = q.selectAll('devices');
  switch (sort.replace(/^-/, '')) {
    case 'name':
      // PostgreSQL's default collation ignores case and punctuation its own way; "C" is byte order, as in SQLite.
      page = page.orderBy(
        dialect === 'postgres' ? sql`lower(devices.name) collate "C"` : sql`lower(devices.name)`,
        direction,
      );
      break;
    case 'lastSeen':
      page = page.orderBy('devices.last_seen_at', (ob) =>
        direction === 'asc' ? ob.asc().nullsFirst() : ob.desc().nullsLast(),
      );
      break;
    case 'status':
      page = page.orderBy(statusRank(since), direction);
      break;
    case 'created':
      page = page.orderBy('devices.created_at', direction);
      break;
  }
  const rows = await page
    .orderBy('devices.id', direction)
    .limit(query.limit ?? DEFAULT_DEVICE_PAGE)
    .offset(query.offset ?? 0)
    .execute();
  return { items: await toDevices(db, rows), total: Number(counted?.total ?? 0) };
}
