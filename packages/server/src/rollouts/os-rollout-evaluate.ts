import { writeDevicesOs } from '../os-releases/os-releases.js';
import { judgeOsDevice } from './judge.js';
import { rolloutEvaluation } from './rollout-evaluation.js';
import { OS_ROLLOUTS } from './rollout-kind.js';
import { addEvent } from './rollout-lock.js';

/**
 * One evaluation of OS rollout `id` (rollout-evaluation.ts, with the OS judge: judge.ts `judgeOsDevice`). Its batch
 * 1 opened when it was made, so it always goes on. Opening a batch writes the OS release into its devices' OS
 * targets (their revisions bumped); completing makes it the fleet's own OS target.
 */
export const evaluateOsRollout = rolloutEvaluation({
  kind: OS_ROLLOUTS,
  facts: ['last_seen_at', 'os_version', 'os_update_json'],
  async prepare(trx, row) {
    const release = await trx
      .selectFrom('os_releases')
      .select(['id', 'version'])
      .where('id', '=', row.os_release_id)
      .executeTakeFirstOrThrow();
    return {
      judge: (device, ctx) => judgeOsDevice(device, device, release.version, ctx),
      openedAt: row.batch_opened_at,
      changed: false,
    };
  },
  // INVARIANT: opening a batch changes the OS target of exactly its devices, and their revisions move with it.
  give: (trx, row, ids) => writeDevicesOs(trx, ids, row.os_release_id),
  async complete(trx, row, at) {
    await trx.updateTable('os_rollouts').set({ status: 'completed' }).where('id', '=', row.id).execute();
    // The fleet's own target from now on: a device registered later starts with this OS.
    await trx
      .updateTable('fleets')
      .set({ target_os_release_id: row.os_release_id })
      .where('id', '=', row.fleet_id)
      .execute();
    await addEvent(trx, OS_ROLLOUTS, row.id, 'completed', row.current_batch, 'completed: every batch succeeded', at);
    return { fleetId: row.fleet_id, devices: [], fleet: false };
  },
});
