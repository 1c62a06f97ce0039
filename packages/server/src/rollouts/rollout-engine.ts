import { FAILED_STATUSES, type DeviceReport } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { DeviceChanges } from '../events/device-changes.js';
import { evaluateOsRollout } from './os-rollout-evaluate.js';
import { evaluateRollout, releaseIsTarget } from './rollout-evaluate.js';
import type { Evaluate, Wake } from './rollout-evaluation.js';
import { OS_ROLLOUTS, RELEASE_ROLLOUTS, type RolloutKind } from './rollout-kind.js';

export interface RolloutEngineOptions {
  /** How often every running rollout is evaluated (default 1 s). */
  intervalMs?: number;
  /** How long a report's evaluation waits for the reports arriving with it, so a burst is evaluated once (100 ms). */
  coalesceMs?: number;
  onError: (error: unknown, what: string) => void;
}

/** Each kind of rollout (its tables) and its evaluation; `app` for release rollouts, as the engine's keys say. */
const KINDS: Record<'app' | 'os', { kind: RolloutKind; evaluate: Evaluate }> = {
  app: { kind: RELEASE_ROLLOUTS, evaluate: evaluateRollout },
  os: { kind: OS_ROLLOUTS, evaluate: evaluateOsRollout },
};
type Which = keyof typeof KINDS;

/**
 * Advances rollouts, release and OS: from the devices' reports (a failure is recorded as it is reported,
 * `noteReport`) and a timer that evaluates each running rollout every `intervalMs` on every server node. An
 * evaluation (`advance`, rollout-evaluation.ts) runs in one transaction under the rollout's row lock
 * (rollout-lock.ts): it judges the devices of the opened batches from what the database holds (level-based: nothing
 * is kept in memory, so a restarted node, or another node, goes on where the last evaluation stopped), then pauses
 * the rollout, opens the next batch, or completes it.
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

  /** Evaluates rollout `id` (of kind `which`) shortly, once for all the reports of a burst. */
  private poke(id: number, delayMs = this.coalesceMs, which: Which = 'app'): void {
    const key = `${which}:${id}`;
    if (this.soon.has(key)) return;
    const timer = setTimeout(() => {
      this.soon.delete(key);
      const evaluation = this.advance(id, which)
        .catch((error: unknown) => this.options.onError(error, 'evaluating a rollout'))
        .finally(() => this.evaluating.delete(evaluation));
      this.evaluating.add(evaluation);
    }, delayMs);
    timer.unref();
    this.soon.set(key, timer);
  }

  /** Evaluates every running rollout once, release and OS. */
  async tick(): Promise<void> {
    for (const which of ['app', 'os'] as const) {
      const { rollouts } = KINDS[which].kind;
      const rows = await this.db.selectFrom(rollouts).select('id').where('status', '=', 'running').execute();
      for (const { id } of rows) await this.advance(id, which);
    }
  }

  /** One evaluation of rollout `id` (an OS rollout's with `which` 'os'), under its row lock. */
  async advance(id: number, which: Which = 'app'): Promise<void> {
    const wake: Wake = {};
    const outcome = await this.db.transaction().execute((trx) => KINDS[which].evaluate(trx, id, wake));
    // A soak that ends before the next tick is evaluated when it ends, so the next batch opens without waiting.
    if (wake.at !== undefined && wake.at - Date.now() < this.intervalMs)
      this.poke(id, Math.max(0, wake.at - Date.now()), which);
    if (!outcome) return;
    this.advanced += 1;
    if (outcome.devices.length > 0) this.changes.changed(outcome.devices);
    if (outcome.fleet) this.changes.fleetChanged(outcome.fleetId);
    if (outcome.devices.length > 0 || outcome.fleet) for (const listener of this.targetListeners) listener();
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
    for (const row of rows) if (row.batch <= row.current_batch) this.poke(row.id, this.coalesceMs, 'os');
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
      if (failed && (row.opened !== null || (await releaseIsTarget(this.db, row.id)))) {
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
