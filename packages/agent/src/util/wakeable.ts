import { setTimeout as sleep } from 'node:timers/promises';

/** A sleep that `wake()` or an abort ends early; lets loops be both periodic and triggerable. */
export class Wakeable {
  private wakeUp: (() => void) | undefined;
  private pending = false;

  wake(): void {
    this.pending = true;
    this.wakeUp?.();
  }

  /** Resolves after `ms`, on wake() (also one that came while not sleeping) or on abort. */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wakeUp = undefined;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done);
      this.wakeUp = done;
    });
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. A plain wait that no wake() shortens. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}

/** Retry delay after `failures` consecutive failures: min(cap, base·2^(n-1)). */
export function backoffMs(failures: number, cap: number, base = 15_000): number {
  if (failures <= 0) return 0;
  return Math.min(cap, base * 2 ** Math.min(failures - 1, 20));
}

/**
 * `ms` spread uniformly over [ms/2, ms) ("equal jitter"). Devices that lost the same server node at the same moment
 * otherwise all redial in the same instant, and the node taking them over meets thousands of handshakes at once
 * (bench/nodes.mjs: most timed out and came back in waves); the lower half stays, so a server that closes every
 * connection at once is still not redialled faster than half the backoff.
 */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.floor(ms / 2 + random() * (ms / 2));
}
