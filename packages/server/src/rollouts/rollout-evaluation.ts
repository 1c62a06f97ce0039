import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { decideBatch, type BatchFigures, type DeviceJudgement, type JudgeContext } from './judge.js';
import { batchLabels, planOf } from './rollout-batches.js';
import type { RolloutKind, RolloutRowOf, RolloutTable } from './rollout-kind.js';
import { addEvent, lockRollout } from './rollout-lock.js';

/** What a committed evaluation changed, told to the live feeds after the commit. */
export interface Outcome {
  fleetId: number;
  /** Devices whose target changed (a batch opened). */
  devices: number[];
  /** Every unpinned device of the fleet may have a new target (completed, cancelled, superseded). */
  fleet: boolean;
}

/** When the evaluation found a device whose soak ends next (epoch ms). */
export interface Wake {
  at?: number;
}

export type Evaluate = (trx: Db, id: number, wake: Wake) => Promise<Outcome | undefined>;

type DeviceRow = Selectable<Database['devices']>;
/** A member of an opened batch, not yet final, with the columns of its device that its judge reads. */
export type Judged<C extends keyof DeviceRow> = DeviceJudgement & { device_id: number } & Pick<DeviceRow, C>;

/** How an evaluation that goes on judges a device: its next state, with why it failed (when the kind says). */
export interface Judging<C extends keyof DeviceRow> {
  judge: (device: Judged<C>, ctx: JudgeContext) => DeviceJudgement & { reason?: string };
  /** When the current batch opened. */
  openedAt: string;
  /** Whether it changed something already. */
  changed: boolean;
}

/** What tells one kind's evaluation apart: its tables (`kind`), its judge, and what opening and completing do. */
export interface RolloutEvaluation<T extends RolloutTable, C extends keyof DeviceRow> {
  kind: RolloutKind<T>;
  /** The device columns the judge reads. */
  facts: readonly C[];
  /**
   * Once the row is locked and the clock read (`at`): how the devices are judged, or the outcome the evaluation
   * ends with instead (`end`; undefined when nothing changed).
   */
  prepare(trx: Db, row: RolloutRowOf<T>, at: number): Promise<Judging<C> | { end: Outcome | undefined }>;
  /**
   * Gives what the rollout rolls out to `ids`, the devices of the batch just opened. INVARIANT: opening a batch
   * changes the target of exactly its devices, and their revisions move with it.
   */
  give(trx: Db, row: RolloutRowOf<T>, ids: number[]): Promise<void>;
  /** Ends the rollout as completed: every batch succeeded. */
  complete(trx: Db, row: RolloutRowOf<T>, at: number): Promise<Outcome>;
}

/**
 * The evaluation of a rollout of one kind (`spec`), one transaction under its row lock (rollout-lock.ts): it judges
 * the devices of the opened batches from what the database holds of their reports, then pauses the rollout, opens
 * the next batch, or completes it. Returns what changed for the devices' targets, or undefined when nothing did;
 * `wake.at` is set to when the next soak ends.
 */
export function rolloutEvaluation<T extends RolloutTable, C extends keyof DeviceRow>(
  spec: RolloutEvaluation<T, C>,
): Evaluate {
  const kind: RolloutKind = spec.kind;
  return async (trx, id, wake) => {
    const row = await lockRollout(trx, spec.kind, id, ['running']);
    if (!row) return undefined;
    // INVARIANT: the clock is read once the lock is held. Read before, while another node's evaluation held the
    // lock, it could start a device's soak before the batch-opened event that evaluation then wrote.
    const at = Date.now();
    const judging = await spec.prepare(trx, row, at);
    if ('end' in judging) return judging.end;
    const labels = batchLabels(planOf(row));
    const members = countedMembers(trx, kind, row);
    const open = await members()
      .select([
        `${kind.members}.device_id`,
        `${kind.members}.state`,
        `${kind.members}.healthy_since`,
        ...spec.facts.map((c) => `devices.${c}` as const),
      ])
      .where(`${kind.members}.batch`, '<=', row.current_batch)
      .where(`${kind.members}.state`, 'in', ['pending', 'offline'])
      .execute();
    const context = {
      now: at,
      soakMs: row.soak_ms,
      offlineTimeoutMs: row.offline_timeout_ms,
      openedAt: Date.parse(judging.openedAt),
    };
    let changed = judging.changed;
    // The rows carry the columns `spec.facts` names: Kysely cannot type a selection of generic columns.
    for (const device of open as unknown as Judged<C>[]) {
      const next = judging.judge(device, context);
      if (next.state === 'pending' && next.healthy_since !== null) {
        const ends = Date.parse(next.healthy_since) + row.soak_ms;
        wake.at = Math.min(wake.at ?? ends, ends);
      }
      if (next.state === device.state && next.healthy_since === device.healthy_since) continue;
      await trx
        .updateTable(kind.members)
        .set({ state: next.state, healthy_since: next.healthy_since, reason: next.reason ?? null, updated_at: now() })
        .where(kind.ref, '=', id)
        .where('device_id', '=', device.device_id)
        .where('state', '=', device.state)
        .execute();
      if (next.state !== device.state) changed = true;
    }
    const figures = await batchFigures(members, kind, row.current_batch);
    const decision = decideBatch(row.current_batch, figures, {
      successThreshold: row.success_threshold,
      failureThreshold: row.failure_threshold,
    });
    const none = { fleetId: row.fleet_id, devices: [], fleet: false };
    if (decision.action === 'pause') {
      await trx
        .updateTable(kind.rollouts)
        .set({ status: 'paused', reason: decision.reason })
        .where('id', '=', id)
        .execute();
      await addEvent(trx, kind, id, 'paused', row.current_batch, `paused: ${decision.reason}`, at);
      return none;
    }
    if (decision.action === 'wait') return changed ? none : undefined;
    const next = row.current_batch + 1;
    if (next >= labels.length) return spec.complete(trx, row, at);
    await trx
      .updateTable(kind.rollouts)
      .set({ current_batch: next, batch_opened_at: new Date(at).toISOString() })
      .where('id', '=', id)
      .execute();
    const opened = await members()
      .select(`${kind.members}.device_id`)
      .where(`${kind.members}.batch`, '=', next)
      .execute();
    const ids = opened.map((d) => d.device_id);
    await spec.give(trx, row, ids);
    await addEvent(
      trx,
      kind,
      id,
      'batch-opened',
      next,
      `batch ${next + 1} (${labels[next]}) opened for ${ids.length} device(s): batch ${next} reached ${figures.succeeded} of ${figures.devices - figures.excused - figures.offline} succeeded`,
      at,
    );
    return { fleetId: row.fleet_id, devices: ids, fleet: false };
  };
}

/**
 * The members of the rollout that count: still in the fleet, and (`kind.skipsPinned`) not pinned by hand since. A
 * device given its own OS target by hand left its OS rollouts (os-rollouts.ts `leaveOsRollouts`).
 */
function countedMembers(trx: Db, kind: RolloutKind, row: { id: number; fleet_id: number }) {
  return () => {
    const query = trx
      .selectFrom(kind.members)
      .innerJoin('devices', 'devices.id', `${kind.members}.device_id`)
      .where(kind.ref, '=', row.id)
      .where('devices.fleet_id', '=', row.fleet_id);
    return kind.skipsPinned ? query.where('devices.pinned_release_id', 'is', null) : query;
  };
}

/** The figures of batch `batch`, from its counted members' states. */
async function batchFigures(
  members: ReturnType<typeof countedMembers>,
  kind: RolloutKind,
  batch: number,
): Promise<BatchFigures> {
  const counts = await members()
    .select([`${kind.members}.state`, (eb) => eb.fn.countAll<number | string>().as('n')])
    .where(`${kind.members}.batch`, '=', batch)
    .groupBy(`${kind.members}.state`)
    .execute();
  const figures: BatchFigures = { devices: 0, pending: 0, succeeded: 0, failed: 0, offline: 0, excused: 0 };
  for (const c of counts) {
    figures[c.state] = Number(c.n);
    figures.devices += Number(c.n);
  }
  return figures;
}
