import type { ComposeFile } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { bumpDevices, bumpFleet } from '../db/revisions.js';
import { fleetTargetRelease } from '../fleets/fleets.js';
import { judgeDevice, type ReleaseFacts } from './judge.js';
import { batchLabels, planOf } from './rollout-batches.js';
import { rolloutEvaluation, type Outcome } from './rollout-evaluation.js';
import { RELEASE_ROLLOUTS } from './rollout-kind.js';
import { addEvent, type RolloutRow } from './rollout-lock.js';

/**
 * One evaluation of release rollout `id` (rollout-evaluation.ts), which goes on only while its release is the
 * fleet's target: before, it waits (or ends when the release failed or a newer one became the target). Opening a
 * batch gives its devices the release through the overlay (rollout-overlay.ts): their revisions move. Completing
 * ends the rollout's say: the fleet's revision moves.
 */
export const evaluateRollout = rolloutEvaluation({
  kind: RELEASE_ROLLOUTS,
  facts: ['last_seen_at', 'running_release', 'services_json', 'update_failed'],
  async prepare(trx, row, at) {
    const fleet = await trx
      .selectFrom('fleets')
      .select(['id', 'pinned_release_id'])
      .where('id', '=', row.fleet_id)
      .executeTakeFirstOrThrow();
    const target = await fleetTargetRelease(trx, fleet);
    const release = await releaseFacts(trx, row.release_id);
    if (target?.id !== row.release_id) {
      if (release.status === 'failed')
        return {
          end: await finish(trx, row, 'cancelled', 'the release failed', 'cancelled: the release failed to deploy'),
        };
      if (target && target.id > row.release_id)
        return {
          end: await finish(
            trx,
            row,
            'superseded',
            null,
            `superseded: release ${target.commit.slice(0, 7)} is the fleet's target`,
          ),
        };
      return { end: undefined }; // still being deployed, or the fleet is pinned to another release meanwhile
    }
    let changed = false;
    if (row.batch_opened_at === null) {
      // The release just became the fleet's target: batch 0 already gets it (rollout-overlay.ts); its clock starts.
      row.batch_opened_at = new Date(at).toISOString();
      await trx
        .updateTable('rollouts')
        .set({ batch_opened_at: row.batch_opened_at })
        .where('id', '=', row.id)
        .execute();
      const labels = batchLabels(planOf(row));
      await addEvent(trx, RELEASE_ROLLOUTS, row.id, 'batch-opened', 0, `batch 1 (${labels[0]}) opened`, at);
      changed = true;
    }
    return {
      judge: (device, ctx) => judgeDevice(device, device, release, ctx),
      openedAt: row.batch_opened_at,
      changed,
    };
  },
  // INVARIANT (rollout-overlay.ts): the overlay gives an opened batch's devices the release; their revisions move.
  give: (trx, _row, ids) => bumpDevices(trx, ids),
  complete: (trx, row) => finish(trx, row, 'completed', null, 'completed: every batch succeeded'),
});

/** Whether the rollout's release is its fleet's target release (a failure reported before counts only then). */
export async function releaseIsTarget(db: Db, rolloutId: number): Promise<boolean> {
  const rollout = await db
    .selectFrom('rollouts')
    .innerJoin('fleets', 'fleets.id', 'rollouts.fleet_id')
    .select(['rollouts.release_id', 'fleets.id', 'fleets.pinned_release_id'])
    .where('rollouts.id', '=', rolloutId)
    .executeTakeFirst();
  if (!rollout) return false;
  return (await fleetTargetRelease(db, rollout))?.id === rollout.release_id;
}

async function releaseFacts(trx: Db, releaseId: number): Promise<ReleaseFacts & { status: string }> {
  const release = await trx
    .selectFrom('releases')
    .select(['commit', 'status', 'composition_json'])
    .where('id', '=', releaseId)
    .executeTakeFirstOrThrow();
  const composition = JSON.parse(release.composition_json) as ComposeFile;
  const services = await trx
    .selectFrom('release_services')
    .select('name')
    .where('release_id', '=', releaseId)
    .execute();
  return {
    commit: release.commit,
    status: release.status,
    services: services.map((s) => {
      const healthcheck = composition.services[s.name]?.healthcheck as { disable?: boolean } | undefined;
      return { name: s.name, healthcheck: healthcheck !== undefined && healthcheck.disable !== true };
    }),
  };
}

/** Ends the rollout (its say over the devices ends with it: the fleet's revision moves). */
async function finish(
  trx: Db,
  row: RolloutRow,
  status: 'completed' | 'cancelled' | 'superseded',
  reason: string | null,
  message: string,
): Promise<Outcome> {
  await trx.updateTable('rollouts').set({ status, reason }).where('id', '=', row.id).execute();
  await addEvent(trx, RELEASE_ROLLOUTS, row.id, status, row.current_batch, message);
  await bumpFleet(trx, row.fleet_id);
  return { fleetId: row.fleet_id, devices: [], fleet: true };
}
