import { NO_REQUESTS, type ActionRequests } from '../reconcile/state.js';

/**
 * The device action under way, as the planner reads it (PlanContext.requests): written by AgentActions, which runs
 * one action at a time and withdraws it once the passes that carry it out are over; read by the reconciler before
 * each planning round.
 */
export class PendingRequests {
  private current: ActionRequests = NO_REQUESTS;

  get(): ActionRequests {
    return this.current;
  }

  set(request: Partial<ActionRequests>): void {
    this.current = { ...NO_REQUESTS, ...request };
  }

  clear(): void {
    this.current = NO_REQUESTS;
  }
}
