import type { Logger } from 'pino';
import { FlotillaError, type UpdateStatus } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import { executeStep } from './executor.js';
import { plan } from './plan.js';
import type { CurrentState, PlanContext, TargetModel } from './state.js';
import { describeStep, stepAppId, type Executors, type Step } from './steps.js';

/** How a pass ended (controller-runtime style): converged, come back later, or failed. */
export type PassOutcome =
  | { kind: 'done' }
  /** `lockedApps`: apps whose remaining work waits for an update lock a service holds. */
  | { kind: 'retry-after'; ms: number; reason: string; lockedApps: number[] }
  | { kind: 'error'; error: Error; terminal: boolean }
  | { kind: 'cancelled' };

export interface PassResult {
  outcome: PassOutcome;
  iterations: number;
  stepsExecuted: number;
  durationMs: number;
}

export interface LoopDeps {
  engine: ContainerEngine;
  executors: Executors;
  namespace: string;
  log: Logger;
  knownImages: () => string[];
  /** Null when there is no target at all yet (fresh unmanaged device): nothing is touched. */
  target: () => TargetModel | null;
  context: (target: TargetModel) => Promise<PlanContext>;
  /** Called after each planning round with the per-app status (for the reporter) and the steps planned. */
  onPlanned: (
    status: Map<number, UpdateStatus>,
    current: CurrentState,
    target: TargetModel,
    steps: readonly Step[],
  ) => void;
}

/** Upper bound of plan/execute rounds in one pass; a healthy update needs well under 20. */
export const MAX_ITERATIONS = 50;
/** The same non-empty plan this many times in a row means the steps do not change the world: a loop. */
const SAME_PLAN_LIMIT = 3;

export function appStatuses(target: TargetModel, steps: Step[]): Map<number, UpdateStatus> {
  const out = new Map<number, UpdateStatus>();
  for (const app of target.apps) {
    const mine = steps.filter((s) => stepAppId(s) === app.appId);
    if (mine.some((s) => s.action === 'fetch')) out.set(app.appId, 'downloading');
    else if (mine.length === 0) out.set(app.appId, 'done');
    else if (mine.every((s) => s.action === 'wait')) out.set(app.appId, 'downloaded');
    else out.set(app.appId, 'applying changes');
  }
  return out;
}

/** Errors that retrying cannot fix: a bad target (validation), a refused credential, an image for another CPU. */
function isTerminal(error: unknown): boolean {
  if (error instanceof FlotillaError)
    return error.code === 'VALIDATION_FAILED' || error.code === 'UNAUTHENTICATED' || error.code === 'PLATFORM_MISMATCH';
  const status =
    typeof error === 'object' && error !== null && 'statusCode' in error
      ? Number((error as { statusCode: unknown }).statusCode)
      : 0;
  // Engine 400: the create options are invalid (e.g. unknown capability); the same target fails the same way.
  return status === 400;
}

/**
 * One reconciliation pass: re-read the engine, plan, execute, repeat until the plan is empty (done), only waits
 * remain (retry-after), a step fails (error) or the signal aborts (cancelled, not a failure).
 */
export async function runPass(deps: LoopDeps, signal: AbortSignal): Promise<PassResult> {
  const started = performance.now();
  let iterations = 0;
  let stepsExecuted = 0;
  const result = (outcome: PassOutcome): PassResult => ({
    outcome,
    iterations,
    stepsExecuted,
    durationMs: performance.now() - started,
  });
  let lastPlan = '';
  let samePlan = 0;
  try {
    while (iterations < MAX_ITERATIONS) {
      if (signal.aborted) return result({ kind: 'cancelled' });
      iterations += 1;
      const target = deps.target();
      if (target === null) return result({ kind: 'done' });
      const snapshot = await deps.engine.snapshot(deps.namespace, signal);
      const current: CurrentState = { ...snapshot, knownImages: deps.knownImages() };
      const steps = plan(current, target, await deps.context(target));
      deps.onPlanned(appStatuses(target, steps), current, target, steps);
      const actionable = steps.filter((s): s is Exclude<Step, { action: 'wait' }> => s.action !== 'wait');
      if (actionable.length === 0) {
        const waits = steps.filter((s) => s.action === 'wait');
        if (waits.length === 0) return result({ kind: 'done' });
        const ms = Math.min(...waits.map((w) => w.retryAfterMs));
        const lockedApps = [...new Set(waits.flatMap((w) => (w.lock && w.appId !== undefined ? [w.appId] : [])))];
        return result({ kind: 'retry-after', ms, reason: waits.map(describeStep).join('; '), lockedApps });
      }
      const key = actionable.map(describeStep).sort().join('\n');
      samePlan = key === lastPlan ? samePlan + 1 : 1;
      lastPlan = key;
      if (samePlan >= SAME_PLAN_LIMIT) {
        return result({
          kind: 'error',
          error: new Error(
            `reconcile loop: the same steps were planned ${samePlan} times: ${key.replaceAll('\n', ', ')}`,
          ),
          terminal: false,
        });
      }
      deps.log.info({ steps: actionable.map(describeStep) }, 'executing');
      const settled = await Promise.allSettled(actionable.map((s) => executeStep(deps.executors, s, signal)));
      stepsExecuted += actionable.length;
      const failures = settled.flatMap((r, i) =>
        r.status === 'rejected' ? [{ step: actionable[i] as Step, error: r.reason as unknown }] : [],
      );
      if (signal.aborted) return result({ kind: 'cancelled' });
      if (failures.length > 0) {
        const first = failures[0] as { step: Step; error: unknown };
        const error = first.error instanceof Error ? first.error : new Error(String(first.error));
        const message = failures
          .map((f) => `${describeStep(f.step)}: ${f.error instanceof Error ? f.error.message : String(f.error)}`)
          .join('; ');
        return result({
          kind: 'error',
          error: new Error(message, { cause: error }),
          terminal: failures.every((f) => isTerminal(f.error)),
        });
      }
    }
    return result({
      kind: 'error',
      error: new Error(`reconcile did not converge within ${MAX_ITERATIONS} rounds`),
      terminal: false,
    });
  } catch (error) {
    if (signal.aborted) return result({ kind: 'cancelled' });
    return result({ kind: 'error', error: error instanceof Error ? error : new Error(String(error)), terminal: false });
  }
}
