import { type Wakeable, pause } from '../util/wakeable.js';
import { loopHealthy } from './health.js';
import type { PassResult } from './loop.js';
import { requeueAfter } from './requeue.js';

export interface ControllerDeps {
  reconciler: { reconcile(signal: AbortSignal): Promise<PassResult> };
  /** Changes exactly when the target does: a new target starts the error backoff over. */
  targetKey: () => string;
  /** Longest sleep between passes, even converged: level-based repair of drift the engine's policy misses. */
  recheckMs: number;
  /** The poll interval the health check expects passes within. */
  pollIntervalMs: number;
  /** Whoever asks for a pass (a poll ended, an action was queued) wakes this. */
  wakeup: Wakeable;
  signal: AbortSignal;
}

/**
 * The reconcile controller (controller-runtime's Controller): decides when the reconciler runs. One pass at a time
 * (single flight); a wake during a pass causes exactly one more pass after it; waits come back when the pass asked,
 * transient errors back off with a cap, and a converged device is re-checked every `recheckMs`.
 * INVARIANT: one thing at a time touches the engine: a reconcile pass or a device action (`exclusive`).
 */
export class ReconcileController {
  private inFlight: Promise<unknown> | undefined;
  private passStartedAt: number | undefined;
  private lastPassEndedAt = Date.now();
  private backoffUntil = Date.now();
  private loop: Promise<void> | undefined;
  private retryRequested = false;
  lastPass: PassResult | undefined;
  passes = 0;

  constructor(private readonly deps: ControllerDeps) {}

  /** Runs the loop; the first pass waits `holdBackMs` (crash loop), which no wake cuts short. */
  start(holdBackMs: number): void {
    // Deliberate, so the health check does not count the held-back first pass as a wedged loop.
    this.backoffUntil = Date.now() + holdBackMs;
    this.loop = this.run(holdBackMs);
  }

  /** Ask for a pass soon (after the error back-off, if one runs). */
  wake(): void {
    this.deps.wakeup.wake();
  }

  /** Ask for a pass now, ending an error back-off: an explicit update request from the user. */
  retry(): void {
    this.retryRequested = true;
    this.deps.wakeup.wake();
  }

  /** Runs `fn` while no pass (nor another exclusive job) touches the engine. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.inFlight) await this.inFlight.catch(() => undefined);
    const run = fn();
    this.inFlight = run;
    try {
      return await run;
    } finally {
      if (this.inFlight === run) this.inFlight = undefined;
    }
  }

  /** One pass now (after the one in flight). */
  pass(): Promise<PassResult> {
    return this.exclusive(async () => {
      this.passStartedAt = Date.now();
      const result = await this.deps.reconciler.reconcile(this.deps.signal);
      this.passes += 1;
      this.lastPass = result;
      this.passStartedAt = undefined;
      this.lastPassEndedAt = Date.now();
      return result;
    });
  }

  /** The loop makes progress: no pass stuck, none missing for too long. */
  healthy(): boolean {
    return loopHealthy({
      now: Date.now(),
      passStartedAt: this.passStartedAt,
      lastPassEndedAt: this.lastPassEndedAt,
      backoffUntil: this.backoffUntil,
      pollIntervalMs: this.deps.pollIntervalMs,
    });
  }

  /** Resolves once the loop has ended (after the signal aborted) and no pass or job is in flight. */
  async stopped(): Promise<void> {
    await this.loop;
    await this.inFlight?.catch(() => undefined);
  }

  private async run(holdBackMs: number): Promise<void> {
    const { signal } = this.deps;
    // A plain pause: polls wake the controller, and must not cut this wait short.
    if (holdBackMs > 0) await pause(holdBackMs, signal);
    let targetKey = '';
    let errors = 0;
    while (!signal.aborted) {
      const key = this.deps.targetKey();
      if (key !== targetKey) errors = 0;
      targetKey = key;
      const result = await this.pass();
      const next = requeueAfter(result.outcome, errors);
      errors = next.errors;
      const delayMs = Math.min(next.delayMs, this.deps.recheckMs);
      if (result.outcome.kind !== 'error') {
        await this.deps.wakeup.sleep(delayMs, signal);
        continue;
      }
      // INVARIANT: only a new target or an explicit retry ends an error back-off early. Polls, reports and the
      // release watch wake the controller often, and each wake would otherwise run the failing pass again at once
      // (a device short of disk space retried about ten times a second).
      const until = Date.now() + delayMs;
      while (!signal.aborted && Date.now() < until) {
        await this.deps.wakeup.sleep(until - Date.now(), signal);
        if (this.retryRequested || this.deps.targetKey() !== targetKey) break;
      }
      if (this.retryRequested) errors = 0;
      this.retryRequested = false;
    }
  }
}
