import { FlotillaError, type RolloutPlan } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { Database } from '../db/schema.js';
import type { FleetRow } from '../fleets/fleets.js';
import { findOsRelease, lockOsRelease, writeDevicesOs } from '../os-releases/os-releases.js';
import { assignBatches } from './judge.js';
import { batchLabels, shuffle } from './rollouts.js';

/**
 * Staged OS updates of a fleet (issue 17 on the machinery of issue 15). The plan, thresholds, batches, judging
 * rules and decisions are an app rollout's (judge.ts); what differs is what a batch is given: opening a batch writes
 * the OS release into its devices' `target_os_release_id` (a device's OS target is its own, so no overlay is needed)
 * and bumps their revisions, in the transaction that opens it. Devices of batches not yet opened keep the OS target
 * they had.
 */
export type OsRolloutRow = Selectable<Database['os_rollouts']>;
type OsRolloutStatus = OsRolloutRow['status'];

const CHUNK = 500;

/** The OS rollout's row lock, as lockRollout (rollout-lock.ts): every decision about it is made after this call. */
export async function lockOsRollout(
  trx: Db,
  id: number,
  statuses: readonly OsRolloutStatus[],
): Promise<OsRolloutRow | undefined> {
  return trx
    .updateTable('os_rollouts')
    .set({ version: sql`version + 1`, updated_at: now() })
    .where('id', '=', id)
    .where('status', 'in', statuses)
    .returningAll()
    .executeTakeFirst();
}

export async function addOsEvent(
  trx: Db,
  rolloutId: number,
  kind: string,
  batch: number | null,
  message: string,
  at?: number,
): Promise<void> {
  const when = at === undefined ? now() : new Date(at).toISOString();
  await trx
    .insertInto('os_rollout_events')
    .values({ os_rollout_id: rolloutId, at: when, kind, batch, message })
    .execute();
}

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
  const active = await trx
    .selectFrom('os_rollouts')
    .select('id')
    .where('fleet_id', '=', fleetId)
    .where('status', 'in', ['running', 'paused'])
    .execute();
  for (const { id } of active) {
    const row = await lockOsRollout(trx, id, ['running', 'paused']);
    if (!row) continue;
    await trx.updateTable('os_rollouts').set({ status, reason }).where('id', '=', id).execute();
    await addOsEvent(trx, id, status, row.current_batch, `${status}: ${reason}`);
  }
}

/**
 * A device given its own OS target by hand (or cleared) leaves the OS rollouts still going: like a device pinned by
 * hand in an app rollout, it is no longer the rollout's to judge nor to give a target when its batch opens.
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
      .values({
        fleet_id: fleet.id,
        os_release_id: release.id,
        status: 'running',
        reason: null,
        plan_json: JSON.stringify(plan),
        current_batch: 0,
        batch_opened_at: iso,
        soak_ms: plan.soakSeconds * 1000,
        offline_timeout_ms: plan.offlineTimeoutSeconds * 1000,
        success_threshold: plan.successThreshold,
        failure_threshold: plan.failureThreshold,
        version: 0,
        created_by: userId,
        created_at: iso,
        updated_at: iso,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const devices = await trx
      .selectFrom('devices')
      .select('id')
      .where('fleet_id', '=', fleet.id)
      .where('device_type', '=', release.device_type)
      .execute();
    const tagged = new Set<number>();
    if (plan.tag) {
      const rows = await trx
        .selectFrom('device_tags')
        .innerJoin('devices', 'devices.id', 'device_tags.device_id')
        .select('device_tags.device_id')
        .where('devices.fleet_id', '=', fleet.id)
        .where('device_tags.key', '=', plan.tag.key)
        .where('device_tags.value', '=', plan.tag.value)
        .execute();
      for (const r of rows) tagged.add(r.device_id);
    }
    const { batchOf } = assignBatches(shuffle(devices.map((d) => d.id)), tagged, plan);
    const values = [...batchOf].map(([deviceId, batch]) => ({
      os_rollout_id: row.id,
      device_id: deviceId,
      batch,
      state: 'pending' as const,
      healthy_since: null,
      reason: null,
      updated_at: iso,
    }));
    for (let i = 0; i < values.length; i += CHUNK)
      await trx
        .insertInto('os_rollout_devices')
        .values(values.slice(i, i + CHUNK))
        .execute();
    const labels = batchLabels(plan);
    await addOsEvent(
      trx,
      row.id,
      'created',
      null,
      `rollout of OS ${release.version} to ${values.length} device(s) in ${labels.length} batch(es)`,
      at,
    );
    // INVARIANT: batch 1 opens in the transaction that makes the rollout, so no evaluation ever sees it unopened.
    const told = values.filter((v) => v.batch === 0).map((v) => v.device_id);
    await writeDevicesOs(trx, told, release.id);
    await addOsEvent(trx, row.id, 'batch-opened', 0, `batch 1 (${labels[0]}) opened for ${told.length} device(s)`, at);
    return { id: row.id, told };
  });
}

/** The fleet's latest OS rollout; ROLLOUT_NOT_FOUND when it never had one. */
export async function latestOsRollout(db: Db, fleetId: number): Promise<OsRolloutRow> {
  const row = await db
    .selectFrom('os_rollouts')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('ROLLOUT_NOT_FOUND', 'the fleet has no OS rollout');
  return row;
}

/**
 * Pause, resume (failed devices excused) or abort the fleet's latest OS rollout, as actOnRollout does for an app
 * rollout. Abort: the devices of opened batches that have not installed the OS (pending or offline) and still
 * target it have their OS target cleared; an update already under way on a device finishes there. Returns the
 * devices whose target changed.
 */
export async function actOnOsRollout(
  db: Db,
  fleetId: number,
  action: 'pause' | 'resume' | 'abort',
  username: string,
): Promise<number[]> {
  const latest = await latestOsRollout(db, fleetId);
  const from: OsRolloutStatus[] =
    action === 'resume' ? ['paused'] : action === 'pause' ? ['running'] : ['running', 'paused'];
  return db.transaction().execute(async (trx) => {
    const row = await lockOsRollout(trx, latest.id, from);
    if (!row)
      throw new FlotillaError(
        'ROLLOUT_STATE',
        `the OS rollout is ${latest.status}: it cannot ${action} (it must be ${from.join(' or ')})`,
      );
    if (action === 'pause') {
      await trx
        .updateTable('os_rollouts')
        .set({ status: 'paused', reason: `paused by ${username}` })
        .where('id', '=', row.id)
        .execute();
      await addOsEvent(trx, row.id, 'paused', row.current_batch, `paused by ${username}`);
      return [];
    }
    if (action === 'resume') {
      const excused = await trx
        .updateTable('os_rollout_devices')
        .set({ state: 'excused', updated_at: now() })
        .where('os_rollout_id', '=', row.id)
        .where('state', '=', 'failed')
        .executeTakeFirst();
      await trx.updateTable('os_rollouts').set({ status: 'running', reason: null }).where('id', '=', row.id).execute();
      const n = Number(excused.numUpdatedRows);
      const message = `resumed by ${username}${n > 0 ? `; ${n} failed device(s) excused` : ''}`;
      await addOsEvent(trx, row.id, 'resumed', row.current_batch, message);
      return [];
    }
    await trx
      .updateTable('os_rollouts')
      .set({ status: 'aborted', reason: `aborted by ${username}` })
      .where('id', '=', row.id)
      .execute();
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
    await addOsEvent(
      trx,
      row.id,
      'aborted',
      row.current_batch,
      `aborted by ${username}: ${ids.length} device(s) that had not installed it are no longer asked to`,
    );
    return ids;
  });
}
