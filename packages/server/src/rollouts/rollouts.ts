import { randomInt } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import type { Rollout, RolloutPlan } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpFleet } from '../db/revisions.js';
import { fleetTargetRelease } from '../fleets/fleets.js';
import type { FleetRow } from '../fleets/fleets.js';
import { findRelease } from '../releases/releases.js';
import { assignBatches } from './judge.js';
import { rolloutOverlay } from './rollout-overlay.js';
import { addEvent, lockRollout, type RolloutRow } from './rollout-lock.js';

const CHUNK = 500;

export function shuffle<T>(values: T[]): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [values[i], values[j]] = [values[j] as T, values[i] as T];
  }
  return values;
}

export function planOf(row: Pick<RolloutRow, 'plan_json'>): RolloutPlan {
  return JSON.parse(row.plan_json) as RolloutPlan;
}

/** Batch labels of a plan: the tag's first, then the percentages. */
export function batchLabels(plan: Pick<RolloutPlan, 'batches' | 'tag'>): string[] {
  return assignBatches([], new Set(), plan).labels;
}

/**
 * The release the fleet's devices outside opened batches get now: what a new rollout stages from. The fleet's target
 * release, unless a rollout of it still has a say (running, paused or aborted): then that rollout's previous release.
 * INVARIANT: never a release still being staged, nor one whose rollout stopped on failures or was aborted; staging
 * from it would hand it to every device whose batch has not opened, unstaged.
 */
async function releaseOutsideBatches(
  db: Db,
  fleet: FleetRow,
): Promise<{ id: number; commit: string; version: string } | null> {
  const target = await fleetTargetRelease(db, fleet);
  const overlay = await rolloutOverlay(db, fleet.id, target?.id ?? null);
  if (!overlay) return target;
  if (overlay.previousReleaseId === null) return null;
  return db
    .selectFrom('releases')
    .select(['id', 'commit', 'version'])
    .where('id', '=', overlay.previousReleaseId)
    .executeTakeFirstOrThrow();
}

/**
 * Stages `releaseRef`, a release of the fleet still being deployed (status running): once it succeeds, it goes to
 * the fleet's devices batch by batch. Every device of the fleet not pinned by hand is put in a batch now (shuffled,
 * tagged ones first); the others keep the fleet's current target release until their batch opens. An earlier rollout
 * of the fleet still going is superseded.
 */
export async function createRollout(
  db: Db,
  fleet: FleetRow,
  input: RolloutPlan & { release: number | string },
  userId: number,
): Promise<number> {
  const release = await findRelease(db, fleet.id, input.release);
  if (release.is_final !== 1)
    throw new FlotillaError(
      'ROLLOUT_STATE',
      `release ${release.commit.slice(0, 7)} is a draft: it never becomes the fleet's target`,
    );
  if (release.status !== 'running')
    throw new FlotillaError(
      'ROLLOUT_STATE',
      `release ${release.commit.slice(0, 7)} is ${release.status}: a rollout stages a release while it is deployed (flotilla deploy --rollout)`,
    );
  const { release: _release, ...plan } = input;
  return db.transaction().execute(async (trx) => {
    // The fleet's row lock: two rollouts created at once on one fleet are made one after the other.
    await bumpFleet(trx, fleet.id);
    const previous = await releaseOutsideBatches(trx, fleet);
    const active = await trx
      .selectFrom('rollouts')
      .select('id')
      .where('fleet_id', '=', fleet.id)
      .where('status', 'in', ['running', 'paused'])
      .execute();
    for (const { id } of active) {
      if (!(await lockRollout(trx, id, ['running', 'paused']))) continue;
      await trx.updateTable('rollouts').set({ status: 'superseded' }).where('id', '=', id).execute();
      await addEvent(trx, id, 'superseded', null, `superseded by the rollout of release ${release.commit.slice(0, 7)}`);
    }
    const at = now();
    const row = await trx
      .insertInto('rollouts')
      .values({
        fleet_id: fleet.id,
        release_id: release.id,
        previous_release_id: previous?.id ?? null,
        status: 'running',
        reason: null,
        plan_json: JSON.stringify(plan),
        current_batch: 0,
        batch_opened_at: null,
        soak_ms: plan.soakSeconds * 1000,
        offline_timeout_ms: plan.offlineTimeoutSeconds * 1000,
        success_threshold: plan.successThreshold,
        failure_threshold: plan.failureThreshold,
        version: 0,
        created_by: userId,
        created_at: at,
        updated_at: at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    // INVARIANT: a device pinned by hand is never in a rollout.
    const devices = await trx
      .selectFrom('devices')
      .select('id')
      .where('fleet_id', '=', fleet.id)
      .where('pinned_release_id', 'is', null)
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
      rollout_id: row.id,
      device_id: deviceId,
      batch,
      state: 'pending' as const,
      healthy_since: null,
      reason: null,
      updated_at: at,
    }));
    for (let i = 0; i < values.length; i += CHUNK)
      await trx
        .insertInto('rollout_devices')
        .values(values.slice(i, i + CHUNK))
        .execute();
    await addEvent(
      trx,
      row.id,
      'created',
      null,
      `rollout of release ${release.commit.slice(0, 7)} to ${values.length} device(s) in ${batchLabels(plan).length} batch(es); it starts once the release succeeds`,
    );
    return row.id;
  });
}

/** The fleet's latest rollout; ROLLOUT_NOT_FOUND when it never had one. */
export async function latestRollout(db: Db, fleetId: number): Promise<RolloutRow> {
  const row = await db
    .selectFrom('rollouts')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('ROLLOUT_NOT_FOUND', 'the fleet has no rollout');
  return row;
}

export type RolloutAction = 'pause' | 'resume' | 'abort';

/**
 * Pause (running → paused), resume (paused → running; the devices whose failure counted are excused, so the same
 * failures do not pause it again) or abort (running or paused → aborted: every device of the fleet not pinned by
 * hand goes back to the previous release). Returns whether the devices' targets changed (abort).
 */
export async function actOnRollout(db: Db, fleetId: number, action: RolloutAction, username: string): Promise<boolean> {
  const latest = await latestRollout(db, fleetId);
  const from: RolloutRow['status'][] =
    action === 'resume' ? ['paused'] : action === 'pause' ? ['running'] : ['running', 'paused'];
  return db.transaction().execute(async (trx) => {
    const row = await lockRollout(trx, latest.id, from);
    if (!row)
      throw new FlotillaError(
        'ROLLOUT_STATE',
        `the rollout is ${latest.status}: it cannot ${action} (it must be ${from.join(' or ')})`,
      );
    if (action === 'pause') {
      await trx
        .updateTable('rollouts')
        .set({ status: 'paused', reason: `paused by ${username}` })
        .where('id', '=', row.id)
        .execute();
      await addEvent(trx, row.id, 'paused', row.current_batch, `paused by ${username}`);
      return false;
    }
    if (action === 'resume') {
      const excused = await trx
        .updateTable('rollout_devices')
        .set({ state: 'excused', updated_at: now() })
        .where('rollout_id', '=', row.id)
        .where('state', '=', 'failed')
        .executeTakeFirst();
      await trx.updateTable('rollouts').set({ status: 'running', reason: null }).where('id', '=', row.id).execute();
      const n = Number(excused.numUpdatedRows);
      await addEvent(
        trx,
        row.id,
        'resumed',
        row.current_batch,
        `resumed by ${username}${n > 0 ? `; ${n} failed device(s) excused` : ''}`,
      );
      return false;
    }
    await trx
      .updateTable('rollouts')
      .set({ status: 'aborted', reason: `aborted by ${username}` })
      .where('id', '=', row.id)
      .execute();
    await addEvent(
      trx,
      row.id,
      'aborted',
      row.current_batch,
      `aborted by ${username}: every device goes back to the previous release`,
    );
    await bumpFleet(trx, fleetId);
    return true;
  });
}

/** The API view of a rollout: batches with their figures, devices, events; a fixed number of queries. */
export async function toRollout(db: Db, row: RolloutRow): Promise<Rollout> {
  const fleet = await db.selectFrom('fleets').select('slug').where('id', '=', row.fleet_id).executeTakeFirstOrThrow();
  const releaseIds = [row.release_id, ...(row.previous_release_id === null ? [] : [row.previous_release_id])];
  const releases = await db
    .selectFrom('releases')
    .select(['id', 'commit', 'version'])
    .where('id', 'in', releaseIds)
    .execute();
  const releaseById = new Map(releases.map((r) => [r.id, r]));
  const devices = await db
    .selectFrom('rollout_devices')
    .innerJoin('devices', 'devices.id', 'rollout_devices.device_id')
    .select([
      'devices.uuid',
      'devices.name',
      'rollout_devices.batch',
      'rollout_devices.state',
      'rollout_devices.reason',
      'rollout_devices.updated_at',
    ])
    .where('rollout_devices.rollout_id', '=', row.id)
    .orderBy('rollout_devices.batch')
    .orderBy('devices.name')
    .execute();
  const events = await db
    .selectFrom('rollout_events')
    .select(['at', 'kind', 'batch', 'message'])
    .where('rollout_id', '=', row.id)
    .orderBy('id')
    .execute();
  const plan = planOf(row);
  const opened = new Map(events.filter((e) => e.kind === 'batch-opened').map((e) => [e.batch, e.at]));
  const started = row.batch_opened_at !== null;
  const release = releaseById.get(row.release_id);
  if (!release) throw new FlotillaError('RELEASE_NOT_FOUND', 'the rollout release is gone');
  const previous = row.previous_release_id === null ? undefined : releaseById.get(row.previous_release_id);
  return {
    id: row.id,
    fleet: fleet.slug,
    release,
    previousRelease: previous ?? null,
    status: row.status,
    reason: row.reason,
    waiting: row.status === 'running' && !started,
    plan,
    currentBatch: row.current_batch,
    batches: batchLabels(plan).map((label, index) => {
      const mine = devices.filter((d) => d.batch === index);
      const count = (state: string) => mine.filter((d) => d.state === state).length;
      return {
        index,
        label,
        opened: started && index <= row.current_batch,
        openedAt: opened.get(index) ?? null,
        devices: mine.length,
        pending: count('pending'),
        succeeded: count('succeeded'),
        failed: count('failed'),
        offline: count('offline'),
        excused: count('excused'),
      };
    }),
    devices: devices.map((d) => ({ uuid: d.uuid, name: d.name, batch: d.batch, state: d.state, reason: d.reason })),
    events,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
