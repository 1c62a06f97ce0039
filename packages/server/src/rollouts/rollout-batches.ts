import { randomInt } from 'node:crypto';
import type { RolloutPlan } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { assignBatches } from './judge.js';
import type { RolloutKind } from './rollout-kind.js';
import { refTo } from './rollout-lock.js';

/** A rollout's batches, either kind: who is put in which when it is created, and their labels. */

const CHUNK = 500;

export function shuffle<T>(values: T[]): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [values[i], values[j]] = [values[j] as T, values[i] as T];
  }
  return values;
}

export function planOf(row: { plan_json: string }): RolloutPlan {
  return JSON.parse(row.plan_json) as RolloutPlan;
}

/**
 * The columns a new rollout of either kind starts with, from its plan: running, at batch 0 (`at`: ISO time); the
 * kind adds what it rolls out and when batch 0 opens.
 */
export function newRolloutColumns(fleetId: number, plan: RolloutPlan, userId: number, at: string) {
  return {
    fleet_id: fleetId,
    status: 'running' as const,
    reason: null,
    plan_json: JSON.stringify(plan),
    current_batch: 0,
    soak_ms: plan.soakSeconds * 1000,
    offline_timeout_ms: plan.offlineTimeoutSeconds * 1000,
    success_threshold: plan.successThreshold,
    failure_threshold: plan.failureThreshold,
    version: 0,
    created_by: userId,
    created_at: at,
    updated_at: at,
  };
}

/** Batch labels of a plan: the tag's first, then the percentages. */
export function batchLabels(plan: Pick<RolloutPlan, 'batches' | 'tag'>): string[] {
  return assignBatches([], new Set(), plan).labels;
}

/** The devices of the fleet carrying tag `key=value`. */
export async function taggedDeviceIds(
  trx: Db,
  fleetId: number,
  tag: { key: string; value: string },
): Promise<Set<number>> {
  const rows = await trx
    .selectFrom('device_tags')
    .innerJoin('devices', 'devices.id', 'device_tags.device_id')
    .select('device_tags.device_id')
    .where('devices.fleet_id', '=', fleetId)
    .where('device_tags.key', '=', tag.key)
    .where('device_tags.value', '=', tag.value)
    .execute();
  return new Set(rows.map((r) => r.device_id));
}

/** Makes each device of `batchOf` a pending member of rollout `rolloutId` in its batch, in chunks of rows. */
export async function insertBatchMembers(
  trx: Db,
  kind: RolloutKind,
  rolloutId: number,
  batchOf: ReadonlyMap<number, number>,
  at: string,
): Promise<void> {
  const values = [...batchOf].map(([deviceId, batch]) => ({
    ...refTo(kind, rolloutId),
    device_id: deviceId,
    batch,
    state: 'pending' as const,
    healthy_since: null,
    reason: null,
    updated_at: at,
  }));
  for (let i = 0; i < values.length; i += CHUNK)
    await trx
      .insertInto(kind.members)
      .values(values.slice(i, i + CHUNK))
      .execute();
}

/**
 * Puts the fleet's devices in the batches of new rollout `rolloutId` (shuffled, the ones tagged as the plan says
 * first), in transaction `trx`: those not pinned to a release by hand where `kind.skipsPinned`, those of
 * `deviceType` when given (an OS is built for one). Returns each device's batch.
 */
export async function placeInBatches(
  trx: Db,
  kind: RolloutKind,
  rolloutId: number,
  fleetId: number,
  plan: Pick<RolloutPlan, 'batches' | 'tag'>,
  at: string,
  deviceType?: string,
): Promise<Map<number, number>> {
  let query = trx.selectFrom('devices').select('id').where('fleet_id', '=', fleetId);
  // INVARIANT: a device pinned by hand is never in a release rollout.
  if (kind.skipsPinned) query = query.where('pinned_release_id', 'is', null);
  if (deviceType !== undefined) query = query.where('device_type', '=', deviceType);
  const devices = await query.execute();
  const tagged = plan.tag ? await taggedDeviceIds(trx, fleetId, plan.tag) : new Set<number>();
  const { batchOf } = assignBatches(shuffle(devices.map((d) => d.id)), tagged, plan);
  await insertBatchMembers(trx, kind, rolloutId, batchOf, at);
  return batchOf;
}
