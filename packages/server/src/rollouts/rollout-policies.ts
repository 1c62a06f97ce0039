import { FlotillaError, type RolloutPlan, type RolloutPolicy } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';

/** Named rollout plans stored on a fleet; a deploy names one instead of spelling the plan out. */

interface PolicyRow {
  name: string;
  plan_json: string;
  created_at: string;
  updated_at: string;
}

const toPolicy = (row: PolicyRow): RolloutPolicy => ({
  name: row.name,
  plan: JSON.parse(row.plan_json) as RolloutPlan,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export async function listRolloutPolicies(db: Db, fleetId: number): Promise<RolloutPolicy[]> {
  const rows = await db
    .selectFrom('rollout_policies')
    .select(['name', 'plan_json', 'created_at', 'updated_at'])
    .where('fleet_id', '=', fleetId)
    .orderBy('name')
    .execute();
  return rows.map(toPolicy);
}

/** Stores `plan` under `name`, replacing the plan of that name (one statement: two writers cannot both insert). */
export async function putRolloutPolicy(
  db: Db,
  fleetId: number,
  name: string,
  plan: RolloutPlan,
): Promise<RolloutPolicy> {
  const at = now();
  const row = await db
    .insertInto('rollout_policies')
    .values({ fleet_id: fleetId, name, plan_json: JSON.stringify(plan), created_at: at, updated_at: at })
    .onConflict((oc) =>
      oc
        .columns(['fleet_id', 'name'])
        .doUpdateSet({ plan_json: sql`excluded.plan_json`, updated_at: sql`excluded.updated_at` }),
    )
    .returning(['name', 'plan_json', 'created_at', 'updated_at'])
    .executeTakeFirstOrThrow();
  return toPolicy(row);
}

export async function deleteRolloutPolicy(db: Db, fleetId: number, name: string): Promise<void> {
  const result = await db
    .deleteFrom('rollout_policies')
    .where('fleet_id', '=', fleetId)
    .where('name', '=', name)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0)
    throw new FlotillaError('ROLLOUT_POLICY_NOT_FOUND', `the fleet has no rollout policy "${name}"`);
}
