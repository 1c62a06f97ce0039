import { FlotillaError } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { bumpFleet } from '../db/revisions.js';
import { leaveOsRollouts, stopOsRollouts } from '../rollouts/os-rollouts.js';
import { lockOsRelease, writeDevicesOs } from './os-releases.js';

/**
 * The OS a device must run: `devices.target_os_release_id`, set and cleared per device or for a whole fleet. Every
 * write here takes the release's row lock first (os-releases.ts `lockOsRelease`) and bumps the revisions of the
 * devices whose target changes, in one transaction.
 */

const gone = () => new FlotillaError('OS_RELEASE_NOT_FOUND', 'the OS release was deleted meanwhile');

/** Points the device at the release; it leaves its fleet's OS rollout (its target is its own now). */
export async function setDeviceOs(db: Db, deviceId: number, releaseId: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (!(await lockOsRelease(trx, releaseId))) throw gone();
    await leaveOsRollouts(trx, deviceId);
    await writeDevicesOs(trx, [deviceId], releaseId);
  });
}

/**
 * Points every device of the fleet of the release's device type at it, and the fleet itself, so that a device
 * registered later starts with it (`fleetOsFor`); one fleet revision bump tells them all (a device whose target did
 * not change keeps its ETag). The fleet's OS rollout still going is superseded. Returns the UUIDs of the devices told.
 */
export async function setFleetOs(
  db: Db,
  fleetId: number,
  release: { id: number; device_type: string; version: string },
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    if (!(await lockOsRelease(trx, release.id))) throw gone();
    // The fleet's row first: its lock orders this write after a device moving in that read the old target, or
    // before one that then reads this one (`followFleetOs`), so no moving device misses it.
    await trx.updateTable('fleets').set({ target_os_release_id: release.id }).where('id', '=', fleetId).execute();
    await stopOsRollouts(trx, fleetId, 'superseded', `OS ${release.version} was set for the whole fleet`);
    const devices = await trx
      .selectFrom('devices')
      .select(['id', 'uuid'])
      .where('fleet_id', '=', fleetId)
      .where('device_type', '=', release.device_type)
      .orderBy('id')
      .execute();
    for (let i = 0; i < devices.length; i += 500)
      await trx
        .updateTable('devices')
        .set({ target_os_release_id: release.id })
        .where(
          'id',
          'in',
          devices.slice(i, i + 500).map((d) => d.id),
        )
        .execute();
    await bumpFleet(trx, fleetId);
    return devices.map((d) => d.uuid);
  });
}

/**
 * Clears the device's OS target (and it leaves its fleet's OS rollout). The agent then asks for nothing: an OS it
 * installed stays, an update already under way finishes. Returns whether it had a target.
 */
export async function clearDeviceOs(db: Db, deviceId: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    await leaveOsRollouts(trx, deviceId);
    const had = await trx
      .selectFrom('devices')
      .select('id')
      .where('id', '=', deviceId)
      .where('target_os_release_id', 'is not', null)
      .executeTakeFirst();
    if (had) await writeDevicesOs(trx, [deviceId], null);
    return had !== undefined;
  });
}

/**
 * Clears the OS target of every device of the fleet and aborts its OS rollout still going (no further batch is
 * told). Returns the UUIDs of the devices that had a target.
 */
export async function clearFleetOs(db: Db, fleetId: number, username: string): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await trx.updateTable('fleets').set({ target_os_release_id: null }).where('id', '=', fleetId).execute();
    await stopOsRollouts(trx, fleetId, 'aborted', `the fleet's OS target was cleared by ${username}`);
    const devices = await trx
      .selectFrom('devices')
      .select(['id', 'uuid'])
      .where('fleet_id', '=', fleetId)
      .where('target_os_release_id', 'is not', null)
      .orderBy('id')
      .execute();
    await writeDevicesOs(
      trx,
      devices.map((d) => d.id),
      null,
    );
    return devices.map((d) => d.uuid);
  });
}

/**
 * The OS a device of `deviceType` joining fleet `fleetId` must run: the fleet's target when it is a release of that
 * device type, else none.
 */
export async function fleetOsFor(db: Db, fleetId: number, deviceType: string): Promise<number | null> {
  const row = await db
    .selectFrom('fleets')
    .innerJoin('os_releases', 'os_releases.id', 'fleets.target_os_release_id')
    .select('os_releases.id')
    .where('fleets.id', '=', fleetId)
    .where('os_releases.device_type', '=', deviceType)
    .whereRef('os_releases.organization_id', '=', 'fleets.organization_id')
    .executeTakeFirst();
  return row?.id ?? null;
}

/**
 * A device that moved from fleet `fromFleetId`, in the move's transaction, after the device's row was moved and the
 * destination fleet's row locked (db/revisions.ts `lockFleet`; `setFleetOs` takes that lock first): it leaves the old fleet's OS
 * rollouts, and an OS target it had from the old fleet (none, the fleet's own, or the one the fleet's OS rollout
 * gave it) becomes the new fleet's (`fleetOsFor`: none when the fleet has none for its type; an update already under
 * way then finishes, as after a clear). A target set for the device by hand stays: it is the device's own.
 * True when it changed the target, which bumped the device's revision (the move need not bump it again).
 */
export async function followFleetOs(trx: Db, deviceId: number, fromFleetId: number): Promise<boolean> {
  const device = await trx
    .selectFrom('devices')
    .select(['fleet_id', 'device_type', 'target_os_release_id'])
    .where('id', '=', deviceId)
    .executeTakeFirstOrThrow();
  const current = device.target_os_release_id;
  let fromFleet = current === null;
  if (!fromFleet) {
    const old = await trx
      .selectFrom('fleets')
      .select('target_os_release_id')
      .where('id', '=', fromFleetId)
      .executeTakeFirst();
    const byRollout = await trx
      .selectFrom('os_rollout_devices')
      .innerJoin('os_rollouts', 'os_rollouts.id', 'os_rollout_devices.os_rollout_id')
      .select('os_rollouts.id')
      .where('os_rollout_devices.device_id', '=', deviceId)
      .where('os_rollouts.fleet_id', '=', fromFleetId)
      .where('os_rollouts.os_release_id', '=', current)
      .where('os_rollouts.status', 'in', ['running', 'paused'])
      .executeTakeFirst();
    fromFleet = old?.target_os_release_id === current || byRollout !== undefined;
  }
  await leaveOsRollouts(trx, deviceId);
  if (!fromFleet) return false;
  const next = await fleetOsFor(trx, device.fleet_id, device.device_type);
  if (next === current) return false;
  // No lock on the release: the locked fleet row targets it, and a release a fleet targets cannot be deleted.
  await writeDevicesOs(trx, [deviceId], next);
  return true;
}
