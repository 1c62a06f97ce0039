import { FlotillaError, deviceRefSchema, deviceUuidRefPattern } from '@flotilla/protocol';
import type { Device } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { bumpDevice, lockFleet, tellLocal } from '../db/revisions.js';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds } from '../auth/principal.js';
import { visibleFleet } from '../fleets/fleets.js';
import { followFleetOs } from '../os-releases/os-targets.js';
import { findRelease } from '../releases/releases.js';
import { toDevice, type DeviceRow } from './device-view.js';

export type { DeviceRow } from './device-view.js';

/**
 * The device `ref` names among those the user can see: a UUID, a unique prefix of 7+ hex characters of one, or else
 * a device name (names are not unique, so a name two devices share is ambiguous).
 */
export async function visibleDevice(db: Db, user: UserPrincipal, ref: string): Promise<DeviceRow> {
  if (!deviceRefSchema.safeParse(ref).success)
    throw new FlotillaError('DEVICE_NOT_FOUND', `no device "${ref.slice(0, 80)}"`);
  const ids = orgIds(user);
  if (ids.length === 0) throw new FlotillaError('DEVICE_NOT_FOUND', `no device "${ref}"`);
  const visible = () =>
    db
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .selectAll('devices')
      .where('fleets.organization_id', 'in', ids)
      .limit(2);
  if (deviceUuidRefPattern.test(ref)) {
    // The ref is hex only, so it cannot carry LIKE wildcards.
    const byUuid = await visible()
      .where('devices.uuid', ref.length >= 32 ? '=' : 'like', ref.length >= 32 ? ref : `${ref}%`)
      .execute();
    if (byUuid.length > 1)
      throw new FlotillaError('AMBIGUOUS_REFERENCE', `"${ref}" matches more than one device; give more characters`);
    if (byUuid[0]) return byUuid[0];
  }
  const byName = await visible().where('devices.name', '=', ref).execute();
  if (byName.length > 1)
    throw new FlotillaError('AMBIGUOUS_REFERENCE', `more than one device is named "${ref}"; use its UUID`);
  if (!byName[0]) throw new FlotillaError('DEVICE_NOT_FOUND', `no device "${ref}"`);
  return byName[0];
}

export async function updateDevice(
  db: Db,
  user: UserPrincipal,
  ref: string,
  input: { name?: string | undefined; fleet?: string | undefined; pinnedRelease?: number | string | null | undefined },
): Promise<{ device: Device; movedFrom: number | null }> {
  const device = await visibleDevice(db, user, ref);
  const patch: { name?: string; fleet_id?: number; pinned_release_id?: number | null } = {};
  if (input.name !== undefined) patch.name = input.name;
  let fleetId = device.fleet_id;
  if (input.fleet !== undefined) {
    const target = await visibleFleet(db, user, input.fleet);
    const current = await db
      .selectFrom('fleets')
      .select('organization_id')
      .where('id', '=', device.fleet_id)
      .executeTakeFirstOrThrow();
    if (target.organization_id !== current.organization_id)
      throw new FlotillaError('FORBIDDEN', 'a device can only move to a fleet of the same organization');
    fleetId = target.id;
    patch.fleet_id = target.id;
    // A pin names a release of the old fleet; it cannot follow the device.
    if (target.id !== device.fleet_id) patch.pinned_release_id = null;
  }
  if (input.pinnedRelease !== undefined)
    patch.pinned_release_id =
      input.pinnedRelease === null ? null : (await findRelease(db, fleetId, input.pinnedRelease)).id;
  await db.transaction().execute(async (trx) => {
    const moving = fleetId !== device.fleet_id;
    // The destination fleet's row lock first, as a fleet-wide OS target takes it (os-targets.ts `followFleetOs`).
    if (moving) await lockFleet(trx, fleetId);
    if (Object.keys(patch).length > 0)
      await trx.updateTable('devices').set(patch).where('id', '=', device.id).execute();
    // A new OS target bumped the revision already (writeDevicesOs).
    const bumped = moving && (await followFleetOs(trx, device.id, device.fleet_id));
    if (!bumped) await bumpDevice(trx, device.id);
  });
  const row = await db.selectFrom('devices').selectAll().where('id', '=', device.id).executeTakeFirstOrThrow();
  return { device: await toDevice(db, row), movedFrom: fleetId === device.fleet_id ? null : device.fleet_id };
}

export async function deleteDevice(db: Db, user: UserPrincipal, ref: string): Promise<void> {
  const device = await visibleDevice(db, user, ref);
  await db.deleteFrom('devices').where('id', '=', device.id).execute();
  tellLocal({ kind: 'device', id: device.id });
}
