import { type DeltaOutcome, FlotillaError } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * Adds one reported delta outcome to the device's update byte counts. `downloaded` counts what went over the
 * network: the delta's bytes, plus the plain pull after a fallback. The "last update" counts restart when an
 * outcome names another release than the one before (an update of several services reports one outcome per image).
 * INVARIANT: one UPDATE whose right-hand sides read the row's old values, so concurrent outcomes of one device
 * neither lose a count nor mix two releases. Tenancy: the image must be a release image of the device's own fleet
 * (IMAGE_NOT_FOUND otherwise, as for a delta request), or its release's commit would show on another fleet's device.
 */
export async function recordUpdateBytes(
  db: Db,
  device: { id: number; fleet_id: number },
  outcome: DeltaOutcome,
): Promise<void> {
  const release = await db
    .selectFrom('release_services')
    .innerJoin('releases', 'releases.id', 'release_services.release_id')
    .select('releases.commit')
    .where('release_services.id', '=', outcome.toImageId)
    .where('releases.fleet_id', '=', device.fleet_id)
    .executeTakeFirst();
  if (!release) throw new FlotillaError('IMAGE_NOT_FOUND', `no image ${outcome.toImageId} in the device's fleet`);
  const { commit } = release;
  const downloaded =
    outcome.outcome === 'applied' ? outcome.bytesDownloaded : outcome.bytesDownloaded + outcome.pullBytes;
  const pull = outcome.pullBytes;
  const sameUpdate = sql<boolean>`update_release is not null and update_release = ${commit}`;
  await db
    .updateTable('devices')
    .set({
      update_release: commit,
      update_bytes_downloaded: sql`case when ${sameUpdate} then update_bytes_downloaded + ${downloaded} else ${downloaded} end`,
      update_pull_bytes: sql`case when ${sameUpdate} then update_pull_bytes + ${pull} else ${pull} end`,
      total_bytes_downloaded: sql`total_bytes_downloaded + ${downloaded}`,
      total_pull_bytes: sql`total_pull_bytes + ${pull}`,
    })
    .where('id', '=', device.id)
    .execute();
}
