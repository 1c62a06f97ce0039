import { configVarKey, type TargetDevice } from '@flotilla/protocol';

/** Config var BALENA_SUPERVISOR_OVERRIDE_LOCK=1 (under any of its prefixes): update locks never hold an update back. */
export function overrideLockConfigured(device: TargetDevice | undefined): boolean {
  return Object.entries(device?.config ?? {}).some(
    ([k, v]) => configVarKey(k) === 'SUPERVISOR_OVERRIDE_LOCK' && v === '1',
  );
}

/** A forced-update request; compared by identity, so a newer request is never settled by an older pass. */
export interface ForceRequest {
  readonly requestedAt: number;
  polled: boolean;
  /** The target (its key) the first fetch after the request brought: the one this request forces. */
  target?: string;
}

/**
 * A forced update (`triggerUpdate({force: true})`) overrides update locks and the update window until a pass
 * converges on the target fetched after the request, and for that target only: once a later fetch brings another
 * target, the request is over (a force applies what was there when it was asked for, not every release after it).
 * INVARIANT: a pass that started before that fetch finished cannot settle the request, so a pass racing the fetch
 * cannot consume the override meant for the new target.
 */
export class ForcedUpdate {
  private request: ForceRequest | undefined;

  /** `polled`: no fetch is coming (unmanaged device), so the target already stored is the one to converge on. */
  requested(now: number, polled: boolean): void {
    this.request = { requestedAt: now, polled };
  }

  /** True while a request is pending: locks are overridden. */
  active(): boolean {
    return this.request !== undefined;
  }

  /**
   * A poll that started at `startedAt` finished with the target `key` stored: a request made before it has its
   * target now; one that had its target already and sees another one ends.
   */
  polled(startedAt: number, key: string): void {
    const request = this.request;
    if (!request || startedAt < request.requestedAt) return;
    if (request.target !== undefined && request.target !== key) {
      this.request = undefined;
      return;
    }
    request.polled = true;
    request.target = key;
  }

  /** Before a pass: the request that pass may settle (only one whose target was fetched). */
  claim(): ForceRequest | undefined {
    return this.request?.polled ? this.request : undefined;
  }

  /** After a pass: a converged pass settles the request it claimed, unless a newer one replaced it meanwhile. */
  settle(claimed: ForceRequest | undefined, converged: boolean): void {
    if (converged && claimed && this.request === claimed) this.request = undefined;
  }
}
