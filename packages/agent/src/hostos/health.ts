import { setTimeout as sleep } from 'node:timers/promises';

/** One thing the new OS must show on its trial boot (the engine answers, the control plane connected…). */
export interface HealthCheck {
  name: string;
  /** Resolves true when healthy; false or a throw is not (yet) healthy. Must give up when `signal` aborts. */
  check(signal: AbortSignal): Promise<boolean>;
}

const ONE_CHECK_MS = 10_000;

/**
 * Runs every check until all pass in the same round or `timeoutMs` ends. Resolves null when healthy, else a line
 * naming each check that had not passed, with its last error.
 */
export async function awaitHealthy(
  checks: HealthCheck[],
  timeoutMs: number,
  intervalMs = 1000,
): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failing: string[] = [];
    for (const c of checks) {
      const budget = Math.max(1, Math.min(ONE_CHECK_MS, deadline - Date.now()));
      const outcome = await bounded(c, budget).then(
        (ok) => (ok ? null : 'not yet'),
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      );
      if (outcome !== null) failing.push(`${c.name} (${outcome})`);
    }
    if (failing.length === 0) return null;
    if (Date.now() + intervalMs > deadline)
      return `not healthy within ${Math.round(timeoutMs / 1000)} s: ${failing.join(', ')}`;
    await sleep(intervalMs);
  }
}

/** One check, given up after `ms` even if it ignores its signal (INVARIANT: the trial's wait is bounded). */
async function bounded(c: HealthCheck, ms: number): Promise<boolean> {
  const controller = new AbortController();
  const expired = new Promise<never>((_resolve, reject) =>
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason)),
  );
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${ms} ms`)), ms);
  try {
    return await Promise.race([c.check(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The container engine answers: `ask` is any cheap engine call (version, list) that throws when it cannot. */
export function engineAnswers(ask: (signal: AbortSignal) => Promise<unknown>): HealthCheck {
  return {
    name: 'engine',
    check: async (signal) => {
      await ask(signal);
      return true;
    },
  };
}

/** The device's connection to the control plane is up (control-plane/connection.ts `connected`). */
export function controlPlaneConnected(isConnected: () => boolean): HealthCheck {
  return { name: 'control plane connection', check: async () => isConnected() };
}
