import { FlotillaError, type OsRollout, type Rollout } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { batchLabels, planOf } from './rollout-batches.js';
import { OS_ROLLOUTS, RELEASE_ROLLOUTS, type RolloutKind, type RolloutRowOf } from './rollout-kind.js';
import type { RolloutRow } from './rollout-lock.js';

/** The API view of a release rollout: batches with their figures, devices, events; a fixed number of queries. */
export async function toRollout(db: Db, row: RolloutRow): Promise<Rollout> {
  const releaseIds = [row.release_id, ...(row.previous_release_id === null ? [] : [row.previous_release_id])];
  const releases = await db
    .selectFrom('releases')
    .select(['id', 'commit', 'version'])
    .where('id', 'in', releaseIds)
    .execute();
  const releaseById = new Map(releases.map((r) => [r.id, r]));
  const started = row.batch_opened_at !== null;
  const view = await batchesView(db, RELEASE_ROLLOUTS, row, started);
  const release = releaseById.get(row.release_id);
  if (!release) throw new FlotillaError('RELEASE_NOT_FOUND', 'the rollout release is gone');
  const previous = row.previous_release_id === null ? undefined : releaseById.get(row.previous_release_id);
  return {
    id: row.id,
    fleet: view.fleet,
    release,
    previousRelease: previous ?? null,
    status: row.status,
    reason: row.reason,
    waiting: row.status === 'running' && !started,
    ...view.rest,
  };
}

/** The API view of an OS rollout, as toRollout's; its batch 1 opened when it was made. */
export async function toOsRollout(db: Db, row: RolloutRowOf<'os_rollouts'>): Promise<OsRollout> {
  const os = await db
    .selectFrom('os_releases')
    .select(['id', 'device_type as deviceType', 'version'])
    .where('id', '=', row.os_release_id)
    .executeTakeFirstOrThrow();
  const view = await batchesView(db, OS_ROLLOUTS, row, true);
  return {
    id: row.id,
    fleet: view.fleet,
    os,
    status: row.status,
    reason: row.reason,
    ...view.rest,
  };
}

/**
 * What the views of both kinds show alike: the fleet's slug and, in the order the views end with (`rest`), the plan,
 * each batch with its figures (opened once the rollout `started` and the batch is at most the current one), the
 * member devices, the events and the row's times.
 */
async function batchesView(
  db: Db,
  kind: RolloutKind,
  row: {
    id: number;
    fleet_id: number;
    plan_json: string;
    current_batch: number;
    created_at: string;
    updated_at: string;
  },
  started: boolean,
) {
  const fleet = await db.selectFrom('fleets').select('slug').where('id', '=', row.fleet_id).executeTakeFirstOrThrow();
  const devices = await db
    .selectFrom(kind.members)
    .innerJoin('devices', 'devices.id', `${kind.members}.device_id`)
    .select([
      'devices.uuid',
      'devices.name',
      `${kind.members}.batch`,
      `${kind.members}.state`,
      `${kind.members}.reason`,
    ])
    .where(kind.ref, '=', row.id)
    .orderBy(`${kind.members}.batch`)
    .orderBy('devices.name')
    .execute();
  const events = await db
    .selectFrom(kind.events)
    .select(['at', 'kind', 'batch', 'message'])
    .where(kind.ref, '=', row.id)
    .orderBy('id')
    .execute();
  const plan = planOf(row);
  const opened = new Map(events.filter((e) => e.kind === 'batch-opened').map((e) => [e.batch, e.at]));
  const rest = {
    plan,
    currentBatch: row.current_batch,
    batches: batchLabels(plan).map((label, index) => {
      const mine = devices.filter((d) => d.batch === index);
      const count = (state: string) => mine.filter((d) => d.state === state).length;
      return {
        index,
        label,
        opened: started && index <= row.current_batch,
        openedAt: opened.get(index) ?? null,
        devices: mine.length,
        pending: count('pending'),
        succeeded: count('succeeded'),
        failed: count('failed'),
        offline: count('offline'),
        excused: count('excused'),
      };
    }),
    devices: devices.map((d) => ({ uuid: d.uuid, name: d.name, batch: d.batch, state: d.state, reason: d.reason })),
    events,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  return { fleet: fleet.slug, rest };
}
