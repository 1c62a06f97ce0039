import type { Selectable } from 'kysely';
import type { Database } from '../db/schema.js';
import { randomBytes } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import type { Fleet } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpFleet, tellLocal } from '../db/revisions.js';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds, requireOrgAdmin } from '../auth/principal.js';
import { handleFromName, visibleOrganization } from '../organizations/organizations.js';
import { findRelease } from '../releases/releases.js';
import { parseStoredWindow } from '../update-windows/update-windows.js';

/** A fleet as stored; derived from the table so the two cannot drift apart. */
export type FleetRow = Selectable<Database['fleets']>;

/** The fleet with this slug if the user is a member of its organization; FLEET_NOT_FOUND otherwise (no existence leak). */
export async function visibleFleet(db: Db, user: UserPrincipal, slug: string): Promise<FleetRow> {
  const ids = orgIds(user);
  const row =
    ids.length === 0
      ? undefined
      : await db
          .selectFrom('fleets')
          .selectAll()
          .where('slug', '=', slug)
          .where('organization_id', 'in', ids)
          .executeTakeFirst();
  if (!row) throw new FlotillaError('FLEET_NOT_FOUND', `no fleet "${slug}"`);
  return row;
}

/** The release devices of the fleet run unless pinned: the pinned one, else the latest successful final one. */
export async function fleetTargetRelease(
  db: Db,
  fleet: Pick<FleetRow, 'id' | 'pinned_release_id'>,
): Promise<{ id: number; commit: string; version: string } | null> {
  const q = db.selectFrom('releases').select(['id', 'commit', 'version']).where('fleet_id', '=', fleet.id);
  const row =
    fleet.pinned_release_id !== null
      ? await q.where('id', '=', fleet.pinned_release_id).executeTakeFirst()
      : await q
          .where('status', '=', 'success')
          .where('is_final', '=', 1)
          .orderBy('id', 'desc')
          .limit(1)
          .executeTakeFirst();
  return row ?? null;
}

export async function toFleet(db: Db, row: FleetRow): Promise<Fleet> {
  const org = await db
    .selectFrom('organizations')
    .select('handle')
    .where('id', '=', row.organization_id)
    .executeTakeFirstOrThrow();
  const target = await fleetTargetRelease(db, row);
  const pinned =
    row.pinned_release_id === null
      ? null
      : await db.selectFrom('releases').select('commit').where('id', '=', row.pinned_release_id).executeTakeFirst();
  const since = new Date(Date.now() - ONLINE_WINDOW_MS).toISOString();
  const counts = await db
    .selectFrom('devices')
    .select((eb) => [
      eb.fn.countAll<number>().as('total'),
      eb.fn.sum<number>(eb.case().when('last_seen_at', '>', since).then(1).else(0).end()).as('online'),
    ])
    .where('fleet_id', '=', row.id)
    .executeTakeFirst();
  const rollout = await db
    .selectFrom('rollouts')
    .innerJoin('releases', 'releases.id', 'rollouts.release_id')
    .select([
      'rollouts.id as id',
      'rollouts.status as status',
      'releases.id as releaseId',
      'releases.commit',
      'releases.version',
    ])
    .where('rollouts.fleet_id', '=', row.id)
    .orderBy('rollouts.id', 'desc')
    .limit(1)
    .executeTakeFirst();
  const osRollout = await db
    .selectFrom('os_rollouts')
    .innerJoin('os_releases', 'os_releases.id', 'os_rollouts.os_release_id')
    .select(['os_rollouts.id', 'os_rollouts.status', 'os_releases.version'])
    .where('os_rollouts.fleet_id', '=', row.id)
    .orderBy('os_rollouts.id', 'desc')
    .limit(1)
    .executeTakeFirst();
  const targetOs =
    row.target_os_release_id === null
      ? undefined
      : await db
          .selectFrom('os_releases')
          .select(['device_type as deviceType', 'version'])
          .where('id', '=', row.target_os_release_id)
          .executeTakeFirst();
  return {
    id: row.id,
    uuid: row.uuid,
    name: row.name,
    slug: row.slug,
    deviceType: row.device_type,
    organization: org.handle,
    targetRelease: target,
    pinnedRelease: pinned?.commit ?? null,
    deviceCount: Number(counts?.total ?? 0),
    onlineDeviceCount: Number(counts?.online ?? 0),
    createdAt: row.created_at,
    updateWindow: parseStoredWindow(row.update_window_json),
    targetOs: targetOs ?? null,
    rollout: rollout
      ? {
          id: rollout.id,
          status: rollout.status,
          release: { id: rollout.releaseId, commit: rollout.commit, version: rollout.version },
        }
      : null,
    osRollout: osRollout ?? null,
  };
}

/** A device is online when it polled or reported within this window. */
export const ONLINE_WINDOW_MS = 30 * 60 * 1000;

export async function listFleets(db: Db, user: UserPrincipal): Promise<Fleet[]> {
  const ids = orgIds(user);
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('fleets').selectAll().where('organization_id', 'in', ids).orderBy('id').execute();
  return Promise.all(rows.map((r) => toFleet(db, r)));
}

export async function createFleet(
  db: Db,
  user: UserPrincipal,
  input: { name: string; slug?: string | undefined; deviceType: string; organization?: string | undefined },
): Promise<Fleet> {
  let organizationId: number;
  if (input.organization !== undefined) organizationId = (await visibleOrganization(db, user, input.organization)).id;
  else {
    const first = orgIds(user).sort((a, b) => a - b)[0];
    if (first === undefined) throw new FlotillaError('ORGANIZATION_NOT_FOUND', 'you belong to no organization');
    organizationId = first;
  }
  const slug = input.slug ?? handleFromName(input.name);
  const taken = await db.selectFrom('fleets').select('id').where('slug', '=', slug).executeTakeFirst();
  if (taken) throw new FlotillaError('SLUG_TAKEN', `fleet slug "${slug}" is taken`);
  const row = await db
    .insertInto('fleets')
    .values({
      uuid: randomBytes(16).toString('hex'),
      organization_id: organizationId,
      name: input.name,
      slug,
      device_type: input.deviceType,
      pinned_release_id: null,
      revision: 0,
      created_at: now(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toFleet(db, row);
}

export async function updateFleet(
  db: Db,
  user: UserPrincipal,
  slug: string,
  input: { name?: string | undefined; pinnedRelease?: number | string | null | undefined },
): Promise<Fleet> {
  const fleet = await visibleFleet(db, user, slug);
  if (input.name !== undefined)
    await db.updateTable('fleets').set({ name: input.name }).where('id', '=', fleet.id).execute();
  if (input.pinnedRelease !== undefined) {
    const pinned = input.pinnedRelease === null ? null : (await findRelease(db, fleet.id, input.pinnedRelease)).id;
    await db.updateTable('fleets').set({ pinned_release_id: pinned }).where('id', '=', fleet.id).execute();
  }
  await bumpFleet(db, fleet.id);
  return toFleet(db, await visibleFleet(db, user, slug));
}

export async function deleteFleet(db: Db, user: UserPrincipal, slug: string): Promise<void> {
  const fleet = await visibleFleet(db, user, slug);
  requireOrgAdmin(user, fleet.organization_id);
  await db.deleteFrom('fleets').where('id', '=', fleet.id).execute();
  tellLocal({ kind: 'fleet', id: fleet.id });
}
