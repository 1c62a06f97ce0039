import type { OsRollout } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { OsRolloutRow } from './os-rollouts.js';
import { batchLabels, planOf } from './rollouts.js';

/** The API view of an OS rollout: batches with their figures, devices, events; a fixed number of queries. */
export async function toOsRollout(db: Db, row: OsRolloutRow): Promise<OsRollout> {
  const fleet = await db.selectFrom('fleets').select('slug').where('id', '=', row.fleet_id).executeTakeFirstOrThrow();
  const os = await db
    .selectFrom('os_releases')
    .select(['id', 'device_type as deviceType', 'version'])
    .where('id', '=', row.os_release_id)
    .executeTakeFirstOrThrow();
  const devices = await db
    .selectFrom('os_rollout_devices')
    .innerJoin('devices', 'devices.id', 'os_rollout_devices.device_id')
    .select([
      'devices.uuid',
      'devices.name',
      'os_rollout_devices.batch',
      'os_rollout_devices.state',
      'os_rollout_devices.reason',
    ])
    .where('os_rollout_devices.os_rollout_id', '=', row.id)
    .orderBy('os_rollout_devices.batch')
    .orderBy('devices.name')
    .execute();
  const events = await db
    .selectFrom('os_rollout_events')
    .select(['at', 'kind', 'batch', 'message'])
    .where('os_rollout_id', '=', row.id)
    .orderBy('id')
    .execute();
  const plan = planOf(row);
  const opened = new Map(events.filter((e) => e.kind === 'batch-opened').map((e) => [e.batch, e.at]));
  return {
    id: row.id,
    fleet: fleet.slug,
    os,
    status: row.status,
    reason: row.reason,
    plan,
    currentBatch: row.current_batch,
    batches: batchLabels(plan).map((label, index) => {
      const mine = devices.filter((d) => d.batch === index);
      const count = (state: string) => mine.filter((d) => d.state === state).length;
      return {
        index,
        label,
        opened: index <= row.current_batch,
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
}
