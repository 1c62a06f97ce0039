import { FlotillaError } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { RolloutKind, RolloutRowOf, RolloutStatus, RolloutTable } from './rollout-kind.js';
import { addEvent, latestRollout, lockRollout } from './rollout-lock.js';

export type RolloutAction = 'pause' | 'resume' | 'abort';

/**
 * Pause (running → paused), resume (paused → running; the devices whose failure counted are excused, so the same
 * failures do not pause it again) or abort (running or paused → aborted) the fleet's latest rollout of `kind`, by
 * `username`. An abort then hands the locked row to `abort`, in the transaction, for what the kind undoes and its
 * event; its answer is returned, else `unchanged`.
 */
export async function actOnLatest<T extends RolloutTable, R>(
  db: Db,
  kind: RolloutKind<T>,
  fleetId: number,
  action: RolloutAction,
  username: string,
  abort: (trx: Db, row: RolloutRowOf<T>) => Promise<R>,
  unchanged: R,
): Promise<R> {
  const latest = await latestRollout(db, kind, fleetId);
  const from: RolloutStatus[] =
    action === 'resume' ? ['paused'] : action === 'pause' ? ['running'] : ['running', 'paused'];
  const { rollouts, members, ref }: RolloutKind = kind;
  return db.transaction().execute(async (trx) => {
    const row = await lockRollout(trx, kind, latest.id, from);
    if (!row)
      throw new FlotillaError(
        'ROLLOUT_STATE',
        `the ${kind.noun} is ${latest.status}: it cannot ${action} (it must be ${from.join(' or ')})`,
      );
    if (action === 'pause') {
      await trx
        .updateTable(rollouts)
        .set({ status: 'paused', reason: `paused by ${username}` })
        .where('id', '=', row.id)
        .execute();
      await addEvent(trx, kind, row.id, 'paused', row.current_batch, `paused by ${username}`);
      return unchanged;
    }
    if (action === 'resume') {
      const excused = await trx
        .updateTable(members)
        .set({ state: 'excused', updated_at: now() })
        .where(ref, '=', row.id)
        .where('state', '=', 'failed')
        .executeTakeFirst();
      await trx.updateTable(rollouts).set({ status: 'running', reason: null }).where('id', '=', row.id).execute();
      const n = Number(excused.numUpdatedRows);
      const message = `resumed by ${username}${n > 0 ? `; ${n} failed device(s) excused` : ''}`;
      await addEvent(trx, kind, row.id, 'resumed', row.current_batch, message);
      return unchanged;
    }
    await trx
      .updateTable(rollouts)
      .set({ status: 'aborted', reason: `aborted by ${username}` })
      .where('id', '=', row.id)
      .execute();
    return abort(trx, row);
  });
}
