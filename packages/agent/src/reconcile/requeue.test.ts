import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PassOutcome } from './loop.js';
import { requeueAfter } from './requeue.js';

const INF = Number.POSITIVE_INFINITY;
const error = (terminal: boolean): PassOutcome => ({ kind: 'error', error: new Error('x'), terminal });

describe('requeueAfter()', () => {
  const cases: Array<{
    name: string;
    outcome: PassOutcome;
    errors: number;
    expect: { delayMs: number; errors: number };
  }> = [
    {
      name: 'converged: wait for a trigger',
      outcome: { kind: 'done' },
      errors: 3,
      expect: { delayMs: INF, errors: 0 },
    },
    {
      name: 'cancelled: not a failure',
      outcome: { kind: 'cancelled' },
      errors: 2,
      expect: { delayMs: INF, errors: 0 },
    },
    {
      name: 'waiting: come back when asked, error count kept',
      outcome: { kind: 'retry-after', ms: 5_000, reason: 'update lock held by app 1', lockedApps: [1] },
      errors: 2,
      expect: { delayMs: 5_000, errors: 2 },
    },
    { name: 'first transient error: 1 s', outcome: error(false), errors: 0, expect: { delayMs: 1_000, errors: 1 } },
    { name: 'third transient error: 4 s', outcome: error(false), errors: 2, expect: { delayMs: 4_000, errors: 3 } },
    {
      name: 'transient errors cap at 5 min',
      outcome: error(false),
      errors: 30,
      expect: { delayMs: 300_000, errors: 31 },
    },
    { name: 'terminal: wait for a new target', outcome: error(true), errors: 0, expect: { delayMs: INF, errors: 1 } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(requeueAfter(c.outcome, c.errors), c.expect));
});
