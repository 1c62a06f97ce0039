import { setTimeout as sleep } from 'node:timers/promises';

const PENDING = Symbol('pending');

/**
 * Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs` saying what it
 * waited for (and the last error seen), so a failing integration test says what did not happen.
 * INVARIANT: bounded. A check still running at the deadline (a request that never answers) does not hold the wait.
 */
export async function waitFor<T>(
  description: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<typeof PENDING>((resolve) => {
      timer = setTimeout(() => resolve(PENDING), Math.max(0, deadline - Date.now()));
    });
    try {
      const value = await Promise.race([Promise.resolve().then(check), expired]);
      if (value === PENDING) lastError = new Error('the last check was still running');
      else if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${reason}`);
    }
    await sleep(Math.min(options.intervalMs ?? 100, Math.max(0, deadline - Date.now())));
  }
}
