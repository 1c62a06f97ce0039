import type { DeviceOsUpdate, DeviceRollback, UpdateStatus } from '@flotilla/protocol';
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
  /** The device rolled back from a release by itself and refuses it (rollback/); null or absent otherwise. */
  rollback?: DeviceRollback | null;
  /** Where the host OS update stands on an A/B host (hostos/); null or absent on other hosts. */
  osUpdate?: DeviceOsUpdate | null;
  /**
   * Set while an update waits for the maintenance window: when the window opens (epoch ms; null: it never opens
   * again). Null or absent when nothing waits for a window.
   */
  windowWait?: { opensAt: number | null } | null;
}

/**
 * What the reconciler observed, kept for the readers that come between passes (reporter, device API). Written only
 * by the reconciler (planning rounds, pass ends) and the executor (download progress).
 */
export class Observed {
  current: CurrentState | undefined;
  statuses: ReadonlyMap<number, UpdateStatus> = new Map();
  /** Per app id, the release commit its status was planned for. */
  private plannedCommits: ReadonlyMap<number, string | null> = new Map();
  failed = false;
  /** See DeviceView.windowWait; set by the reconciler after each planning round. */
  windowWait: { opensAt: number | null } | null = null;
  /** Filled by the executor's fetch steps; entries are removed when a pull ends. */
  readonly progress = new Map<string, number>();

  planned(statuses: ReadonlyMap<number, UpdateStatus>, current: CurrentState, target: TargetModel): void {
    this.statuses = statuses;
    this.current = current;
    this.plannedCommits = new Map(target.apps.map((app) => [app.appId, app.commit]));
  }

  passed(result: PassResult): void {
    this.failed = result.outcome.kind === 'error' && result.outcome.terminal;
  }

  view(target: TargetModel | null): DeviceView {
    return {
      current: this.current,
      target,
      statuses: this.statusesFor(target),
      progress: this.progress,
      failed: this.failed,
      windowWait: this.windowWait,
    };
  }

  /**
   * INVARIANT: a status describes the release it was planned for. An app whose target moved on since the last
   * planning round (a new release fetched between rounds) is being applied, never "done" with a release it has not
   * pulled yet.
   */
  private statusesFor(target: TargetModel | null): ReadonlyMap<number, UpdateStatus> {
    let moved: Map<number, UpdateStatus> | undefined;
    for (const app of target?.apps ?? []) {
      if (!this.statuses.has(app.appId) || this.plannedCommits.get(app.appId) === app.commit) continue;
      moved ??= new Map(this.statuses);
      moved.set(app.appId, 'applying changes');
    }
    return moved ?? this.statuses;
  }
}
