import type { Db } from '../db/database.js';

/**
 * How a rollout changes which release a device of its fleet gets. A fleet's target release (fleets.ts
 * `fleetTargetRelease`: its pin, else its latest successful final release) is what every unpinned device runs,
 * unless the fleet's latest rollout is of that very release and still has a say:
 * - running or paused: devices of opened batches (batch <= current_batch) get the release, the others (and devices
 *   that joined the fleet after the rollout began) the previous release;
 * - aborted: every device gets the previous release, until another release becomes the fleet's target;
 * - completed, superseded, cancelled: no say; the fleet's target release it is.
 * And one say while the latest rollout waits for its release (still being deployed, so not yet the target): when it
 * stages from a release other than the fleet's target release, that target is the release of a rollout it superseded
 * (paused on failures, say), and every device gets the release the waiting rollout stages from instead ('waiting').
 * A newer release deployed without a rollout, or a fleet pin, ends that say as any other.
 * A device pinned by hand gets its pin whatever the rollout says.
 *
 * INVARIANT (revisions, db/revisions.ts): every change of a rollout's say bumps its fleet's revision (created,
 * aborted, completed, superseded, cancelled), and opening a batch bumps the revision of each device of the batch.
 * The fleet's part of target state may therefore cache the overlay (without `currentBatch`), but a device's batch
 * and the rollout's current batch are read afresh whenever the device's target is computed.
 */
export interface RolloutOverlay {
  rolloutId: number;
  status: 'running' | 'paused' | 'aborted' | 'waiting';
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
    .select(['id', 'status', 'release_id', 'previous_release_id', 'current_batch', 'batch_opened_at'])
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return null;
  if (row.release_id !== targetReleaseId) return waitingOverlay(db, fleetId, targetReleaseId, row);
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

/** The say of a rollout still waiting for its release (see above), or null. */
async function waitingOverlay(
  db: Db,
  fleetId: number,
  targetReleaseId: number,
  row: {
    id: number;
    status: string;
    release_id: number;
    previous_release_id: number | null;
    current_batch: number;
    batch_opened_at: string | null;
  },
): Promise<RolloutOverlay | null> {
  const waiting = row.status === 'running' && row.batch_opened_at === null;
  const from = row.previous_release_id;
  // Release ids grow: a target newer than the staged release was deployed after it, without a rollout.
  if (!waiting || from === null || from === targetReleaseId || targetReleaseId > row.release_id) return null;
  const fleet = await db.selectFrom('fleets').select('pinned_release_id').where('id', '=', fleetId).executeTakeFirst();
  if (!fleet || fleet.pinned_release_id !== null) return null;
  return {
    rolloutId: row.id,
    status: 'waiting',
    releaseId: row.release_id,
    previousReleaseId: from,
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
  if (overlay.status === 'aborted' || overlay.status === 'waiting') return overlay.previousReleaseId;
  return standing.batch !== undefined && standing.batch <= standing.currentBatch
    ? overlay.releaseId
    : overlay.previousReleaseId;
}
