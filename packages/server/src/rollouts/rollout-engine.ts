import { FAILED_STATUSES, type ComposeFile, type DeviceReport } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpDevices, bumpFleet } from '../db/revisions.js';
import type { DeviceChanges } from '../events/device-changes.js';
import { fleetTargetRelease } from '../fleets/fleets.js';
import { decideBatch, judgeDevice, type BatchFigures, type ReleaseFacts } from './judge.js';
import { evaluateOsRollout } from './os-rollout-evaluate.js';
import { addEvent, lockRollout, type RolloutRow } from './rollout-lock.js';
import { batchLabels, planOf } from './rollouts.js';

export interface RolloutEngineOptions {
  /** How often every running rollout is evaluated (default 1 s). */
  intervalMs?: number;
  /** How long a report's evaluation waits for the reports arriving with it, so a burst is evaluated once (100 ms). */
  coalesceMs?: number;
  onError: (error: unknown, what: string) => void;
}

/** What a committed evaluation changed, told to the live feeds after the commit. */
interface Outcome {
  fleetId: number;
  /** Devices whose target changed (a batch opened). */
  devices: number[];
  /** Every unpinned device of the fleet may have a new target (completed, cancelled, superseded). */
  fleet: boolean;
}

/**
 * Advances rollouts: from the devices' reports (a failure is recorded as it is reported, `noteReport`) and a timer
 * that evaluates each running rollout every `intervalMs` on every server node. An evaluation (`advance`) runs in
 * one transaction under the rollout's row lock (rollout-lock.ts): it judges the devices of the opened batches from
 * what the database holds (level-based: nothing is kept in memory, so a restarted node, or another node, goes on
 * where the last evaluation stopped), then pauses the rollout, opens the next batch, or completes it.
 */
export class RolloutEngine {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly coalesceMs: number;
  /** Rollouts to evaluate soon, after reports; each at most once per `coalesceMs`. Keyed `app:<id>`, `os:<id>`. */
  private readonly soon = new Map<string, NodeJS.Timeout>();
  private readonly evaluating = new Set<Promise<void>>();
  /** Evaluations that changed something, for tests and the benchmark. */
  advanced = 0;
  private readonly targetListeners = new Set<() => void>();

  constructor(
    private readonly db: Db,
    private readonly changes: DeviceChanges,
    private readonly options: RolloutEngineOptions,
  ) {
    this.intervalMs = options.intervalMs ?? 1_000;
    this.coalesceMs = options.coalesceMs ?? 100;
  }

  /** Called after an evaluation changed devices' targets (device-connection/ tells the devices connected here). */
  onTargetsChanged(listener: () => void): void {
    this.targetListeners.add(listener);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.tick()
        .catch((error: unknown) => this.options.onError(error, 'evaluating rollouts'))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const timer of this.soon.values()) clearTimeout(timer);
    this.soon.clear();
    await this.running;
    await Promise.all(this.evaluating);
  }

  private releaseIsTarget(rolloutId: number): Promise<boolean> {
    return releaseIsTarget(this.db, rolloutId);
  }

  /** Evaluates rollout `id` (an OS rollout's with `os`) shortly, once for all the reports of a burst. */
  private poke(id: number, delayMs = this.coalesceMs, os = false): void {
    const key = `${os ? 'os' : 'app'}:${id}`;
    if (this.soon.has(key)) return;
    const timer = setTimeout(() => {
      this.soon.delete(key);
      const evaluation = (os ? this.advanceOs(id) : this.advance(id))
        .catch((error: unknown) => this.options.onError(error, 'evaluating a rollout'))
        .finally(() => this.evaluating.delete(evaluation));
      this.evaluating.add(evaluation);
    }, delayMs);
    timer.unref();
    this.soon.set(key, timer);
  }

  /** Evaluates every running rollout once, app and OS. */
  async tick(): Promise<void> {
    const rows = await this.db.selectFrom('rollouts').select('id').where('status', '=', 'running').execute();
    for (const { id } of rows) await this.advance(id);
    const os = await this.db.selectFrom('os_rollouts').select('id').where('status', '=', 'running').execute();
    for (const { id } of os) await this.advanceOs(id);
  }

  /** One evaluation of OS rollout `id`, under its row lock (os-rollout-evaluate.ts). */
  async advanceOs(id: number): Promise<void> {
    const wake: { at?: number } = {};
    const outcome = await this.db.transaction().execute((trx) => evaluateOsRollout(trx, id, wake));
    if (wake.at !== undefined && wake.at - Date.now() < this.intervalMs)
      this.poke(id, Math.max(0, wake.at - Date.now()), true);
    if (!outcome) return;
    this.advanced += 1;
    if (outcome.devices.length > 0) {
      this.changes.changed(outcome.devices);
      for (const listener of this.targetListeners) listener();
    }
  }

  /**
   * A device reported its host OS (or its update of it): the OS rollouts still running whose opened batch holds it
   * are evaluated shortly. Its failure is read from the stored report by the evaluation (judge.ts `judgeOsDevice`).
   */
  private async noteOsReport(deviceId: number): Promise<void> {
    const rows = await this.db
      .selectFrom('os_rollout_devices')
      .innerJoin('os_rollouts', 'os_rollouts.id', 'os_rollout_devices.os_rollout_id')
      .select(['os_rollouts.id', 'os_rollouts.current_batch', 'os_rollout_devices.batch'])
      .where('os_rollout_devices.device_id', '=', deviceId)
      .where('os_rollouts.status', '=', 'running')
      .execute();
    for (const row of rows) if (row.batch <= row.current_batch) this.poke(row.id, this.coalesceMs, true);
  }

  /** One evaluation of rollout `id`, under its row lock. */
  async advance(id: number): Promise<void> {
    const wake: Wake = {};
    const outcome = await this.db.transaction().execute((trx) => evaluate(trx, id, wake));
    // A soak that ends before the next tick is evaluated when it ends, so the next batch opens without waiting.
    if (wake.at !== undefined && wake.at - Date.now() < this.intervalMs)
      this.poke(id, Math.max(0, wake.at - Date.now()));
    if (!outcome) return;
    this.advanced += 1;
    if (outcome.devices.length > 0) this.changes.changed(outcome.devices);
    if (outcome.fleet) this.changes.fleetChanged(outcome.fleetId);
    if (outcome.devices.length > 0 || outcome.fleet) for (const listener of this.targetListeners) listener();
  }

  /**
   * A device reported. When it says its update failed (the agent's `update_failed`, also after rolling back by
   * itself), it fails in each rollout whose opened batch holds it. When it says what it runs, it may have succeeded
   * (with no soak) or started its soak. Either way its rollouts are evaluated shortly, not at the next tick.
   */
  async noteReport(deviceId: number, report: DeviceReport): Promise<void> {
    if (report.os_update !== undefined || report.os_version !== undefined) await this.noteOsReport(deviceId);
    const failed =
      report.update_failed === true || (report.status != null && FAILED_STATUSES.includes(report.status.toLowerCase()));
    if (!failed && report.apps === undefined && report.is_on__commit === undefined) return;
    const rows = await this.db
      .selectFrom('rollout_devices')
      .innerJoin('rollouts', 'rollouts.id', 'rollout_devices.rollout_id')
      .select([
        'rollouts.id',
        'rollouts.status',
        'rollouts.current_batch',
        'rollouts.batch_opened_at as opened',
        'rollout_devices.batch',
        'rollout_devices.state',
      ])
      .where('rollout_devices.device_id', '=', deviceId)
      .where('rollouts.status', 'in', ['running', 'paused'])
      .execute();
    for (const row of rows) {
      if (row.batch > row.current_batch || (row.state !== 'pending' && row.state !== 'offline')) continue;
      // A failure counts once the release is the fleet's target: before that the device was never given it. (The
      // first evaluation may not have run yet when a quick device reports: the clock of batch 1 is not the test.)
      if (failed && (row.opened !== null || (await this.releaseIsTarget(row.id)))) {
        // Conditional on the state read: an evaluation that judged the device meanwhile is not overwritten blindly.
        await this.db
          .updateTable('rollout_devices')
          .set({
            state: 'failed',
            healthy_since: null,
            reason: report.status ? `reported: ${report.status}` : 'reported update_failed',
            updated_at: now(),
          })
          .where('rollout_id', '=', row.id)
          .where('device_id', '=', deviceId)
          .where('state', '=', row.state)
          .execute();
      }
      if (row.status === 'running') this.poke(row.id);
    }
  }
}

async function releaseIsTarget(db: Db, rolloutId: number): Promise<boolean> {
  const rollout = await db
    .selectFrom('rollouts')
    .innerJoin('fleets', 'fleets.id', 'rollouts.fleet_id')
    .select(['rollouts.release_id', 'fleets.id', 'fleets.pinned_release_id'])
    .where('rollouts.id', '=', rolloutId)
    .executeTakeFirst();
  if (!rollout) return false;
  return (await fleetTargetRelease(db, rollout))?.id === rollout.release_id;
}

async function releaseFacts(trx: Db, releaseId: number): Promise<ReleaseFacts & { status: string }> {
  const release = await trx
    .selectFrom('releases')
    .select(['commit', 'status', 'composition_json'])
    .where('id', '=', releaseId)
    .executeTakeFirstOrThrow();
  const composition = JSON.parse(release.composition_json) as ComposeFile;
  const services = await trx
    .selectFrom('release_services')
    .select('name')
    .where('release_id', '=', releaseId)
    .execute();
  return {
    commit: release.commit,
    status: release.status,
    services: services.map((s) => {
      const healthcheck = composition.services[s.name]?.healthcheck as { disable?: boolean } | undefined;
      return { name: s.name, healthcheck: healthcheck !== undefined && healthcheck.disable !== true };
    }),
  };
}

/** Ends the rollout (its say over the devices ends with it: the fleet's revision moves). */
async function finish(
  trx: Db,
  row: RolloutRow,
  status: 'completed' | 'cancelled' | 'superseded',
  reason: string | null,
  message: string,
): Promise<Outcome> {
  await trx.updateTable('rollouts').set({ status, reason }).where('id', '=', row.id).execute();
  await addEvent(trx, row.id, status, row.current_batch, message);
  await bumpFleet(trx, row.fleet_id);
  return { fleetId: row.fleet_id, devices: [], fleet: true };
}

/** When the evaluation found a device whose soak ends next (epoch ms). */
interface Wake {
  at?: number;
}

/** One evaluation, in its transaction; what changed for the devices' targets, or undefined when nothing did. */
async function evaluate(trx: Db, id: number, wake: Wake): Promise<Outcome | undefined> {
  const row = await lockRollout(trx, id, ['running']);
  if (!row) return undefined;
  // INVARIANT: the clock is read once the lock is held. Read before, while another node's evaluation held the lock,
  // it could start a device's soak before the batch-opened event that evaluation then wrote.
  const at = Date.now();
  const fleet = await trx
    .selectFrom('fleets')
    .select(['id', 'pinned_release_id'])
    .where('id', '=', row.fleet_id)
    .executeTakeFirstOrThrow();
  const target = await fleetTargetRelease(trx, fleet);
  const release = await releaseFacts(trx, row.release_id);
  if (target?.id !== row.release_id) {
    if (release.status === 'failed')
      return finish(trx, row, 'cancelled', 'the release failed', 'cancelled: the release failed to deploy');
    if (target && target.id > row.release_id)
      return finish(
        trx,
        row,
        'superseded',
        null,
        `superseded: release ${target.commit.slice(0, 7)} is the fleet's target`,
      );
    return undefined; // still being deployed, or the fleet is pinned to another release meanwhile
  }
  const labels = batchLabels(planOf(row));
  let changed = false;
  if (row.batch_opened_at === null) {
    // The release just became the fleet's target: batch 0 already gets it (rollout-overlay.ts); its clock starts.
    row.batch_opened_at = new Date(at).toISOString();
    await trx.updateTable('rollouts').set({ batch_opened_at: row.batch_opened_at }).where('id', '=', id).execute();
    await addEvent(trx, id, 'batch-opened', 0, `batch 1 (${labels[0]}) opened`, at);
    changed = true;
  }
  // The devices that count: still in the fleet and not pinned by hand since.
  const members = () =>
    trx
      .selectFrom('rollout_devices')
      .innerJoin('devices', 'devices.id', 'rollout_devices.device_id')
      .where('rollout_devices.rollout_id', '=', id)
      .where('devices.fleet_id', '=', row.fleet_id)
      .where('devices.pinned_release_id', 'is', null);
  const open = await members()
    .select([
      'rollout_devices.device_id',
      'rollout_devices.state',
      'rollout_devices.healthy_since',
      'devices.last_seen_at',
      'devices.running_release',
      'devices.services_json',
      'devices.update_failed',
    ])
    .where('rollout_devices.batch', '<=', row.current_batch)
    .where('rollout_devices.state', 'in', ['pending', 'offline'])
    .execute();
  const context = {
    now: at,
    soakMs: row.soak_ms,
    offlineTimeoutMs: row.offline_timeout_ms,
    openedAt: Date.parse(row.batch_opened_at),
  };
  for (const device of open) {
    const next = judgeDevice(device, device, release, context);
    if (next.state === 'pending' && next.healthy_since !== null) {
      const ends = Date.parse(next.healthy_since) + row.soak_ms;
      wake.at = Math.min(wake.at ?? ends, ends);
    }
    if (next.state === device.state && next.healthy_since === device.healthy_since) continue;
    await trx
      .updateTable('rollout_devices')
      .set({ state: next.state, healthy_since: next.healthy_since, reason: null, updated_at: now() })
      .where('rollout_id', '=', id)
      .where('device_id', '=', device.device_id)
      .where('state', '=', device.state)
      .execute();
    if (next.state !== device.state) changed = true;
  }
  const counts = await members()
    .select(['rollout_devices.state', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('rollout_devices.batch', '=', row.current_batch)
    .groupBy('rollout_devices.state')
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
  if (decision.action === 'pause') {
    await trx.updateTable('rollouts').set({ status: 'paused', reason: decision.reason }).where('id', '=', id).execute();
    await addEvent(trx, id, 'paused', row.current_batch, `paused: ${decision.reason}`, at);
    return { fleetId: row.fleet_id, devices: [], fleet: false };
  }
  if (decision.action === 'wait') return changed ? { fleetId: row.fleet_id, devices: [], fleet: false } : undefined;
  const next = row.current_batch + 1;
  if (next >= labels.length) return finish(trx, row, 'completed', null, `completed: every batch succeeded`);
  await trx
    .updateTable('rollouts')
    .set({ current_batch: next, batch_opened_at: new Date(at).toISOString() })
    .where('id', '=', id)
    .execute();
  const opened = await members()
    .select('rollout_devices.device_id')
    .where('rollout_devices.batch', '=', next)
    .execute();
  const ids = opened.map((d) => d.device_id);
  // INVARIANT (rollout-overlay.ts): opening a batch changes the target of exactly its devices; their revisions move.
  await bumpDevices(trx, ids);
  await addEvent(
    trx,
    id,
    'batch-opened',
    next,
    `batch ${next + 1} (${labels[next]}) opened for ${ids.length} device(s): batch ${next} reached ${figures.succeeded} of ${figures.devices - figures.excused - figures.offline} succeeded`,
    at,
  );
  return { fleetId: row.fleet_id, devices: ids, fleet: false };
}
