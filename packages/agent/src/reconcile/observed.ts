import type { UpdateStatus } from '@flotilla/protocol';
import type { PassResult } from './loop.js';
import type { CurrentState, TargetModel } from './state.js';

/** The world as the reconciler last saw it: what reports and the local device API describe. */
export interface DeviceView {
  /** The engine as of the last planning round; undefined before the first one. */
  current: CurrentState | undefined;
  target: TargetModel | null;
  /** Per app id, the update status the last planning round derived from its steps. */
  statuses: ReadonlyMap<number, UpdateStatus>;
  /** Download progress (0–100) per image ref being pulled. */
  progress: ReadonlyMap<string, number>;
  /** The last pass failed terminally: the update is aborted until a new target or an explicit trigger. */
  failed: boolean;
}

/**
 * What the reconciler observed, kept for the readers that come between passes (reporter, device API). Written only
 * by the reconciler (planning rounds, pass ends) and the executor (download progress).
 */
export class Observed {
  current: CurrentState | undefined;
  statuses: ReadonlyMap<number, UpdateStatus> = new Map();
  failed = false;
  /** Filled by the executor's fetch steps; entries are removed when a pull ends. */
  readonly progress = new Map<string, number>();

  planned(statuses: ReadonlyMap<number, UpdateStatus>, current: CurrentState): void {
    this.statuses = statuses;
    this.current = current;
  }

  passed(result: PassResult): void {
    this.failed = result.outcome.kind === 'error' && result.outcome.terminal;
  }

  /** Some app still has steps to run. */
  updating(): boolean {
    return [...this.statuses.values()].some((s) => s !== 'done');
  }

  view(target: TargetModel | null): DeviceView {
    return { current: this.current, target, statuses: this.statuses, progress: this.progress, failed: this.failed };
  }
}
