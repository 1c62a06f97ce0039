import { FlotillaError } from '@flotilla/protocol';
import type { RolloutPlan } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpFleet } from '../db/revisions.js';
import { fleetTargetRelease } from '../fleets/fleets.js';
import type { FleetRow } from '../fleets/fleets.js';
import { findRelease } from '../releases/releases.js';
import { actOnLatest, type RolloutAction } from './rollout-actions.js';
import { batchLabels, newRolloutColumns, placeInBatches } from './rollout-batches.js';
import { RELEASE_ROLLOUTS } from './rollout-kind.js';
import { addEvent, forEachActive } from './rollout-lock.js';
import { rolloutOverlay } from './rollout-overlay.js';

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
    await forEachActive(trx, RELEASE_ROLLOUTS, fleet.id, async ({ id }) => {
      await trx.updateTable('rollouts').set({ status: 'superseded' }).where('id', '=', id).execute();
      const message = `superseded by the rollout of release ${release.commit.slice(0, 7)}`;
      await addEvent(trx, RELEASE_ROLLOUTS, id, 'superseded', null, message);
    });
    const at = now();
    const row = await trx
      .insertInto('rollouts')
      .values({
        ...newRolloutColumns(fleet.id, plan, userId, at),
        release_id: release.id,
        previous_release_id: previous?.id ?? null,
        batch_opened_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const batchOf = await placeInBatches(trx, RELEASE_ROLLOUTS, row.id, fleet.id, plan, at);
    await addEvent(
      trx,
      RELEASE_ROLLOUTS,
      row.id,
      'created',
      null,
      `rollout of release ${release.commit.slice(0, 7)} to ${batchOf.size} device(s) in ${batchLabels(plan).length} batch(es); it starts once the release succeeds`,
    );
    return row.id;
  });
}

/**
 * Pause, resume or abort the fleet's latest rollout (rollout-actions.ts). Abort: every device of the fleet not pinned
 * by hand goes back to the previous release. Returns whether the devices' targets changed (abort).
 */
export async function actOnRollout(db: Db, fleetId: number, action: RolloutAction, username: string): Promise<boolean> {
  const abort = async (trx: Db, row: { id: number; current_batch: number }) => {
    const message = `aborted by ${username}: every device goes back to the previous release`;
    await addEvent(trx, RELEASE_ROLLOUTS, row.id, 'aborted', row.current_batch, message);
    await bumpFleet(trx, fleetId);
    return true;
  };
  return actOnLatest(db, RELEASE_ROLLOUTS, fleetId, action, username, abort, false);
}
