import { backoffMs } from '../util/wakeable.js';
import type { PassOutcome } from './loop.js';

/** Cap and first step of the backoff after transient failures in a row. */
export const ERROR_BACKOFF_CAP_MS = 300_000;
export const ERROR_BACKOFF_BASE_MS = 1_000;

/**
 * Pure: when the controller runs the next pass after one that ended with `outcome`, given `errors` failed passes in
 * a row before it (controller-runtime's Result: requeue after, or wait for a trigger). Converged and cancelled
 * passes wait for a trigger; waits come back when asked; transient errors back off with a cap; terminal errors
 * wait for a new target or an explicit trigger. The caller still re-checks a converged device now and then.
 */
export function requeueAfter(outcome: PassOutcome, errors: number): { delayMs: number; errors: number } {
  switch (outcome.kind) {
    case 'done':
    case 'cancelled':
      return { delayMs: Number.POSITIVE_INFINITY, errors: 0 };
    case 'retry-after':
      return { delayMs: outcome.ms, errors };
    case 'error':
      return {
        delayMs: outcome.terminal
          ? Number.POSITIVE_INFINITY
          : backoffMs(errors + 1, ERROR_BACKOFF_CAP_MS, ERROR_BACKOFF_BASE_MS),
        errors: errors + 1,
      };
  }
}
