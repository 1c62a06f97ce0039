import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { writeDevicesOs } from '../os-releases/os-releases.js';
import { decideBatch, judgeOsDevice, type BatchFigures } from './judge.js';
import { addOsEvent, lockOsRollout } from './os-rollouts.js';
import { batchLabels, planOf } from './rollouts.js';

/**
 * One evaluation of OS rollout `id`, in its transaction, under its row lock (as rollout-engine.ts `evaluate` for an
 * app rollout, with the same judge): judges the devices of the opened batches from what the database holds of their
 * reports, then pauses the rollout, opens the next batch (its devices' OS targets written, their revisions bumped)
 * or completes it. Returns the devices whose target changed, or undefined when nothing did; `wake.at` is set to when
 * the next soak ends.
 */
export async function evaluateOsRollout(
  trx: Db,
  id: number,
  wake: { at?: number },
): Promise<{ fleetId: number; devices: number[] } | undefined> {
  const row = await lockOsRollout(trx, id, ['running']);
  if (!row) return undefined;
  // INVARIANT: the clock is read once the lock is held (see rollout-engine.ts).
  const at = Date.now();
  const release = await trx
    .selectFrom('os_releases')
    .select(['id', 'version'])
    .where('id', '=', row.os_release_id)
    .executeTakeFirstOrThrow();
  const labels = batchLabels(planOf(row));
  // The devices that count: still in the fleet (a device given its own OS target by hand left the rollout).
  const members = () =>
    trx
      .selectFrom('os_rollout_devices')
      .innerJoin('devices', 'devices.id', 'os_rollout_devices.device_id')
      .where('os_rollout_devices.os_rollout_id', '=', id)
      .where('devices.fleet_id', '=', row.fleet_id);
  const open = await members()
    .select([
      'os_rollout_devices.device_id',
      'os_rollout_devices.state',
      'os_rollout_devices.healthy_since',
      'devices.last_seen_at',
      'devices.os_version',
      'devices.os_update_json',
    ])
    .where('os_rollout_devices.batch', '<=', row.current_batch)
    .where('os_rollout_devices.state', 'in', ['pending', 'offline'])
    .execute();
  const context = {
    now: at,
    soakMs: row.soak_ms,
    offlineTimeoutMs: row.offline_timeout_ms,
    openedAt: Date.parse(row.batch_opened_at),
  };
  let changed = false;
  for (const device of open) {
    const next = judgeOsDevice(device, device, release.version, context);
    if (next.state === 'pending' && next.healthy_since !== null) {
      const ends = Date.parse(next.healthy_since) + row.soak_ms;
      wake.at = Math.min(wake.at ?? ends, ends);
    }
    if (next.state === device.state && next.healthy_since === device.healthy_since) continue;
    await trx
      .updateTable('os_rollout_devices')
      .set({ state: next.state, healthy_since: next.healthy_since, reason: next.reason ?? null, updated_at: now() })
      .where('os_rollout_id', '=', id)
      .where('device_id', '=', device.device_id)
      .where('state', '=', device.state)
      .execute();
    if (next.state !== device.state) changed = true;
  }
  const counts = await members()
    .select(['os_rollout_devices.state', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('os_rollout_devices.batch', '=', row.current_batch)
    .groupBy('os_rollout_devices.state')
    .execute();
  const figures: BatchFigures = { devices: 0, pending: 0, succeeded: 0, failed: 0, offline: 0, excused: 0 };
  for (const c of counts) {
    figures[c.state] = Number(c.n);
    figures.devices += Number(c.n);
  }
  const decision = decideBatch(row.current_batch, figures, {
    successThreshold: row.success_threshold,
    failureThreshold: row.failure_threshold,
  });
  const none = { fleetId: row.fleet_id, devices: [] };
  if (decision.action === 'pause') {
    await trx
      .updateTable('os_rollouts')
      .set({ status: 'paused', reason: decision.reason })
      .where('id', '=', id)
      .execute();
    await addOsEvent(trx, id, 'paused', row.current_batch, `paused: ${decision.reason}`, at);
    return none;
  }
  if (decision.action === 'wait') return changed ? none : undefined;
  const next = row.current_batch + 1;
  if (next >= labels.length) {
    await trx.updateTable('os_rollouts').set({ status: 'completed' }).where('id', '=', id).execute();
    // The fleet's own target from now on: a device registered later starts with this OS.
    await trx
      .updateTable('fleets')
      .set({ target_os_release_id: row.os_release_id })
      .where('id', '=', row.fleet_id)
      .execute();
    await addOsEvent(trx, id, 'completed', row.current_batch, 'completed: every batch succeeded', at);
    return none;
  }
  await trx
    .updateTable('os_rollouts')
    .set({ current_batch: next, batch_opened_at: new Date(at).toISOString() })
    .where('id', '=', id)
    .execute();
  const opened = await members()
    .select('os_rollout_devices.device_id')
    .where('os_rollout_devices.batch', '=', next)
    .execute();
  const ids = opened.map((d) => d.device_id);
  // INVARIANT: opening a batch changes the OS target of exactly its devices, and their revisions move with it.
  await writeDevicesOs(trx, ids, release.id);
  await addOsEvent(
    trx,
    id,
    'batch-opened',
    next,
    `batch ${next + 1} (${labels[next]}) opened for ${ids.length} device(s): batch ${next} reached ${figures.succeeded} of ${figures.devices - figures.excused - figures.offline} succeeded`,
    at,
  );
  return { fleetId: row.fleet_id, devices: ids };
}
