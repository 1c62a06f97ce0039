import type { Db } from '../db/database.js';

/**
 * How a rollout changes which release a device of its fleet gets. A fleet's target release (fleets.ts
 * `fleetTargetRelease`: its pin, else its latest successful final release) is what every unpinned device runs,
 * unless the fleet's latest rollout is of that very release and still has a say:
 * - running or paused: devices of opened batches (batch <= current_batch) get the release, the others (and devices
 *   that joined the fleet after the rollout began) the previous release;
 * - aborted: every device gets the previous release, until another release becomes the fleet's target;
 * - completed, superseded, cancelled: no say; the fleet's target release it is.
 * A device pinned by hand gets its pin whatever the rollout says.
 *
 * INVARIANT (revisions, db/revisions.ts): every change of a rollout's say bumps its fleet's revision (created,
 * aborted, completed, superseded, cancelled), and opening a batch bumps the revision of each device of the batch.
 * The fleet's part of target state may therefore cache the overlay (without `currentBatch`), but a device's batch
 * and the rollout's current batch are read afresh whenever the device's target is computed.
 */
export interface RolloutOverlay {
  rolloutId: number;
  status: 'running' | 'paused' | 'aborted';
  releaseId: number;
  previousReleaseId: number | null;
  currentBatch: number;
}

const HAS_SAY = ['running', 'paused', 'aborted'] as const;

/** The overlay of the fleet whose target release is `targetReleaseId`, or null when no rollout has a say. */
export async function rolloutOverlay(
  db: Db,
  fleetId: number,
  targetReleaseId: number | null,
): Promise<RolloutOverlay | null> {
  if (targetReleaseId === null) return null;
  const row = await db
    .selectFrom('rollouts')
    .select(['id', 'status', 'release_id', 'previous_release_id', 'current_batch'])
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row || row.release_id !== targetReleaseId) return null;
  const status = HAS_SAY.find((s) => s === row.status);
  if (!status) return null;
  return {
    rolloutId: row.id,
    status,
    releaseId: row.release_id,
    previousReleaseId: row.previous_release_id,
    currentBatch: row.current_batch,
  };
}

/** Where a device stands in a rollout: its batch (undefined: not in it) and the rollout's current batch. */
export async function standingOf(
  db: Db,
  rolloutId: number,
  deviceId: number,
): Promise<{ batch: number | undefined; currentBatch: number }> {
  const rollout = await db
    .selectFrom('rollouts')
    .select('current_batch')
    .where('id', '=', rolloutId)
    .executeTakeFirstOrThrow();
  const row = await db
    .selectFrom('rollout_devices')
    .select('batch')
    .where('rollout_id', '=', rolloutId)
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  return { batch: row?.batch, currentBatch: rollout.current_batch };
}

/** The release a device not pinned by hand gets under the overlay, from its standing. */
export function releaseUnder(
  overlay: Pick<RolloutOverlay, 'status' | 'releaseId' | 'previousReleaseId'>,
  standing: { batch: number | undefined; currentBatch: number },
): number | null {
  if (overlay.status === 'aborted') return overlay.previousReleaseId;
  return standing.batch !== undefined && standing.batch <= standing.currentBatch
    ? overlay.releaseId
    : overlay.previousReleaseId;
}
