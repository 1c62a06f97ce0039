import type { Selectable } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The two kinds of staged rollout, one engine: release rollouts (a release given to a fleet's devices batch by
 * batch, rollouts.ts) and OS rollouts (an OS release, os-rollouts.ts). Each keeps its own tables (migrations 0012
 * and 0017), of the same shape: a row per rollout, one per member device (its batch and how it fared), one per
 * event. A kind names its tables; the lock, events, batches, evaluation and view (rollout-lock.ts,
 * rollout-batches.ts, rollout-evaluation.ts, rollout-view.ts) take the kind and serve both.
 */
export type RolloutTable = 'rollouts' | 'os_rollouts';

interface KindTables {
  rollouts: { members: 'rollout_devices'; events: 'rollout_events'; ref: 'rollout_id' };
  os_rollouts: { members: 'os_rollout_devices'; events: 'os_rollout_events'; ref: 'os_rollout_id' };
}

export interface RolloutKind<T extends RolloutTable = RolloutTable> {
  rollouts: T;
  /** Which batch each device of a rollout is in, and how it fared. */
  members: KindTables[T]['members'];
  events: KindTables[T]['events'];
  /** The column of `members` and `events` naming their rollout. */
  ref: KindTables[T]['ref'];
  /** What messages and errors call one. */
  noun: string;
  /**
   * Whether a device pinned to a release by hand since stops counting in the rollout's batches (release rollouts:
   * it is no longer given the release). A device given its own OS target by hand leaves OS rollouts instead.
   */
  skipsPinned: boolean;
}

interface KindRows {
  rollouts: Selectable<Database['rollouts']>;
  os_rollouts: Selectable<Database['os_rollouts']>;
}
/** A row of table `T`; for either, the columns both have. */
export type RolloutRowOf<T extends RolloutTable> = KindRows[T];
/** Every status of either kind; an OS rollout is never `cancelled`. */
export type RolloutStatus = Database[RolloutTable]['status'];

export const RELEASE_ROLLOUTS: RolloutKind<'rollouts'> = {
  rollouts: 'rollouts',
  members: 'rollout_devices',
  events: 'rollout_events',
  ref: 'rollout_id',
  noun: 'rollout',
  skipsPinned: true,
};

export const OS_ROLLOUTS: RolloutKind<'os_rollouts'> = {
  rollouts: 'os_rollouts',
  members: 'os_rollout_devices',
  events: 'os_rollout_events',
  ref: 'os_rollout_id',
  noun: 'OS rollout',
  skipsPinned: false,
};
