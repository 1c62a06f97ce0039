import { FlotillaError, type RolloutPlan } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { FleetRow } from '../fleets/fleets.js';
import { findOsRelease, lockOsRelease, writeDevicesOs } from '../os-releases/os-releases.js';
import { actOnLatest, type RolloutAction } from './rollout-actions.js';
import { batchLabels, newRolloutColumns, placeInBatches } from './rollout-batches.js';
import { OS_ROLLOUTS, type RolloutRowOf } from './rollout-kind.js';
import { addEvent, forEachActive } from './rollout-lock.js';

/**
 * Staged OS updates of a fleet (issue 17 on the machinery of issue 15): the same engine as release rollouts, over
 * their own tables (rollout-kind.ts `OS_ROLLOUTS`). The plan, thresholds, batches, judging rules and decisions are a
 * release rollout's (judge.ts); what differs is what a batch is given: opening a batch writes the OS release into
 * its devices' `target_os_release_id` (a device's OS target is its own, so no overlay is needed) and bumps their
 * revisions, in the transaction that opens it. Devices of batches not yet opened keep the OS target they had.
 */
export type OsRolloutRow = RolloutRowOf<'os_rollouts'>;

/**
 * Ends the fleet's OS rollout still going (running or paused), as `status`, in transaction `trx`: another OS target
 * for the whole fleet was given (superseded) or the fleet's OS target was cleared (aborted). Targets already
 * written stay as the caller leaves them.
 */
export async function stopOsRollouts(
  trx: Db,
  fleetId: number,
  status: 'superseded' | 'aborted',
  reason: string,
): Promise<void> {
  await forEachActive(trx, OS_ROLLOUTS, fleetId, async (row) => {
    await trx.updateTable('os_rollouts').set({ status, reason }).where('id', '=', row.id).execute();
    await addEvent(trx, OS_ROLLOUTS, row.id, status, row.current_batch, `${status}: ${reason}`);
  });
}

/**
 * A device given its own OS target by hand (or cleared) leaves the OS rollouts still going: like a device pinned by
 * hand in a release rollout, it is no longer the rollout's to judge nor to give a target when its batch opens.
 */
export async function leaveOsRollouts(trx: Db, deviceId: number): Promise<void> {
  const active = trx.selectFrom('os_rollouts').select('id').where('status', 'in', ['running', 'paused']);
  await trx
    .deleteFrom('os_rollout_devices')
    .where('device_id', '=', deviceId)
    .where('os_rollout_id', 'in', active)
    .execute();
}

/**
 * Rolls OS `version` (a release of the fleet's organization and device type; OS_RELEASE_NOT_FOUND otherwise) out to
 * the fleet's devices of that type: each is put in a batch now (shuffled, tagged ones first), batch 1 is told at once.
 * The fleet's OS rollout still going is superseded. Returns the rollout and the devices told.
 */
export async function createOsRollout(
  db: Db,
  fleet: FleetRow,
  input: RolloutPlan & { version: string },
  userId: number,
): Promise<{ id: number; told: number[] }> {
  const found = await findOsRelease(db, fleet.organization_id, fleet.device_type, input.version);
  const { version: _version, ...plan } = input;
  return db.transaction().execute(async (trx) => {
    const release = await lockOsRelease(trx, found.id);
    if (!release) throw new FlotillaError('OS_RELEASE_NOT_FOUND', `no OS ${input.version} for ${fleet.device_type}`);
    await stopOsRollouts(trx, fleet.id, 'superseded', `a rollout of OS ${release.version} was started`);
    const at = Date.now();
    const iso = new Date(at).toISOString();
    const row = await trx
      .insertInto('os_rollouts')
      .values({ ...newRolloutColumns(fleet.id, plan, userId, iso), os_release_id: release.id, batch_opened_at: iso })
      .returning('id')
      .executeTakeFirstOrThrow();
    const batchOf = await placeInBatches(trx, OS_ROLLOUTS, row.id, fleet.id, plan, iso, release.device_type);
    const labels = batchLabels(plan);
    const message = `rollout of OS ${release.version} to ${batchOf.size} device(s) in ${labels.length} batch(es)`;
    await addEvent(trx, OS_ROLLOUTS, row.id, 'created', null, message, at);
    // INVARIANT: batch 1 opens in the transaction that makes the rollout, so no evaluation ever sees it unopened.
    const told = [...batchOf].filter(([, batch]) => batch === 0).map(([deviceId]) => deviceId);
    await writeDevicesOs(trx, told, release.id);
    const opened = `batch 1 (${labels[0]}) opened for ${told.length} device(s)`;
    await addEvent(trx, OS_ROLLOUTS, row.id, 'batch-opened', 0, opened, at);
    return { id: row.id, told };
  });
}

/**
 * Pause, resume (failed devices excused) or abort the fleet's latest OS rollout (rollout-actions.ts). Abort: the
 * devices of opened batches that have not installed the OS (pending or offline) and still target it have their OS
 * target cleared; an update already under way on a device finishes there. Returns the devices whose target changed.
 */
export async function actOnOsRollout(
  db: Db,
  fleetId: number,
  action: RolloutAction,
  username: string,
): Promise<number[]> {
  const abort = async (trx: Db, row: OsRolloutRow) => {
    const undone = await trx
      .selectFrom('os_rollout_devices')
      .innerJoin('devices', 'devices.id', 'os_rollout_devices.device_id')
      .select('devices.id')
      .where('os_rollout_devices.os_rollout_id', '=', row.id)
      .where('os_rollout_devices.batch', '<=', row.current_batch)
      .where('os_rollout_devices.state', 'in', ['pending', 'offline'])
      .where('devices.target_os_release_id', '=', row.os_release_id)
      .execute();
    const ids = undone.map((d) => d.id);
    await writeDevicesOs(trx, ids, null);
    const message = `aborted by ${username}: ${ids.length} device(s) that had not installed it are no longer asked to`;
    await addEvent(trx, OS_ROLLOUTS, row.id, 'aborted', row.current_batch, message);
    return ids;
  };
  return actOnLatest(db, OS_ROLLOUTS, fleetId, action, username, abort, []);
}
