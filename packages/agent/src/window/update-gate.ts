import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { updateWindowState, type UpdateWindow } from '@flotilla/protocol';
import type { WindowVerdict } from '../reconcile/state.js';
import type { Store } from '../store/store.js';

export interface UpdateGateDeps {
  store: Pick<Store, 'getWindowApply' | 'setWindowApply'>;
  /** The stored target's maintenance window; null or undefined: none. */
  window: () => UpdateWindow | null | undefined;
  /** Changes exactly when the applied target does (TargetSource.key). */
  targetKey: () => string;
  /** An update was forced (`flotilla device update --force`) and has not converged yet. */
  forced: () => boolean;
  /** The device refuses a release it rolled back from: going back is never held for a window. */
  rollingBack: () => boolean;
  log: Pick<Logger, 'warn'>;
  now?: () => number;
}

/** Identifies one applied target without storing it twice. */
export function targetDigest(key: string): string {
  return createHash('sha256').update(key).digest('base64url');
}

/**
 * Whether the device may apply changes now (the planner's `updateWindow` context): always without a window; inside
 * it; outside it only to finish an apply begun inside it, for a forced update, or to roll back. The apply in
 * progress is persisted, so a restart mid-apply after the window closed still finishes it.
 * INVARIANT: an apply begun inside the window is finished, never left half done because the window closed.
 */
export class UpdateGate {
  private latched: string | null;
  private warned = '';
  private readonly now: () => number;

  constructor(private readonly deps: UpdateGateDeps) {
    this.latched = deps.store.getWindowApply();
    this.now = deps.now ?? Date.now;
  }

  /** Undefined without a window (or with one this agent cannot read: it never holds updates back for it). */
  verdict(): WindowVerdict | undefined {
    const window = this.deps.window();
    if (!window) return undefined;
    if (this.deps.forced() || this.deps.rollingBack() || this.latched === targetDigest(this.deps.targetKey()))
      return { mayApply: true, opensAt: null };
    try {
      const state = updateWindowState(window, this.now());
      return state.open ? { mayApply: true, opensAt: null } : { mayApply: false, opensAt: state.opensAt };
    } catch (error) {
      const text = JSON.stringify(window);
      if (this.warned !== text) this.deps.log.warn({ err: (error as Error).message, window }, 'update window ignored');
      this.warned = text;
      return undefined;
    }
  }

  /** A planning round allowed to apply planned changes: the current target's apply is under way. */
  applying(): void {
    const digest = targetDigest(this.deps.targetKey());
    if (this.latched === digest) return;
    this.deps.store.setWindowApply(digest);
    this.latched = digest;
  }

  /** A pass converged: no apply is in progress any more. */
  converged(): void {
    if (this.latched === null) return;
    this.deps.store.setWindowApply(null);
    this.latched = null;
  }
}
