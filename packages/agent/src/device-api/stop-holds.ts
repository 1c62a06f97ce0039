import type { TargetModel, TargetService } from '../reconcile/state.js';
import type { Store } from '../store/store.js';

/**
 * Services stopped on request are "held": the planner does not start them (PlanContext.heldStopped) until they are
 * started again or a new target arrives for them (a different release or config).
 * INVARIANT: every change is written through to the store (a stop's before its container is stopped), so a crash or
 * power cut never brings back a service the user stopped; an unchanged map is not re-written (fsync).
 */
export class StopHolds {
  /** `<appId>/<service>` → the target signature (commit + config hash) it was stopped under. */
  private held: Map<string, string>;

  constructor(private readonly store: Pick<Store, 'getStopHolds' | 'setStopHolds'>) {
    this.held = new Map(Object.entries(store.getStopHolds()));
  }

  /** The held set for the planner, after dropping holds whose service got a new target (or left it). */
  heldStopped(target: TargetModel | null): ReadonlySet<string> {
    const stale = [...this.held].filter(([key, signature]) => {
      const svc = target && findService(target, key);
      return !svc || signature !== signatureOf(svc);
    });
    this.release(stale.map(([key]) => key));
    return new Set(this.held.keys());
  }

  has(key: string): boolean {
    return this.held.has(key);
  }

  hold(key: string, svc: TargetService): void {
    const signature = signatureOf(svc);
    if (this.held.get(key) === signature) return;
    this.persist(new Map(this.held).set(key, signature));
  }

  release(keys: readonly string[]): void {
    if (!keys.some((k) => this.held.has(k))) return;
    const next = new Map(this.held);
    for (const k of keys) next.delete(k);
    this.persist(next);
  }

  /** Store first, memory second: if the write throws, memory still matches what a restart would load. */
  private persist(next: Map<string, string>): void {
    this.store.setStopHolds(Object.fromEntries(next));
    this.held = next;
  }
}

function signatureOf(svc: TargetService): string {
  return `${svc.commit}:${svc.configHash}`;
}

function findService(target: TargetModel, key: string): TargetService | undefined {
  const slash = key.indexOf('/');
  const appId = Number(key.slice(0, slash));
  const name = key.slice(slash + 1);
  return target.apps.find((a) => a.appId === appId)?.services.find((s) => s.serviceName === name);
}
