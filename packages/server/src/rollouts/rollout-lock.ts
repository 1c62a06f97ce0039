import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { Database } from '../db/schema.js';

export type RolloutRow = Selectable<Database['rollouts']>;

/**
 * Takes the rollout's row lock inside transaction `trx` and returns the row as it stands, or undefined when it is
 * gone (or not in one of `statuses`). The first write of the transaction bumps `version`: on PostgreSQL that holds
 * the row lock until commit, so a second server node (or a second request) waits and then reads what the first
 * committed; on SQLite it takes the database's write lock. INVARIANT: every change to a rollout row, its devices'
 * batches and states that decides what happens next, is made after this call in the same transaction; so the
 * rollout advances exactly once however many nodes evaluate it at the same instant.
 */
export async function lockRollout(
  trx: Db,
  id: number,
  statuses: readonly RolloutRow['status'][],
): Promise<RolloutRow | undefined> {
  return trx
    .updateTable('rollouts')
    .set({ version: sql`version + 1`, updated_at: now() })
    .where('id', '=', id)
    .where('status', 'in', statuses)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Records what happened to a rollout, in its transaction. `at` (epoch ms): the time the decision was made on, when
 * it was (an evaluation's clock, which the batch clocks and soaks also use); else now.
 */
export async function addEvent(
  trx: Db,
  rolloutId: number,
  kind: string,
  batch: number | null,
  message: string,
  at?: number,
): Promise<void> {
  const when = at === undefined ? now() : new Date(at).toISOString();
  await trx.insertInto('rollout_events').values({ rollout_id: rolloutId, at: when, kind, batch, message }).execute();
}
