import { FlotillaError } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { RolloutKind, RolloutRowOf, RolloutStatus, RolloutTable } from './rollout-kind.js';

export type RolloutRow = RolloutRowOf<'rollouts'>;

/**
 * Takes the row lock of rollout `id` (of `kind`) inside transaction `trx` and returns the row as it stands, or
 * undefined when it is gone (or not in one of `statuses`). The first write of the transaction bumps `version`: on
 * PostgreSQL that holds the row lock until commit, so a second server node (or a second request) waits and then
 * reads what the first committed; on SQLite it takes the database's write lock. INVARIANT: every change to a rollout
 * row, its devices' batches and states that decides what happens next, is made after this call in the same
 * transaction; so the rollout advances exactly once however many nodes evaluate it at the same instant.
 */
export async function lockRollout<T extends RolloutTable>(
  trx: Db,
  kind: RolloutKind<T>,
  id: number,
  statuses: readonly RolloutStatus[],
): Promise<RolloutRowOf<T> | undefined> {
  const { rollouts }: RolloutKind = kind;
  const row = await trx
    .updateTable(rollouts)
    .set({ version: sql`version + 1`, updated_at: now() })
    .where('id', '=', id)
    .where('status', 'in', statuses)
    .returningAll()
    .executeTakeFirst();
  // The row of table `kind.rollouts`: Kysely types a query on either table as one row with the columns of both.
  return row as RolloutRowOf<T> | undefined;
}

/**
 * Records what happened to a rollout, in its transaction. `at` (epoch ms): the time the decision was made on, when
 * it was (an evaluation's clock, which the batch clocks and soaks also use); else now.
 */
export async function addEvent(
  trx: Db,
  kind: RolloutKind,
  rolloutId: number,
  event: string,
  batch: number | null,
  message: string,
  at?: number,
): Promise<void> {
  const when = at === undefined ? now() : new Date(at).toISOString();
  await trx
    .insertInto(kind.events)
    .values({ ...refTo(kind, rolloutId), at: when, kind: event, batch, message })
    .execute();
}

/**
 * `{ rollout_id: id }` or `{ os_rollout_id: id }`: the column of a member or event row naming its rollout. (Typed
 * with both columns for a kind not known to be one: an insert into `kind.members` or `kind.events` gets the one.)
 */
export function refTo<T extends RolloutTable>(kind: RolloutKind<T>, id: number): Record<RolloutKind<T>['ref'], number> {
  return { [kind.ref]: id } as Record<RolloutKind<T>['ref'], number>;
}

/** The fleet's latest rollout of `kind`; ROLLOUT_NOT_FOUND when it never had one. */
export async function latestRollout<T extends RolloutTable>(
  db: Db,
  kind: RolloutKind<T>,
  fleetId: number,
): Promise<RolloutRowOf<T>> {
  const { rollouts }: RolloutKind = kind;
  const row = await db
    .selectFrom(rollouts)
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('ROLLOUT_NOT_FOUND', `the fleet has no ${kind.noun}`);
  return row as RolloutRowOf<T>;
}

/** Rollout `id` of `kind`, which must exist. */
export async function rolloutById<T extends RolloutTable>(
  db: Db,
  kind: RolloutKind<T>,
  id: number,
): Promise<RolloutRowOf<T>> {
  const { rollouts }: RolloutKind = kind;
  const found = await db.selectFrom(rollouts).selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  return found as RolloutRowOf<T>;
}

/**
 * Each rollout of the fleet still going (running or paused), under its row lock, handed to `end` in transaction
 * `trx` (a new rollout of the kind supersedes it, say).
 */
export async function forEachActive<T extends RolloutTable>(
  trx: Db,
  kind: RolloutKind<T>,
  fleetId: number,
  end: (row: RolloutRowOf<T>) => Promise<void>,
): Promise<void> {
  const { rollouts }: RolloutKind = kind;
  const active = await trx
    .selectFrom(rollouts)
    .select('id')
    .where('fleet_id', '=', fleetId)
    .where('status', 'in', ['running', 'paused'])
    .execute();
  for (const { id } of active) {
    const row = await lockRollout(trx, kind, id, ['running', 'paused']);
    if (row) await end(row);
  }
}
